"""File formats: what ``curator import`` reads and ``curator export`` writes.

Every exporter streams the store (memory stays flat however large it is) and
writes atomically (a temporary file renamed into place); every importer writes
in one transaction, so a bad record leaves the store as it was. Each import
format also says whether a record looks like one of its own (``DETECTORS``), so
``curator import FILE`` can tell the format from the content when exactly one
matches; a curator store (``sqlite``: merged in, ``store.merge``) is told by its file name, having no records.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from ..db import Store
from . import bfcl, glaive, hermes, jsonl, toolace, toolalpaca, xlam
from .axolotl import export_axolotl
from .hub import export_hub
from .importing import first_record
from .jsonl import export_jsonl
from .sharegpt import export_sharegpt
from .sqlite import export_sqlite, import_sqlite
from .summary import ExportSummary, ImportSummary
from .trainer_files import export_openai, export_trl

Importer = Callable[[Store, "str | os.PathLike[str]"], ImportSummary]
Exporter = Callable[[Store, "str | os.PathLike[str]", str], ExportSummary]

#: Each import format's module: its ``import_<name>`` and its ``looks_like``.
_IMPORT_MODULES = {"toolalpaca": toolalpaca, "jsonl": jsonl, "xlam": xlam, "bfcl": bfcl, "toolace": toolace,
                   "glaive": glaive, "hermes": hermes}
IMPORTERS: dict[str, Importer] = {
    **{name: getattr(module, f"import_{name}") for name, module in _IMPORT_MODULES.items()}, "sqlite": import_sqlite}
#: For each import format: does this first record of a file look like one of its records?
DETECTORS: dict[str, Callable[[dict[str, Any]], bool]] = {name: module.looks_like
                                                          for name, module in _IMPORT_MODULES.items()}
EXPORTERS: dict[str, Exporter] = {"jsonl": export_jsonl, "sqlite": export_sqlite, "sharegpt": export_sharegpt,
                                  "openai": export_openai, "trl": export_trl, "axolotl": export_axolotl,
                                  "hub": export_hub}


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """The one import format whose records the file's first record looks like, else None."""
    record = first_record(path)
    if record is None:
        return None
    matches = [name for name, looks_like in DETECTORS.items() if looks_like(record)]
    return matches[0] if len(matches) == 1 else None


__all__ = ["DETECTORS", "EXPORTERS", "IMPORTERS", "ExportSummary", "ImportSummary", "detect_format"]
