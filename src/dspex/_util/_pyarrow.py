"""pyarrow, the optional Parquet extra, imported on first use.

Shared by the Parquet source, the Parquet sink and the engines' partitioner
(which splits Parquet files by row group), so that none of them imports
another's package for it.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

__all__ = ["import_pyarrow"]


def import_pyarrow() -> Any:
    """Import and return ``pyarrow.parquet``.

    Raises:
        ConfigError: pyarrow is not installed (names the extra to install).
    """
    try:
        import pyarrow.parquet as pq  # optional extra: only Parquet sources and sinks need it
    except ImportError as exc:
        raise ConfigError(
            "Parquet support needs pyarrow: pip install 'dspex[parquet]'"
        ) from exc
    return pq
