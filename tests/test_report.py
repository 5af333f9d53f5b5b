"""`curator report` and store/coverage.py: the numbers against an independent count over the store's own
trajectories, the terminal tables, the HTML file (parsed, and opened in headless Chromium when installed),
the `duplicate` row, and bad input."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from data_helpers import call, run_cli

from curator.sim import SimConfig, Simulation
from store import Message, Store, Tool, Toolset, Trajectory
from store.coverage import coverage, toolset_coverage
from store.taxonomy import MaskPolicy
from store.text import SIGN, visible

SCRIPT = "<script>alert(1)</script>"
ESCAPE = "\x1b[31mred\x1b[0m"
HOSTILE_PARAM = '"><img src=x onerror=alert(1)>'
HOSTILE = Toolset("hostile", [
    Tool(SCRIPT, "A tool with a hostile name.", {"type": "object", "properties": {
        HOSTILE_PARAM: {"type": "string"}, "q": {"type": "string"}}}),
    Tool(ESCAPE, "Colours the terminal.", {"type": "object", "properties": {"x": {"type": "integer"}}}),
])


def hostile_trajectories() -> list[Trajectory]:
    """Calls to the hostile tools, one to a name the schema lacks, one without a name, one with broken arguments,
    and a trajectory that names no toolset."""
    def one(id: str, toolset: str | None, instruction: str, calls: list[dict[str, Any]]) -> Trajectory:
        return Trajectory(id=id, toolset=toolset, instruction=instruction, status="complete", messages=[
            Message("user", instruction), Message("assistant", None, tool_calls=calls),
            *[Message("tool", "{}", tool_call_id=c["id"]) for c in calls], Message("assistant", "Done.")])

    return [
        one("h1", "hostile", "Run the script tool with q = a", [call(SCRIPT, '{"q": "a"}', "1")]),
        one("h2", "hostile", "Run it twice, once with the odd parameter", [
            call(SCRIPT, json.dumps({"q": "a"}), "1"), call(SCRIPT, json.dumps({HOSTILE_PARAM: "b", "q": "a"}), "2")]),
        one("h3", "hostile", "Call something made up, then nothing at all", [
            call("madeUp", '{"q": 1}', "1"), {"id": "2", "type": "function", "function": {"arguments": "{}"}},
            call(SCRIPT, '{"q": ', "3")]),
        one("n1", None, "An imported request with no toolset", [call("anyTool", '{"a": 1}', "1")]),
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 scripted everyday trajectories (planted mistakes, auto-flagged), the hostile ones, human tags and
    un-tags, and every kind of decision (a disputed one from two annotators); made once, folded into one file."""
    db = tmp_path_factory.mktemp("known") / "known.db"
    with Store.open(db) as store:
        config = SimConfig(toolset="everyday", n=80, seed=3, error_rate=0.4, concurrency=4)
        asyncio.run(Simulation(store, config, policy=MaskPolicy.of()).run())
        store.add_toolset(HOSTILE)
        store.insert_trajectories(hostile_trajectories())
        ids = store.trajectory_ids()
        auto = [(t.id, tag) for t in store.iter_trajectories() for tag in t.tags if tag.source == "auto"]
        for trajectory_id, tag in auto[:3]:  # un-tagged by a human: no longer counted
            store.remove_tag(trajectory_id, tag.code, tag.message_index, annotator="ann")
        for trajectory in list(store.iter_trajectories())[:12]:
            step = next(m for m in trajectory.messages if m.tool_calls)
            store.add_tag(trajectory.id, "content_error", step.index, annotator="ann")
        store.add_tag("h2", "wrong_tool", 1, annotator="ann")
        for number, trajectory_id in enumerate(ids[:40]):
            store.decide(trajectory_id, ("accept", "reject", "skip")[number % 3], annotator="ann")
        store.decide(ids[40], "accept", annotator="ann")
        store.decide(ids[40], "reject", annotator="bob")
        store.make_self_contained()
    return db


@pytest.fixture
def known(built: Path, tmp_path: Path) -> Path:
    """A copy of the known store for one test."""
    return Path(shutil.copy(built, tmp_path / "known.db"))


def independent(db: Path) -> dict[Any, dict[str, Any]]:
    """The report's numbers counted another way: every trajectory through ``Store.iter_trajectories``, in Python."""
    out: dict[Any, dict[str, Any]] = {}
    with Store.open(db) as store:
        schemas = {t.name: t for t in store.toolsets()}
        groups: dict[Any, list[Trajectory]] = defaultdict(list)
        for trajectory in store.iter_trajectories():
            groups[trajectory.toolset].append(trajectory)
    for name in set(schemas) | set(groups):
        schema = schemas.get(name)
        props = {t.name: list(t.parameters.get("properties") or {}) for t in schema.tools} if schema else {}
        tools: dict[str, dict[str, Any]] = {}

        def tool(n: str) -> dict[str, Any]:
            key = n if not schema or n in props else "(not in schema)"
            return tools.setdefault(key, {"calls": 0, "trajectories": set(), "arguments": set(), "seen": set(),
                                          "errors": Counter()})
        for n in props:
            tool(n)
        unnamed = 0
        decisions: Counter[str] = Counter()
        for trajectory in groups.get(name, []):
            decisions[trajectory.decision or "pending"] += 1
            tags = defaultdict(list)
            for tag in trajectory.tags:
                tags[tag.message_index].append(tag)
            for message in trajectory.messages:
                if message.role != "assistant" or not message.tool_calls:
                    continue
                called = []
                for entry in message.tool_calls:
                    n = entry["function"].get("name")
                    if not n:
                        unnamed += 1
                        continue
                    found = tool(n)
                    found["calls"] += 1
                    found["trajectories"].add(trajectory.id)
                    called.append(found)
                    try:
                        arguments = json.loads(entry["function"]["arguments"] or "{}")
                    except ValueError:
                        continue
                    found["arguments"].add(json.dumps(arguments, sort_keys=True))
                    found["seen"].update(arguments)
                for tag in tags[message.index]:
                    for found in {id(f): f for f in called}.values():
                        found["errors"][(tag.code, tag.source)] += 1
        texts = [t.instruction for t in groups.get(name, [])]
        words = [re.findall(r"\w+", t.casefold()) for t in texts]  # a word, as the report defines it
        out[name] = {
            "trajectories": len(groups.get(name, [])), "unnamed": unnamed,
            "decisions": {d: decisions[d] for d in ("accept", "reject", "skip", "disputed", "pending")},
            "tools": {n: {"calls": f["calls"], "trajectories": len(f["trajectories"]),
                          "distinct_arguments": len(f["arguments"]),
                          "never_exercised": [p for p in props.get(n, []) if p not in f["seen"]],
                          "errors": {f"{c}/{s}": k for (c, s), k in f["errors"].items()}} for n, f in tools.items()},
            "chars": sorted(len(t) for t in texts), "words": [len(w) for w in words],
            "distinct_words": len({w for ws in words for w in ws}),
        }
    return out


def reported(data: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    """`curator report --json` in the shape ``independent`` counts."""
    out = {}
    for t in data["toolsets"]:
        tools = t["tools"] + ([t["not_in_schema"]] if t["not_in_schema"] else [])
        out[t["toolset"]] = {
            "trajectories": t["trajectories"], "unnamed": t["unnamed_calls"], "decisions": t["decisions"],
            "tools": {x["tool"]: {"calls": x["calls"], "trajectories": x["trajectories"],
                                  "distinct_arguments": x["distinct_arguments"], "never_exercised": x["never_exercised"],
                                  "errors": {f"{c}/{s}": k for c, n in x["errors"].items() for s, k in n.items() if k}}
                      for x in tools},
            "instructions": t["instructions"],
        }
    return out


def test_report_json_equals_an_independent_count(known: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--db", str(known), "report", "--json")
    assert code == 0, err
    data = json.loads(out)
    got, expected = reported(data), independent(known)
    assert set(got) == set(expected) == {"everyday", "hostile", None}
    for name, want in expected.items():
        have = got[name]
        assert have["trajectories"] == want["trajectories"]
        assert have["unnamed"] == want["unnamed"]
        assert have["decisions"] == want["decisions"]
        assert have["tools"] == want["tools"], name
        spread = have["instructions"]
        assert spread["count"] == want["trajectories"]
        assert (spread["chars"]["min"], spread["chars"]["max"]) == (want["chars"][0], want["chars"][-1])
        assert spread["chars"]["median"] == statistics.median(want["chars"])
        assert spread["words"]["median"] == statistics.median(want["words"])
        assert spread["distinct_words"] == want["distinct_words"]
    everyday = got["everyday"]
    assert sum(t["calls"] for t in everyday["tools"].values()) > 100
    assert any(k.endswith("/auto") for t in everyday["tools"].values() for k in t["errors"])  # flagged calls
    assert any(k == "content_error/human" for t in everyday["tools"].values() for k in t["errors"])
    assert everyday["decisions"]["disputed"] == 1 and everyday["decisions"]["skip"] > 0
    hostile = got["hostile"]["tools"]
    assert hostile[SCRIPT] == {"calls": 4, "trajectories": 3, "distinct_arguments": 2, "never_exercised": [],
                               "errors": {"wrong_tool/human": 1}}
    assert hostile[ESCAPE]["calls"] == 0 and hostile[ESCAPE]["never_exercised"] == ["x"]
    assert hostile["(not in schema)"]["calls"] == 1
    share = data["toolsets"][1]
    assert (share["parameters_exercised"], share["parameters"]) == (2, 3)
    assert share["duplicates"] == 0


def test_duplicates_count_trajectories_with_an_effective_duplicate_tag(known: Path, capsys) -> None:
    with Store.open(known) as store:
        ids = store.trajectory_ids()[:3]
        store.add_tag(ids[0], "duplicate", None, source="auto")
        store.add_tag(ids[1], "duplicate", None, source="auto")
        store.add_tag(ids[1], "duplicate", 1, annotator="ann")  # the same trajectory twice: counted once
        store.add_tag(ids[2], "duplicate", None, source="auto")
        store.remove_tag(ids[2], "duplicate", None, annotator="ann")  # a human said no: not a duplicate
    code, out, _ = run_cli(capsys, "--db", str(known), "report", "--json")
    assert code == 0
    by_name = {t["toolset"]: t for t in json.loads(out)["toolsets"]}
    assert by_name["everyday"]["duplicates"] == 2 and by_name["hostile"]["duplicates"] == 0
    code, out, _ = run_cli(capsys, "--db", str(known), "report", "--toolset", "everyday")
    assert "duplicates" in out[:out.index("\nTools")]  # a column of the toolsets table


def test_terminal_tables_show_the_numbers_and_data_as_inert_text(known: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "--db", str(known), "report", "--toolset", "hostile")
    assert code == 0
    assert "\x1b" not in out and "\\x1b[31mred" in out  # the escape sequence is shown, not obeyed
    assert "<script>" in out  # as text: the console reads no markup
    for title in ("Toolsets", "Tools", "Error codes by tool", "Decisions", "Instructions"):
        assert title in out
    assert "2/3" in out  # parameters exercised: q and the odd one, not x
    assert "everyday" not in out  # --toolset narrows the report


def test_a_toolset_filter_matches_the_whole_reports_part(known: Path) -> None:
    with Store.open(known) as store:
        whole = coverage(store).toolset("everyday")
        alone = toolset_coverage(store, "everyday")
    assert alone.to_dict() == whole.to_dict()


def test_gaps_are_the_least_called_tools_and_their_parameters_never_exercised(known: Path) -> None:
    with Store.open(known) as store:
        hostile = toolset_coverage(store, "hostile")
    assert hostile.gaps() == {ESCAPE: ["x"]}
    assert hostile.parameter_share == pytest.approx(2 / 3)


@pytest.mark.parametrize("args, message", [
    (["--toolset", "nope"], "no toolset named 'nope' (known: everyday, hostile)"),
    (["--html", "missing-dir/report.html"], "missing-dir/report.html"),
])
def test_bad_input_is_one_line_and_writes_nothing(known: Path, capsys, tmp_path: Path, monkeypatch, args,
                                                  message) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "--db", str(known), "report", *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "missing-dir").exists()


def test_no_such_store(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "--db", str(tmp_path / "none.db"), "report")
    assert code == 1 and "no such store" in err and not (tmp_path / "none.db").exists()


# -- the HTML file ----------------------------------------------------------------------------------------
class Page(HTMLParser):
    """Every element, attribute and text run of a page, and each table's rows as cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += [(tag, k, v) for k, v in attrs]
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("class") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        self._in_style = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_style:
            self.style += data


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_html_report_is_self_contained_with_hostile_names_escaped(known: Path, capsys, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, stdout, err = run_cli(capsys, "--db", str(known), "report", "--html", str(out), "--json")
    assert code == 0, err
    data = json.loads(stdout)
    page = parse(out.read_text(encoding="utf-8"))
    assert page.tags["script"] == 0 and page.tags["img"] == 0 and page.tags["link"] == 0
    assert not [a for a in page.attributes if a[1].startswith("on") or a[1] in ("src", "href")]
    assert "url(" not in page.style and "@import" not in page.style and "http" not in page.style
    assert page.tags["svg"] == 2 and page.tags["table"] == 5
    texts = "".join(page.text)
    assert SCRIPT in texts and HOSTILE_PARAM not in texts  # the parameter was exercised: not listed
    assert "\x1b" not in texts and "\\x1b[31mred" in texts
    rows = {(row[0], row[1]): row for row in page.tables["tools"][1:]}  # several toolsets: the first column
    for toolset in data["toolsets"]:
        for tool in toolset["tools"]:
            row = rows[(toolset["toolset"] or "(none)", visible(tool["tool"], SIGN))]
            assert (row[2], row[3]) == (str(tool["trajectories"]), str(tool["calls"]))
    overview = {row[0]: row for row in page.tables["toolsets"][1:]}
    assert overview["hostile"][4] == "2/3" and overview["hostile"][5] == "67%"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_report_opens_in_headless_chromium(known: Path, capsys, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert run_cli(capsys, "--db", str(known), "report", "--html", str(out))[0] == 0
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-500:]
    dom = parse(result.stdout)
    assert dom.tags["table"] == 5 and dom.tags["svg"] == 2 and dom.tags["rect"] > 10
    assert dom.tags["script"] == 0 and dom.tags["img"] == 0  # the hostile names stayed text in the browser too
    assert SCRIPT in "".join(dom.text)
    assert [row[0] for row in dom.tables["toolsets"][1:]] == ["everyday", "hostile", "(none)"]


def test_sections_follow_the_report(known: Path) -> None:
    from curator.report_view import charts, sections

    with Store.open(known) as store:
        found = coverage(store)
    by_key = {s.key: s for s in sections(found)}
    assert [row[0] for row in by_key["toolsets"].rows] == ["everyday", "hostile", "(none)"]
    calls = dict(charts(found)[0].bars)
    assert calls[f"hostile/{SCRIPT}"] == 4 and calls[f"hostile/{ESCAPE}"] == 0
    assert calls["hostile/(not in schema): 1 name"] == 1
