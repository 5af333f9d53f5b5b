"""The dataset: schema, records, rules and file formats. No Textual, no torch."""
from .db import DEFAULT_PATH, REVIEW_FILTERS, Store, new_id, now, to_record
from .errors import CuratorError, InputError, StoreError
from .records import Correction, GoldItem, Message, Run, Tag, Tool, Toolset, Trajectory

__all__ = [
    "CuratorError", "InputError", "DEFAULT_PATH", "REVIEW_FILTERS", "Store", "StoreError", "new_id", "now", "to_record",
    "Correction", "GoldItem", "Message", "Run", "Tag", "Tool", "Toolset", "Trajectory",
]
