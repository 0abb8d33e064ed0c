"""The ``slow`` tests of packages whose test files other changes own.

Each entry is a test function (every parametrization of it) that takes more
than about 3 s on two busy cores, or is one of the known long kinds (process
engines, 200 WebSocket clients, big hypothesis runs). ``conftest.py`` marks
them at collection, before ``-m "not slow"`` deselects; the rest of the slow
tests carry ``@pytest.mark.slow`` in their own files. Moving an entry into its
file as a decorator is welcome; ``test_slow_marks.py`` fails on an entry that
names no test.
"""

from __future__ import annotations

__all__ = ["SLOW_ELSEWHERE"]

# test file (relative to tests/) -> test function names
SLOW_ELSEWHERE: dict[str, tuple[str, ...]] = {
    "_http/test_sse.py": ("test_any_chunking_gives_the_same_events",),
    "engines/test_engines.py": (
        "test_cancelled_processes_run_resumes_exactly_once",
        "test_lm_in_workers_reads_its_key_from_the_environment",
        "test_local_processes_and_dask_give_identical_output_sets",
        "test_relaunch_resumes_only_missing_partitions_and_keeps_the_plan",
        "test_worker_killed_mid_partition_finishes_exactly_once",
    ),
    "lm/test_lm_state.py": ("test_key_never_leaks_into_artefacts",),
    "operators/test_map_executors.py": ("test_executor_gives_the_same_records_as_inline",),
    "signatures/test_signature_fuzz.py": ("test_any_text_gives_a_signature_or_signature_error",),
    "sinks/test_ws_broadcast.py": ("test_200_clients_with_20_slow_ones",),
}
