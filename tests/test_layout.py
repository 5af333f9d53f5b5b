"""The layout DESIGN.md promises, checked on the sources: every SQL statement lives in store/, and the
packages import in one direction (curator → store, training → store; curator never loads torch).

The checks read the parse tree, not the text: prose (comments, docstrings) may name SQL, code may not.
"""
from __future__ import annotations

import ast
import sys
import re
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The packages that must reach SQLite through the Store only.
OUTSIDE_STORE = ("curator", "training")
#: SQL in a string: the statements and clauses the store writes (SQL here is upper case by convention).
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+(?:OR\s+\w+\s+)?INTO\b|\bUPDATE\s+[\w.]+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\bPRAGMA\b|\b(?:CREATE|DROP|ALTER)\s+(?:TEMP\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\b"
    r"|\b(?:ATTACH|DETACH)\s+DATABASE\b|\bBEGIN\s+(?:IMMEDIATE|EXCLUSIVE)\b"
)
#: DB-API methods that run SQL; ``execute`` only counts with a string first (``prompts.execute(toolset, …)``
#: builds a prompt), the others always do.
EXECUTE = "execute"
ALWAYS_SQL = frozenset({"executemany", "executescript"})
#: The name of a raw connection, as an attribute or a variable (``store.conn``, ``conn.execute``).
CONNECTION = "conn"
#: Libraries that are SQL in another spelling.
SQL_LIBRARIES = frozenset({"sqlite_utils"})


def sources(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def sql_uses(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """Every place ``source`` runs or writes SQL itself, as (line, what)."""
    tree = ast.parse(source, filename)
    skip = {id(node.value) for node in ast.walk(tree)  # prose: a string that is a statement of its own
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    skip |= {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        text = _string(node)
        if text is not None and SQL.search(text):
            found.append((node.lineno, f"SQL in a string: {' '.join(text.split())[:60]!r}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _runs_sql(node):
            found.append((node.lineno, f".{node.func.attr}(…)"))
        elif isinstance(node, ast.Attribute) and (node.attr == CONNECTION or _sqlite_connect(node)):
            found.append((node.lineno, f"a raw connection: .{node.attr}"))
        elif isinstance(node, ast.Name) and node.id == CONNECTION:
            found.append((node.lineno, f"a raw connection: {node.id}"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and _imported(node) & SQL_LIBRARIES:
            found.append((node.lineno, f"imports {', '.join(sorted(_imported(node) & SQL_LIBRARIES))}"))
    return sorted(set(found))


def _string(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's, with ``{…}`` for each placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)
    return None


def _runs_sql(call: ast.Call) -> bool:
    assert isinstance(call.func, ast.Attribute)
    if call.func.attr in ALWAYS_SQL:
        return True
    return call.func.attr == EXECUTE and bool(call.args) and _string(call.args[0]) is not None


def _sqlite_connect(node: ast.Attribute) -> bool:
    return node.attr == "connect" and isinstance(node.value, ast.Name) and node.value.id == "sqlite3"


def _imported(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The modules an import statement loads, by full name (none for a relative import)."""
    if isinstance(node, ast.ImportFrom):
        return {node.module} if node.module and not node.level else set()
    return {alias.name for alias in node.names}


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, at module level or inside a function, with its line."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _imported(node):
                yield node.lineno, name


def is_forbidden(package: str, module: str) -> bool:
    top = module.split(".")[0]
    return top in FORBIDDEN_IMPORTS[package] and module not in ALLOWED_IMPORTS.get(package, set())


def test_sql_lives_in_store_only() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in sources(*OUTSIDE_STORE)
        for line, what in sql_uses(path.read_text(), str(path))
    ]
    assert not found, "SQL outside store/ (ask the Store instead):\n" + "\n".join(found)


@pytest.mark.parametrize("code", [
    'store.conn.execute("SELECT 1 FROM trajectories LIMIT 1").fetchone()',
    'version = self.store.conn.execute("PRAGMA data_version").fetchone()[0]',
    'rows = db.execute(\n    "SELECT backend, count(*) FROM trajectories "\n    "GROUP BY backend")',
    'QUERY = "SELECT id FROM trajectories WHERE status = \'running\'"',
    'run(f"UPDATE runs SET {field} = ? WHERE id = ?")',
    'sql = "INSERT OR REPLACE INTO gold_calls VALUES (?)"',
    'x = "DELETE FROM tags"',
    'cursor.executemany(statement, rows)',
    'connection = sqlite3.connect(path)',
    'import sqlite_utils',
])
def test_the_sql_check_sees(code: str) -> None:
    assert sql_uses(code)


@pytest.mark.parametrize("code", [
    'text = await self._text("executor", prompts.execute(episode.toolset, call, episode.memory))',
    'try:\n    pass\nexcept sqlite3.Error as exc:\n    raise',
    'def f():\n    """Polls PRAGMA data_version; SELECT 1 FROM t is cheap."""\n',
    '# store.conn.execute("PRAGMA data_version")',
    'notify("Select a completed SFT run to evaluate.")',
    'source = options.data or options.db',
])
def test_the_sql_check_passes(code: str) -> None:
    assert sql_uses(code) == []


ML = {"torch", "transformers", "peft", "trl", "accelerate"}
FORBIDDEN_IMPORTS = {
    # the TUI starts fast and survives a crashed run: training is a subprocess, never an import
    "curator": ML | {"training"},
    # the dataset is the bottom layer: no UI, no model, no application above it
    "store": ML | {"textual", "curator", "training"},
    "training": {"textual", "curator"},
}
#: The one module of training/ curator reads: the configs, where every training default lives (stdlib only).
ALLOWED_IMPORTS = {"curator": {"training.config"}}
STDLIB_ONLY = ROOT / "training" / "config.py"


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_imports_go_one_way(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sources(package)
        for line, name in imports(path)
        if is_forbidden(package, name)
    ]
    forbidden = ", ".join(sorted(FORBIDDEN_IMPORTS[package]))
    assert not found, f"{package}/ must not import {forbidden}:\n" + "\n".join(found)


def test_the_training_configs_curator_reads_import_only_the_standard_library() -> None:
    found = [f"{line}: {name}" for line, name in imports(STDLIB_ONLY)
             if name.split(".")[0] not in sys.stdlib_module_names]
    where = STDLIB_ONLY.relative_to(ROOT)
    assert not found, f"{where} is read by curator, so it imports the standard library only:\n" + "\n".join(found)
