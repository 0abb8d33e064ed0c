"""The run store: checkpoints for exactly-once resume, run leases, program versions, traces."""

from ._checkpoint import Checkpointer as Checkpointer
from ._checkpoint import sink_ids as sink_ids
from ._lease import Lease as Lease
from ._sqlite import DEFAULT_STORE_PATH as DEFAULT_STORE_PATH
from ._sqlite import Checkpoint as Checkpoint
from ._sqlite import RunStore as RunStore

__all__ = ["DEFAULT_STORE_PATH", "Checkpoint", "Checkpointer", "Lease", "RunStore", "sink_ids"]
