/* dspex live page: connects to the WebSocket sink and renders events as they stream.
   No build step, no dependencies. Message schema: events.schema.json. */
(function () {
  "use strict";

  var MAX_CARDS = 300;
  var RATE_WINDOW_MS = 5000;
  var params = new URLSearchParams(location.search);
  var meta = document.querySelector('meta[name="dspex-ws-path"]');
  var wsPath = meta && meta.content && meta.content.indexOf("__") !== 0 ? meta.content : "/";

  var state = {
    cards: new Map(), done: 0, failed: 0, tokens: 0, cost: 0, anon: 0,
    doneTimes: [], server: {}, messages: 0, records: 0, pending: [], sawPredictions: false, dropped: 0, socket: null, retryMs: 500
  };
  window.dspexLive = state;

  function $(id) { return document.getElementById(id); }

  function wsUrl() {
    if (params.get("ws")) { return params.get("ws"); }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var query = new URLSearchParams();
    if (params.get("token")) { query.set("token", params.get("token")); }
    query.set("replay", params.get("replay") || "100");
    return scheme + location.host + wsPath + "?" + query.toString();
  }

  function fmt(value) {
    if (value === null || value === undefined) { return ""; }
    if (typeof value === "string") { return value; }
    try { return JSON.stringify(value); } catch (e) { return String(value); }
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function setStatus(name, text) {
    var node = $("status");
    node.className = "status " + name;
    node.dataset.state = name;
    node.textContent = text;
  }

  function card(id) {
    var key = id === undefined || id === null ? "item-" + (++state.anon) : String(id);
    var found = state.cards.get(key);
    if (found) { return found; }
    var node = el("article", "card streaming");
    node.dataset.itemId = key;
    node.dataset.state = "streaming";
    node.dataset.streamed = "0";
    var head = el("header");
    head.appendChild(el("span", "id", "#" + key));
    head.appendChild(el("span", "node"));
    head.appendChild(el("span", "badge", "streaming"));
    node.appendChild(head);
    node.appendChild(el("div", "inputs"));
    node.appendChild(el("div", "fields"));
    var raw = el("pre", "raw");
    raw.hidden = true;
    node.appendChild(raw);
    node.appendChild(el("ul", "notes"));
    var items = $("items");
    items.insertBefore(node, items.firstChild);
    state.cards.set(key, node);
    if (state.cards.size > MAX_CARDS) {
      var oldest = state.cards.keys().next().value;
      state.cards.get(oldest).remove();
      state.cards.delete(oldest);
    }
    $("footer-count").textContent = state.cards.size + " items";
    return node;
  }

  function field(node, name) {
    var fields = node.querySelector(".fields");
    var found = fields.querySelector('[data-field="' + CSS.escape(name) + '"]');
    if (found) { return found; }
    var row = el("div", "field typing");
    row.dataset.field = name;
    row.appendChild(el("span", "fname", name));
    row.appendChild(el("span", "ftext"));
    fields.appendChild(row);
    return row;
  }

  // The client contract of a `retry` event: the retried call streams its fields
  // again from the start, so drop what that predictor (or, with no predictor,
  // the whole item) streamed so far instead of appending to it.
  function discardPartial(node, predictor) {
    node.querySelectorAll(".field").forEach(function (row) {
      if (!predictor || row.dataset.predictor === predictor) { row.remove(); }
    });
    node.querySelector(".raw").textContent = "";
  }

  function setField(node, name, text, final) {
    var row = field(node, name);
    row.querySelector(".ftext").textContent = text;
    if (final) { row.classList.remove("typing"); row.classList.add("final"); }
  }

  function finish(node, stateName, label) {
    node.classList.remove("streaming");
    node.classList.add(stateName);
    node.dataset.state = stateName;
    node.querySelector(".badge").textContent = label;
    node.querySelectorAll(".field.typing").forEach(function (row) { row.classList.remove("typing"); });
    if (!node.dataset.counted) {
      node.dataset.counted = "1";
      if (stateName === "error") { state.failed += 1; } else {
        state.done += 1;
        state.doneTimes.push(Date.now());
      }
    }
  }

  function note(node, text, cls) {
    node.querySelector(".notes").appendChild(el("li", cls || "", text));
  }

  // A tool call is a collapsible step inside its item's card: the summary line
  // shows the call and its status, the body its arguments and result.
  function toolStep(node, msg) {
    var steps = node.querySelector(".steps");
    if (!steps) {
      steps = el("div", "steps");
      node.insertBefore(steps, node.querySelector(".fields"));
    }
    var step = el("details", "step running");
    step.dataset.tool = msg.name;
    step.dataset.state = "running";
    if (msg.call_id !== undefined && msg.call_id !== null) { step.dataset.callId = String(msg.call_id); }
    var summary = el("summary");
    summary.appendChild(el("span", "step-name", "\u2192 " + msg.name));
    summary.appendChild(el("span", "step-status", "running"));
    step.appendChild(summary);
    step.appendChild(el("pre", "step-args", "args: " + fmt(msg.args || {})));
    var out = el("pre", "step-result");
    out.hidden = true;
    step.appendChild(out);
    steps.appendChild(step);
    return step;
  }

  function findStep(node, msg) {
    var open = node.querySelectorAll(".step.running");
    for (var i = open.length - 1; i >= 0; i--) {
      var id = open[i].dataset.callId;
      if (msg.call_id !== undefined && msg.call_id !== null ? id === String(msg.call_id) : open[i].dataset.tool === msg.name) {
        return open[i];
      }
    }
    return null;
  }

  // Raw tokens are shown only until the first field is recognised: without the
  // adapter's [[ ## field ## ]] markers (nor a marker still being typed).
  function readable(text) {
    return text.replace(/\[\[ ## [^\]]*## \]\]\s*/g, "").replace(/\[\[[^\]]*$/, "");
  }

  // Fields in the signature's order (the prediction's keys), whatever order they streamed in.
  function orderFields(node, names) {
    var box = node.querySelector(".fields");
    names.forEach(function (name) { box.appendChild(field(node, name)); });
  }

  function streamed(node, text) {
    node.dataset.streamed = String(Number(node.dataset.streamed) + text.length);
  }

  // A final record (input columns + outputs) belongs to the card whose streamed
  // fields it matches; records that match nothing within a moment get their own card.
  function matchCard(data) {
    var found = null;
    state.cards.forEach(function (node) {
      if (found || node.dataset.record || node.dataset.state !== "done") { return; }
      var rows = node.querySelectorAll(".field");
      if (!rows.length) { return; }
      var same = Array.prototype.every.call(rows, function (row) {
        return fmt(data[row.dataset.field]) === row.querySelector(".ftext").textContent;
      });
      if (same) { found = node; }
    });
    return found;
  }

  function addColumns(node, data) {
    node.dataset.record = "1";
    var inputs = node.querySelector(".inputs");
    Object.keys(data).forEach(function (name) {
      if (node.querySelector('.field[data-field="' + CSS.escape(name) + '"]')) { return; }
      var row = el("div", "input");
      row.appendChild(el("span", "fname", name));
      row.appendChild(el("span", "ftext", fmt(data[name])));
      inputs.appendChild(row);
    });
  }

  function settleRecords() {
    var now = Date.now();
    state.pending = state.pending.filter(function (p) {
      var data = p.msg.data || {};
      var node = matchCard(data);
      if (node) { addColumns(node, data); return false; }
      if (now - p.at < 2000) { return true; }
      if (!state.sawPredictions) {
        node = card(p.msg.item_id !== undefined ? p.msg.item_id : data.id);
        Object.keys(data).forEach(function (name) { setField(node, name, fmt(data[name]), true); });
        node.dataset.record = "1";
        finish(node, "done", "done");
      }
      return false;
    });
  }

  var handlers = {
    hello: function (msg) { if (msg.run) { $("run").textContent = msg.run; } },
    token_delta: function (msg) {
      var node = card(msg.item_id);
      var raw = node.querySelector(".raw");
      node.dataset.rawText = (node.dataset.rawText || "") + msg.text;
      raw.textContent = readable(node.dataset.rawText);
      streamed(node, msg.text);
      if (!node.querySelector(".field")) { raw.hidden = false; }
    },
    field_delta: function (msg) {
      var node = card(msg.item_id);
      var row = field(node, msg.field);
      if (msg.predictor) { row.dataset.predictor = msg.predictor; }
      row.querySelector(".ftext").textContent += msg.text;
      node.querySelector(".raw").hidden = true;
      streamed(node, msg.text);
    },
    field_done: function (msg) {
      var node = card(msg.item_id);
      setField(node, msg.field, fmt(msg.value), true);
      if (msg.predictor) { field(node, msg.field).dataset.predictor = msg.predictor; }
    },
    prediction_done: function (msg) {
      state.sawPredictions = true;
      var node = card(msg.item_id);
      if (msg.node) { node.querySelector(".node").textContent = msg.node; }
      Object.keys(msg.outputs || {}).forEach(function (name) {
        setField(node, name, fmt(msg.outputs[name]), true);
      });
      orderFields(node, Object.keys(msg.outputs || {}));
      node.querySelector(".raw").hidden = true;
      finish(node, "done", "done");
      settleRecords();
    },
    record: function (msg) {
      state.records += 1;
      state.pending.push({ msg: msg, at: Date.now() });
      settleRecords();
    },
    item_error: function (msg) {
      var node = card(msg.item_id);
      note(node, msg.error_type + ": " + msg.message, "error");
      finish(node, "error", "error");
    },
    retry: function (msg) {
      var node = card(msg.item_id);
      discardPartial(node, msg.predictor);
      note(node, "retry " + msg.attempt + ": " + msg.reason, "retry");
    },
    validation_failed: function (msg) { note(card(msg.item_id), "validation: " + msg.message, "retry"); },
    tool_call: function (msg) { toolStep(card(msg.item_id), msg); },
    tool_result: function (msg) {
      var node = card(msg.item_id);
      var step = findStep(node, msg) || toolStep(node, msg);
      var ms = msg.duration_s !== undefined ? " · " + Math.round(msg.duration_s * 1000) + " ms" : "";
      step.classList.remove("running");
      step.classList.add(msg.error ? "failed" : "ok");
      step.dataset.state = msg.error ? "failed" : "ok";
      step.querySelector(".step-status").textContent = (msg.error ? "error" : "ok") + ms;
      var out = step.querySelector(".step-result");
      out.textContent = (msg.error ? "error: " : "result: ") + fmt(msg.error || msg.result);
      out.hidden = false;
    },
    usage: function (msg) {
      state.tokens += (msg.input_tokens || 0) + (msg.output_tokens || 0);
      state.cost += msg.cost || 0;
    },
    metrics: function (msg) { Object.assign(state.server, msg.values || {}); },
    run_done: function (msg) {
      state.finished = true;
      setStatus("finished", "run finished");
      var r = msg.report || {};
      var parts = ["Run finished (" + (r.status || "done") + "):",
        (r.items_out !== undefined ? r.items_out : "?") + " out of " + (r.items_in !== undefined ? r.items_in : "?") + " items",
        (r.items_failed || 0) + " failed"];
      if (r.duration_s !== undefined) { parts.push(Number(r.duration_s).toFixed(2) + " s"); }
      if (r.cost !== undefined) { parts.push("$" + Number(r.cost).toFixed(4)); }
      showNotice(parts.join("  ·  "));
    },
    dropped: function (msg) {
      state.dropped = msg.total;
      showNotice("Slow connection: " + msg.total + " live updates skipped (final results are kept).");
    }
  };

  function showNotice(text) {
    var node = $("notice");
    node.textContent = text;
    node.hidden = false;
  }

  function rate() {
    var now = Date.now();
    while (state.doneTimes.length && now - state.doneTimes[0] > RATE_WINDOW_MS) { state.doneTimes.shift(); }
    return state.doneTimes.length / (RATE_WINDOW_MS / 1000);
  }

  function pick(names) {
    for (var i = 0; i < names.length; i++) {
      if (state.server[names[i]] !== undefined) { return state.server[names[i]]; }
    }
    return undefined;
  }

  var SHOWN = ["items_per_s", "throughput", "items_done", "items_out", "items_failed", "in_flight",
    "tokens", "cost", "ws_clients", "clients", "queue_depths", "queues"];

  function render() {
    settleRecords();
    var serverRate = pick(["items_per_s", "throughput"]);
    $("m-rate").textContent = (serverRate !== undefined ? Number(serverRate) : rate()).toFixed(1);
    $("m-done").textContent = String(Math.max(state.done, Number(pick(["items_done", "items_out"]) || 0)));
    $("m-failed").textContent = String(Math.max(state.failed, Number(pick(["items_failed"]) || 0)));
    // in flight = calls in progress (cards still streaming); the engine's in_flight
    // counts items admitted by the sources and not done, queued ones included
    var admitted = pick(["in_flight"]);
    $("m-inflight").textContent = String(document.querySelectorAll(".card.streaming").length);
    $("m-inflight").title = admitted === undefined ? "" : admitted + " items admitted and not done yet";
    $("m-tokens").textContent = String(Math.max(state.tokens, Number(pick(["tokens"]) || 0)));
    $("m-cost").textContent = "$" + Math.max(state.cost, Number(pick(["cost"]) || 0)).toFixed(4);
    var clients = pick(["ws_clients", "clients"]);
    $("m-clients").textContent = clients === undefined ? "–" : String(clients);
    var queues = pick(["queue_depths", "queues"]);
    $("m-queues").textContent = queues && typeof queues === "object" ?
      Object.keys(queues).map(function (k) { return k + ": " + fmt(queues[k]); }).join("  ") || "–" :
      (queues === undefined ? "–" : fmt(queues));
    var extra = $("extra");
    extra.textContent = "";
    Object.keys(state.server).forEach(function (name) {
      if (SHOWN.indexOf(name) >= 0) { return; }
      extra.appendChild(el("span", "chip", name + " " + fmt(state.server[name])));
    });
  }

  function connect() {
    var url = wsUrl();
    var socket;
    try { socket = new WebSocket(url); } catch (e) { setStatus("error", "bad URL: " + url); return; }
    state.socket = socket;
    setStatus("connecting", "connecting…");
    var opened = false;
    socket.onopen = function () { opened = true; state.retryMs = 500; setStatus("live", "live"); };
    socket.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      state.messages += 1;
      var handler = handlers[msg.type];
      if (handler) { handler(msg); }
    };
    socket.onclose = function (event) {
      if ($("status").dataset.state !== "finished") {
        // a refused handshake (401 without the token, 403 from a foreign origin) looks like 1006 here
        var hint = opened ? "" : (params.get("token") ? " (refused or unreachable)"
          : " (refused or unreachable: if the feed needs a token, open the URL dspex printed, with ?token=)");
        setStatus("closed", "disconnected (" + event.code + (event.reason ? " " + event.reason : "") + ")" + hint);
      }
      if (state.finished || (event.code === 1008 && /token/i.test(event.reason))) { return; }
      setTimeout(connect, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 5000);
    };
  }

  setInterval(render, 250);
  connect();
})();
