"""The dataset: schema, records, rules and file formats. No Textual, no torch."""
from .db import DEFAULT_PATH, REVIEW_FILTERS, Store
from .errors import CuratorError, InputError, StoreError
from .records import Correction, GoldItem, Message, Note, Run, Tag, Tool, Toolset, Trajectory, new_id, now, to_record

__all__ = [
    "CuratorError", "InputError", "DEFAULT_PATH", "REVIEW_FILTERS", "Store", "StoreError", "new_id", "now", "to_record",
    "Correction", "GoldItem", "Message", "Note", "Run", "Tag", "Tool", "Toolset", "Trajectory",
]
