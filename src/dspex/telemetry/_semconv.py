"""Attribute and instrument names: the OpenTelemetry GenAI conventions and dspex's own.

The ``gen_ai.*`` names follow the GenAI semantic conventions (operation,
provider, request/response model, token usage, tool calls, the two client
histograms); ``error.type`` is the general one. ``dspex.*`` names cover what
the conventions do not: flows, nodes, items and modules. Constants only, so
that a renamed attribute changes in one place.
"""

from __future__ import annotations

__all__ = [
    "DSPEX_FLOW",
    "DSPEX_ITEM_ID",
    "DSPEX_ITEM_KEY",
    "DSPEX_MODULE",
    "DSPEX_NODE",
    "DSPEX_NODE_KIND",
    "DSPEX_RUN_ID",
    "DSPEX_STATUS",
    "ERROR_TYPE",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_ID",
    "GEN_AI_TOOL_CALL_RESULT",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "METRIC_CACHE_HITS",
    "METRIC_COST",
    "METRIC_IN_FLIGHT",
    "METRIC_ITEMS",
    "METRIC_ITEMS_RATE",
    "METRIC_ITEM_DURATION",
    "METRIC_MEMORY_PAUSES",
    "METRIC_OPERATION_DURATION",
    "METRIC_QUEUE_DEPTH",
    "METRIC_RETRIES",
    "METRIC_TOKEN_USAGE",
    "OP_CHAT",
    "OP_EXECUTE_TOOL",
    "SCOPE",
]

#: Instrumentation scope (tracer and meter name).
SCOPE = "dspex"

# -- GenAI semantic conventions ------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"

OP_CHAT = "chat"
OP_EXECUTE_TOOL = "execute_tool"

# -- dspex ---------------------------------------------------------------------
DSPEX_FLOW = "dspex.flow.name"
DSPEX_RUN_ID = "dspex.run.id"
DSPEX_NODE = "dspex.node.name"
DSPEX_NODE_KIND = "dspex.node.kind"
DSPEX_ITEM_ID = "dspex.item.id"
DSPEX_ITEM_KEY = "dspex.item.key"
DSPEX_MODULE = "dspex.module"
DSPEX_STATUS = "dspex.status"

# -- instruments ---------------------------------------------------------------
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_ITEMS = "dspex.items"
METRIC_ITEMS_RATE = "dspex.items.rate"
METRIC_ITEM_DURATION = "dspex.item.duration"
METRIC_QUEUE_DEPTH = "dspex.queue.depth"
METRIC_IN_FLIGHT = "dspex.in_flight"
METRIC_COST = "dspex.cost"
METRIC_RETRIES = "dspex.retries"
METRIC_CACHE_HITS = "dspex.lm.cache_hits"
METRIC_MEMORY_PAUSES = "dspex.memory.pauses"
