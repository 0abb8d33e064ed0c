"""Operators (``dx.ops``): the nodes between sources and sinks."""

from ._base import NodeContext as NodeContext
from ._base import Operator as Operator
from ._base import Outputs as Outputs
from ._control import DedupeOperator as DedupeOperator
from ._control import RateLimitOperator as RateLimitOperator
from ._control import TapOperator as TapOperator
from ._control import TimeoutOperator as TimeoutOperator
from ._dspy import DSPyModule as DSPyModule
from ._dspy import from_dspy as from_dspy
from ._factories import ab_split as ab_split
from ._factories import batch as batch
from ._factories import branch as branch
from ._factories import dedupe as dedupe
from ._factories import filter as filter
from ._factories import flat_map as flat_map
from ._factories import map as map
from ._factories import merge as merge
from ._factories import rate_limit as rate_limit
from ._factories import route as route
from ._factories import tap as tap
from ._factories import timeout as timeout
from ._factories import validate as validate
from ._factories import window as window
from ._map import FilterOperator as FilterOperator
from ._map import FlatMapOperator as FlatMapOperator
from ._map import MapOperator as MapOperator
from ._routing import ABSplitOperator as ABSplitOperator
from ._routing import BranchOperator as BranchOperator
from ._routing import MergeOperator as MergeOperator
from ._routing import RouteOperator as RouteOperator
from ._validate import ValidateOperator as ValidateOperator
from ._window import BatchOperator as BatchOperator
from ._window import WindowOperator as WindowOperator

__all__ = [
    "ABSplitOperator",
    "BatchOperator",
    "BranchOperator",
    "DSPyModule",
    "DedupeOperator",
    "FilterOperator",
    "FlatMapOperator",
    "MapOperator",
    "MergeOperator",
    "NodeContext",
    "Operator",
    "Outputs",
    "RateLimitOperator",
    "RouteOperator",
    "TapOperator",
    "TimeoutOperator",
    "ValidateOperator",
    "WindowOperator",
    "ab_split",
    "batch",
    "branch",
    "dedupe",
    "filter",
    "flat_map",
    "from_dspy",
    "map",
    "merge",
    "rate_limit",
    "route",
    "tap",
    "timeout",
    "validate",
    "window",
]
