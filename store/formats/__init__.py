"""File formats: what ``curator import`` reads and ``curator export`` writes.

Every exporter streams the store (memory stays flat however large it is) and
writes atomically (a temporary file renamed into place); every importer writes
in one transaction, so a bad record leaves the store as it was. Each import
format also says whether a record looks like one of its own (``DETECTORS``), so
``curator import FILE`` can tell the format from the content when exactly one
matches.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from ..db import Store
from . import glaive, hermes, jsonl, toolalpaca
from .glaive import import_glaive
from .hermes import import_hermes
from .importing import first_record
from .jsonl import export_jsonl, import_jsonl
from .sharegpt import export_sharegpt
from .sqlite import export_sqlite
from .summary import ExportSummary, ImportSummary
from .toolalpaca import import_toolalpaca

Importer = Callable[[Store, "str | os.PathLike[str]"], ImportSummary]
Exporter = Callable[[Store, "str | os.PathLike[str]", str], ExportSummary]

IMPORTERS: dict[str, Importer] = {"toolalpaca": import_toolalpaca, "jsonl": import_jsonl, "glaive": import_glaive,
                                   "hermes": import_hermes}
#: For each import format: does this first record of a file look like one of its records?
DETECTORS: dict[str, Callable[[dict[str, Any]], bool]] = {"toolalpaca": toolalpaca.looks_like,
                                                          "jsonl": jsonl.looks_like,
                                                          "glaive": glaive.looks_like,
                                                          "hermes": hermes.looks_like}
EXPORTERS: dict[str, Exporter] = {"jsonl": export_jsonl, "sqlite": export_sqlite, "sharegpt": export_sharegpt}


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """The one import format whose records the file's first record looks like, else None."""
    record = first_record(path)
    if record is None:
        return None
    matches = [name for name, looks_like in DETECTORS.items() if looks_like(record)]
    return matches[0] if len(matches) == 1 else None


__all__ = ["DETECTORS", "EXPORTERS", "IMPORTERS", "ExportSummary", "ImportSummary", "detect_format",
           "export_jsonl", "export_sharegpt", "export_sqlite", "import_glaive", "import_hermes", "import_jsonl",
           "import_toolalpaca"]
