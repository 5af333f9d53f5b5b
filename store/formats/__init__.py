"""File formats: what ``curator import`` reads and ``curator export`` writes.

Every exporter streams the store (memory stays flat however large it is) and
writes atomically (a temporary file renamed into place); every importer writes
in one transaction, so a bad record leaves the store as it was.
"""
from __future__ import annotations

import os
from typing import Callable

from ..db import Store
from .jsonl import export_jsonl, import_jsonl
from .sharegpt import export_sharegpt
from .sqlite import export_sqlite
from .summary import ExportSummary, ImportSummary
from .toolalpaca import import_toolalpaca

Importer = Callable[[Store, "str | os.PathLike[str]"], ImportSummary]
Exporter = Callable[[Store, "str | os.PathLike[str]", str], ExportSummary]

IMPORTERS: dict[str, Importer] = {"toolalpaca": import_toolalpaca, "jsonl": import_jsonl}
EXPORTERS: dict[str, Exporter] = {"jsonl": export_jsonl, "sqlite": export_sqlite, "sharegpt": export_sharegpt}

__all__ = ["EXPORTERS", "IMPORTERS", "ExportSummary", "ImportSummary", "export_jsonl", "export_sharegpt",
           "export_sqlite", "import_jsonl", "import_toolalpaca"]
