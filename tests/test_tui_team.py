"""Annotation teams in the app and the CLI: who decided what, the disagreements queue an adjudicator works
through, the annotator's name on every row, and the configured decision rule reaching exports."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from data_helpers import run_cli
from textual.pilot import Pilot
from tui_fixtures import make_store, screen_text, wait_until

from curator.app import CuratorApp
from curator.screens.review import ReviewScreen
from curator.settings import Config, ReviewSettings
from curator.widgets.queue_view import PAGE, QueueView
from store import Message, Store, Trajectory

#: The smallest terminal the screen is made for: what an adjudicator needs must show there.
SMALL = (80, 24)
RUN = CuratorApp.run


@pytest.fixture
def team_store(tmp_path: Path) -> Store:
    """ana and ben disagree on traj-01 and traj-02 and agree on traj-04; traj-03 is pending."""
    with make_store(tmp_path / "team.db") as store:
        for trajectory_id, ana, ben in [("traj-01", "accept", "reject"), ("traj-02", "reject", "accept"),
                                        ("traj-04", "accept", "accept")]:
            store.decide(trajectory_id, ana, annotator="ana")
            store.decide(trajectory_id, ben, annotator="ben")
        store.add_tag("traj-01", "param_missing", 2, annotator="ben")
        yield store


def queued_ids(app: CuratorApp) -> list[str]:
    queue = app.screen.query_one(QueueView)
    return [queue.row(i).id for i in range(queue.total)]


def shown_id(app: CuratorApp) -> str | None:
    screen = app.screen
    assert isinstance(screen, ReviewScreen)
    return screen.shown.trajectory.id if screen.shown else None


async def settle(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def choose_disagreements(pilot: Pilot[None]) -> None:
    """`/`, then by keyboard: back from the text box to the decision list, one down from "pending", apply."""
    await pilot.press("slash", "shift+tab", "shift+tab", "shift+tab", "shift+tab", "enter", "down", "enter",
                      "ctrl+s")
    await settle(pilot)


def last_review(store: Store) -> tuple[str, str, str, int]:
    return store.conn.execute("SELECT trajectory_id, decision, annotator, adjudication FROM reviews "
                              "ORDER BY id DESC LIMIT 1").fetchone()


async def test_an_adjudicator_works_through_exactly_the_disagreements(team_store: Store) -> None:
    app = CuratorApp(team_store, Config(), screen="review", annotator="cy")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert "adjudicating" not in screen_text(app)
        await choose_disagreements(pilot)
        assert queued_ids(app) == ["traj-01", "traj-02"] and shown_id(app) == "traj-01"
        text = screen_text(app)
        assert "⚖ adjudicating as cy" in text and "disputed" in text
        assert "⚖ disagreement: accepted by ana, rejected by ben" in text
        assert "tags: ana: none · ben: #2 param_missing" in text  # what each saw, side by side
        await pilot.press("a")
        await settle(pilot)
        assert team_store.decision("traj-01") == "accept" and not team_store.disagreement("traj-01")
        assert last_review(team_store) == ("traj-01", "accept", "cy", 1)
        assert queued_ids(app) == ["traj-02"] and shown_id(app) == "traj-02"
        assert "rejected by ana, accepted by ben" in screen_text(app)


async def test_an_adjudicator_skip_leaves_the_disagreement_for_later_and_undo_reopens_one(team_store: Store) -> None:
    app = CuratorApp(team_store, Config(), screen="review", annotator="cy")
    async with app.run_test(size=SMALL) as pilot:
        await choose_disagreements(pilot)
        await pilot.press("space")  # not an adjudication: cy's skip is no vote
        await settle(pilot)
        assert last_review(team_store) == ("traj-01", "skip", "cy", 0)
        assert team_store.disagreement("traj-01") and queued_ids(app) == ["traj-01", "traj-02"]
        assert shown_id(app) == "traj-02"
        await pilot.press("x", "u")
        await settle(pilot)
        assert team_store.decision("traj-02") == "disputed" and queued_ids(app) == ["traj-01", "traj-02"]
        assert shown_id(app) == "traj-02"


async def test_a_long_disagreements_queue_counts_each_adjudication_without_recounting(tmp_path: Path) -> None:
    n = PAGE + 20  # longer than a page, so the count is the screen's own, not the rows it fetched
    with Store.open(tmp_path / "long.db") as store:
        store.insert_trajectories(Trajectory(f"t{i:04d}", None, f"request {i}", "complete",
                                             messages=[Message("user", f"request {i}")]) for i in range(n))
        for i in range(n):
            store.decide(f"t{i:04d}", "accept", annotator="ana")
            store.decide(f"t{i:04d}", "reject", annotator="ben")
        app = CuratorApp(store, Config(), screen="review", annotator="cy")
        async with app.run_test(size=SMALL) as pilot:
            await choose_disagreements(pilot)
            queue = app.screen.query_one(QueueView)
            assert queue.total == n
            await pilot.press("x")
            await pilot.pause()
            assert queue.total == n - 1 and store.decision("t0000") == "reject"
            assert "reviewed 1 /" in screen_text(app)


async def test_an_agreed_trajectory_shows_who_decided_it(team_store: Store) -> None:
    app = CuratorApp(team_store, Config(), screen="review", annotator="cy")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("slash")
        await pilot.press("shift+tab", "shift+tab", "shift+tab", "shift+tab", "enter", "up", "up", "up", "enter",
                          "ctrl+s")  # "accepted"
        await settle(pilot)
        assert queued_ids(app) == ["traj-04"]
        text = screen_text(app)
        assert "votes: accepted by ana, accepted by ben" in text and "disagreement" not in text


async def test_a_name_from_the_data_is_shown_inert(team_store: Store) -> None:
    team_store.decide("traj-03", "accept", annotator="[bold]mal\x1b[2J")
    app = CuratorApp(team_store, Config(), screen="review", annotator="cy")
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("slash")
        await pilot.press("shift+tab", "shift+tab", "shift+tab", "shift+tab", "enter", "down", "down", "enter",
                          "ctrl+s")  # "all"
        await settle(pilot)
        await pilot.press("J", "J")
        await pilot.pause()
        assert shown_id(app) == "traj-03"
        assert "votes: accepted by [bold]mal\\x1b[2J" in screen_text(app)


async def test_the_app_decides_by_the_configured_rule(team_store: Store) -> None:
    team_store.decide("traj-02", "reject", annotator="dee")  # ana and dee reject, ben accepts
    app = CuratorApp(team_store, Config(review=ReviewSettings(rule="unanimous")), screen="review")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert team_store.decision_rule == "unanimous" and team_store.decision("traj-02") == "disputed"
        assert "✓ 1  ✗ 0" in screen_text(app)  # only traj-04 is everyone's accept


# -- the CLI -------------------------------------------------------------------------------------------
def headless(monkeypatch: pytest.MonkeyPatch, keys: Callable[[Pilot[None]], object]) -> list[CuratorApp]:
    """Run the app the CLI opens without a terminal, driven by ``keys`` (which quits it)."""
    ran: list[CuratorApp] = []

    def run_headless(app: CuratorApp) -> None:
        ran.append(app)
        RUN(app, headless=True, size=SMALL, auto_pilot=keys)

    monkeypatch.setattr(CuratorApp, "run", run_headless)
    return ran


async def tag_untag_mask_note_accept(pilot: Pilot[None]) -> None:
    """On traj-01's first flagged call: tag it parse_error and take the tag off again, toggle its mask, note
    it, accept the trajectory; quit."""
    await settle(pilot)
    await pilot.press("t", "enter", "t", "enter", "m", "n", *"why", "enter", "a", "q")


def annotators(store: Store) -> dict[str, set[str | None]]:
    """Who wrote each kind of human row."""
    queries = {"reviews": "SELECT annotator FROM reviews", "tags": "SELECT annotator FROM tags WHERE source = 'human'",
               "masks": "SELECT annotator FROM weight_marks", "notes": "SELECT annotator FROM notes"}
    return {kind: {row[0] for row in store.conn.execute(sql)} for kind, sql in queries.items()}


def test_the_annotator_option_and_config_reach_every_recorded_row(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_store(tmp_path / "team.db").close()
    (tmp_path / "curator.toml").write_text('[review]\nannotator = "ana"\n')
    ran = headless(monkeypatch, tag_untag_mask_note_accept)
    code, _, err = run_cli(capsys, "--db", "team.db", "review")
    assert code == 0, err
    with Store.open(tmp_path / "team.db") as store:
        assert annotators(store) == {"reviews": {"ana"}, "tags": {"ana"}, "masks": {"ana"}, "notes": {"ana"}}
        assert store.conn.execute("SELECT count(*) FROM tags WHERE source = 'human'").fetchone()[0] == 2

    async def accept_and_quit(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await wait_until(pilot, lambda: shown_id(pilot.app) == "traj-02")
        await pilot.press("a", "q")

    ran = headless(monkeypatch, accept_and_quit)
    code, _, err = run_cli(capsys, "--annotator", "zed", "--db", "team.db", "review")
    assert code == 0, err
    assert ran[0].annotator == "zed"
    with Store.open(tmp_path / "team.db") as store:
        assert store.conn.execute("SELECT annotator FROM reviews WHERE trajectory_id = 'traj-02'").fetchall() == [
            ("zed",)]


def exported_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "--db", "team.db", "export", str(out))
    assert code == 0, err
    return [json.loads(line)["id"] for line in out.read_text().splitlines()]


def test_the_configured_rule_decides_what_export_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with make_store(tmp_path / "team.db") as store:
        for annotator, decision in [("ana", "accept"), ("ben", "accept"), ("cy", "reject")]:
            store.decide("traj-02", decision, annotator=annotator)  # two accepts, one reject
        for annotator in ("ana", "ben"):
            store.decide("traj-04", "accept", annotator=annotator)
    config = tmp_path / "curator.toml"
    assert exported_ids(tmp_path, capsys) == ["traj-02", "traj-04"]  # majority, the default
    config.write_text('[review]\nrule = "unanimous"\n')
    assert exported_ids(tmp_path, capsys) == ["traj-04"]
    config.write_text('[review]\nrule = "majority"\n')
    assert exported_ids(tmp_path, capsys) == ["traj-02", "traj-04"]


@pytest.mark.parametrize(("table", "message"), [
    ('rule = "latest"', "curator.toml: review.rule: must be one of majority, unanimous, got 'latest'"),
    ('anotator = "ana"', "curator.toml: review.anotator: not a review setting (one of annotator, rule)"),
    ("annotator = 7", "curator.toml: review.annotator: must be str, got 7"),
    ('annotator = ""', "curator.toml: review.annotator: must name the annotator, got an empty string"),
])
def test_a_bad_review_table_is_one_error_line_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch, table: str,
                                                                   message: str) -> None:
    monkeypatch.chdir(tmp_path)
    with make_store(tmp_path / "team.db") as store:
        store.decide("traj-02", "accept", annotator="ana")
        store.decide("traj-02", "reject", annotator="ben")
    (tmp_path / "curator.toml").write_text(f"[review]\n{table}\n")
    code, out, err = run_cli(capsys, "--db", "team.db", "export", "out.jsonl")
    assert code == 1 and err == f"error: {message}\n" and out == ""
    assert not (tmp_path / "out.jsonl").exists()
    with Store.open(tmp_path / "team.db") as store:
        assert store.decision_rule == "majority" and store.decision("traj-02") == "disputed"


def test_an_empty_annotator_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--annotator", " ", "--db", str(tmp_path / "none.db"), "review")
    assert code == 1 and err == "error: --annotator: must name the annotator, got an empty string\n"
    assert not (tmp_path / "none.db").exists()
