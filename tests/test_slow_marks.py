"""The ``slow`` marker sits on the slow tests themselves; ``-m "not slow"`` leaves them out.

Each slow test carries ``@pytest.mark.slow`` in its own file (or its module's
``pytestmark``); nothing marks tests from outside at collection. ``KNOWN_SLOW``
names, by node id, tests known to take long on two busy cores (process
engines, 200 WebSocket clients, kill -9, big hypothesis runs): collected with
``-m slow`` each must appear (a rename or a lost mark fails here), and with
``-m "not slow"`` none may, while the other tests of their files stay in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

KNOWN_SLOW = (
    "tests/_http/test_sse.py::test_any_chunking_gives_the_same_events",
    "tests/engines/test_engines.py::test_cancelled_processes_run_resumes_exactly_once",
    "tests/engines/test_engines.py::test_lm_in_workers_reads_its_key_from_the_environment",
    "tests/engines/test_engines.py::test_local_processes_and_dask_give_identical_output_sets",
    "tests/engines/test_engines.py::test_relaunch_resumes_only_missing_partitions_and_keeps_the_plan",
    "tests/engines/test_engines.py::test_worker_killed_mid_partition_finishes_exactly_once",
    "tests/integration/test_resume_kill9.py::test_kill9_then_resume_each_input_exactly_once",
    "tests/lm/test_lm_state.py::test_key_never_leaks_into_artefacts",
    "tests/operators/test_map_executors.py::test_executor_gives_the_same_records_as_inline",
    "tests/signatures/test_signature_fuzz.py::test_any_text_gives_a_signature_or_signature_error",
    "tests/sinks/test_ws_broadcast.py::test_200_clients_with_20_slow_ones",
)
FILES = sorted({node.partition("::")[0] for node in KNOWN_SLOW})


def _collected(*args: str) -> list[str]:
    """Return the node ids ``pytest --collect-only`` lists for ``args`` (a separate process)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                         capture_output=True, text=True, cwd=TESTS.parent, timeout=300, check=False)
    assert out.returncode in (0, 5), out.stdout + out.stderr  # 5: nothing selected
    return [line for line in out.stdout.splitlines() if "::" in line]


def _is(line: str, node: str) -> bool:
    return line == node or line.startswith(node + "[")  # every parametrization of the test


def test_the_known_slow_tests_are_marked_in_their_files() -> None:
    collected = _collected("-m", "slow", *FILES)
    missing = [node for node in KNOWN_SLOW if not any(_is(line, node) for line in collected)]
    assert not missing, f"not collected with -m slow (renamed, or the mark lost?): {missing}"


def test_not_slow_leaves_them_out_and_keeps_the_rest_of_their_files() -> None:
    collected = _collected("-m", "not slow", *FILES)
    kept = [line for line in collected if any(_is(line, node) for node in KNOWN_SLOW)]
    assert not kept, f"slow tests still selected by -m 'not slow': {kept}"
    for path in ("tests/sinks/test_ws_broadcast.py", "tests/engines/test_engines.py", "tests/lm/test_lm_state.py"):
        assert any(line.startswith(path + "::") for line in collected), path  # only the slow ones went
