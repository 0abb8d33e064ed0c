"""Flows: the dataflow builder, its engine, items, error policies and reports."""

from ..operators._item import DeadLetter as DeadLetter
from ..operators._item import Item as Item
from ._flow import Branch as Branch
from ._flow import Flow as Flow
from ._flow import NodeHandle as NodeHandle
from ._policy import ErrorPolicy as ErrorPolicy
from ._policy import retry as retry
from ._report import NodeReport as NodeReport
from ._report import RunReport as RunReport

__all__ = [
    "Branch",
    "DeadLetter",
    "ErrorPolicy",
    "Flow",
    "Item",
    "NodeHandle",
    "NodeReport",
    "RunReport",
    "retry",
]
