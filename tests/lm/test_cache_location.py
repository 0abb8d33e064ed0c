"""The LM disk cache honours DSPEX_CACHE_DIR, and the test suite keeps out of HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dspex.testing import FakeLLMServer

SCRIPT = """
import dspex as dx, sys
lm = dx.LM("openai/fake", api_base=sys.argv[1] + "/v1", api_key="k")
print(dx.Predict("question -> answer")(question="cache me?", lm=lm).answer)
"""


def _answer(request: dict[str, Any]) -> str:
    return "[[ ## answer ## ]]\nyes\n\n[[ ## completed ## ]]"


def test_the_suite_caches_outside_home() -> None:
    cache = Path(os.environ["DSPEX_CACHE_DIR"]).resolve()
    assert not cache.is_relative_to(Path.home().resolve())


def test_disk_cache_goes_to_dspex_cache_dir_not_home(tmp_path: Path) -> None:
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "DSPEX_CACHE_DIR": str(cache)}
    with FakeLLMServer(responder=_answer) as server:
        out = subprocess.run([sys.executable, "-c", SCRIPT, server.url], env=env, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "yes"
    assert list(home.iterdir()) == []  # nothing written under HOME
    assert any(cache.rglob("*"))  # the answer was cached where the variable says
