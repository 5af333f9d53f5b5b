"""The semantic judge (`curator judge`): the scripted judge offline, and the model judge through the real
``openai`` client against a loopback OpenAI-compatible server."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from curator.cli import main
from curator.judging.case import build_case
from curator.judging.config import JudgeConfig
from curator.settings import load as load_config
from fake_openai import FakeOpenAI, Step
from store import InputError, Message, Store, Tool, Toolset, Trajectory
from store.flagging import flag_all, flag_trajectory
from store.redaction import MASK, PREFIX
from store.taxonomy import MaskPolicy

POLICY = MaskPolicy.of()
KEY_ENV = "CURATOR_TEST_JUDGE_KEY"
KEY = "sk-judge-canary-0123456789abcdefghijkl"
WEATHER = Toolset("weather", [
    Tool("getWeatherForecast", "Forecast for a city.", {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1},
                                         "units": {"type": "string", "enum": ["metric", "imperial"]}},
        "required": ["city"]}),
    Tool("getWeatherAlerts", "Active alerts for a region.", {
        "type": "object", "properties": {"region": {"type": "string"}}, "required": ["region"]}),
])


def call(call_id: str, name: str, arguments: dict) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def asks(tid: str, *messages: Message, decision: str | None = None) -> Trajectory:
    return Trajectory(tid, "weather", "", "complete", decision=decision,
                      messages=[Message("system", "You can call the weather tools."), *messages])


def wrong_city(tid: str = "wrong-city") -> Trajectory:
    """Index 2: a call for Lyon when the user asked for Paris; 4: an answer with a number no tool gave."""
    return asks(tid,
                Message("user", "What's the weather in Paris for the next three days? Metric, please."),
                Message("assistant", None, tool_calls=[call("c1", "getWeatherForecast",
                                                            {"city": "Lyon", "days": 3, "units": "metric"})]),
                Message("tool", json.dumps({"city": "Lyon", "forecast": ["sun", "rain", "sun"]}), tool_call_id="c1"),
                Message("assistant", "Expect 25 degrees and sun in Lyon."))


def flagged_then_fine(tid: str = "flagged") -> Trajectory:
    """Index 2: a call missing its city (the flagger's); 4: the good call; 6: a supported answer."""
    return asks(tid,
                Message("user", "Any weather alerts for Brittany?"),
                Message("assistant", None, tool_calls=[call("c1", "getWeatherForecast", {"days": 2})]),
                Message("tool", json.dumps({"error": "missing 1 required positional argument: 'city'"}),
                        tool_call_id="c1"),
                Message("assistant", None, tool_calls=[call("c2", "getWeatherAlerts", {"region": "Brittany"})]),
                Message("tool", json.dumps({"region": "Brittany", "alerts": ["Gale warning"]}), tool_call_id="c2"),
                Message("assistant", "There is 1 alert for Brittany: a Gale warning."))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "j.db"
    with Store.open(path) as store:
        store.add_toolset(WEATHER)
        store.insert_trajectories([wrong_city(), flagged_then_fine()])
        flag_all(store, POLICY)
    return path


@pytest.fixture
def server():
    with FakeOpenAI() as running:
        yield running


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./curator.toml but the test's own
    monkeypatch.setenv(KEY_ENV, KEY)


def curator(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``curator ARGS`` in this process, as the console script runs it: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def model_judge(server: FakeOpenAI, db: Path, *extra: str) -> list[str]:
    return ["--db", str(db), "judge", "--base-url", server.base_url, "--model", "judge-m", "--api-key-env", KEY_ENV,
            *extra]


def judge_tags(db: Path, tid: str) -> dict[int, tuple[str, str | None, str | None]]:
    with Store.open(db) as store:
        return {t.message_index: (t.code, t.note, t.annotator) for t in store.effective_tags(tid)
                if t.origin == "judge"}


def weights(db: Path, tid: str) -> dict[int, int]:
    with Store.open(db) as store:
        return {m.index: m.weight for m in store.messages(tid) if m.role == "assistant"}


def judge_scores(db: Path) -> dict[str, tuple[float, str | None]]:
    with Store.open(db) as store:
        return {t: (s.value, s.model) for t, s in store.scores("judge").items()}


def store_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))


# -- the scripted judge ------------------------------------------------------------------------------------


def test_scripted_judge_tags_a_value_from_nowhere_and_an_answer_no_tool_gave(db, capsys):
    code, out, _ = curator(capsys, "--db", str(db), "judge", "--judge", "scripted")
    assert code == 0
    assert "2 trajectories judged by scripted: 1 of 2 calls content_error, 1 of 2 answers unsupported, " \
           "2 messages masked" in out
    tags = judge_tags(db, "wrong-city")
    assert tags[2][0] == "content_error" and 'city="Lyon"' in tags[2][1] and tags[2][2] == "scripted"
    assert "days" not in tags[2][1]  # "three days" says 3; units is an enum: not a value to ground
    assert tags[4][0] == "answer_unsupported" and "25" in tags[4][1]
    assert weights(db, "wrong-city") == {2: 0, 4: 0}
    assert judge_tags(db, "flagged") == {}  # the masked call is not asked about; 1 = the alerts list's length
    assert weights(db, "flagged") == {2: 0, 4: 1, 6: 1}
    assert judge_scores(db) == {"wrong-city": (0.8, "scripted"), "flagged": (0.9, "scripted")}


def test_judged_trajectories_are_skipped_unless_again_and_limit_and_review_choose(db, capsys):
    with Store.open(db) as store:
        store.insert_trajectories([wrong_city("accepted-one"), flagged_then_fine("pending-one")])
        store.decide("accepted-one", "accept")
    base = ["--db", str(db), "judge", "--judge", "scripted"]
    assert "1 trajectories judged" in curator(capsys, *base, "--review", "accepted")[1]
    assert set(judge_scores(db)) == {"accepted-one"}
    assert "2 trajectories judged" in curator(capsys, *base, "--limit", "2")[1]
    assert len(judge_scores(db)) == 3
    assert "1 trajectories judged" in curator(capsys, *base)[1]  # only the one left
    assert "4 trajectories judged" in curator(capsys, *base, "--again")[1]


def test_reflagging_keeps_the_judges_tags_and_their_mask(db, capsys):
    curator(capsys, "--db", str(db), "judge", "--judge", "scripted")
    with Store.open(db) as store:
        flag_all(store, POLICY)
        codes = {(t.message_index, t.code, t.origin) for t in store.effective_tags("wrong-city")}
    assert codes == {(2, "content_error", "judge"), (4, "answer_unsupported", "judge")}
    assert weights(db, "wrong-city") == {2: 0, 4: 0}


def test_a_human_untag_hides_the_judges_tag_and_a_rejudge_does_not_bring_it_back(db, capsys):
    curator(capsys, "--db", str(db), "judge", "--judge", "scripted")
    with Store.open(db) as store:  # what the review screen does on `t` over a tag that is there
        store.remove_tag("wrong-city", "content_error", 2, annotator="ana")
        flag_trajectory(store, "wrong-city", POLICY)
    assert 2 not in judge_tags(db, "wrong-city") and weights(db, "wrong-city")[2] == 1
    curator(capsys, "--db", str(db), "judge", "--judge", "scripted", "--again")
    assert 2 not in judge_tags(db, "wrong-city") and weights(db, "wrong-city") == {2: 1, 4: 0}
    with Store.open(db) as store:  # the judge said it again; the human's un-tag still wins
        said = store.conn.execute("SELECT count(*) FROM tags WHERE trajectory_id = 'wrong-city' AND "
                                  "origin = 'judge' AND code = 'content_error'").fetchone()[0]
    assert said == 1


def test_a_human_tag_or_correction_settles_a_call_and_it_is_not_asked_about(db):
    with Store.open(db) as store:
        store.add_tag("wrong-city", "wrong_tool", 2, annotator="ana")
        case = build_case(store.trajectory("wrong-city"), WEATHER.openai_tools(), POLICY)
    assert case.calls == [] and case.answer_index == 4 and case.settled == {2: ["wrong_tool"]}


# -- the model judge: the real openai client, a loopback server ------------------------------------------


def test_model_verdicts_are_stored_with_the_reason_and_the_model(db, server, capsys):
    server.script(Step.verdict({1: ("content_error", "the user asked for Paris, the call asks for Lyon")},
                               ("unsupported", "no tool result gives 25 degrees"), confidence=0.7), role="judge")
    code, out, err = curator(capsys, *model_judge(server, db, "--concurrency", "1"))
    assert code == 0, err
    assert "2 trajectories judged by judge-m: 1 of 2 calls content_error, 1 of 2 answers unsupported" in out
    assert judge_tags(db, "wrong-city") == {
        2: ("content_error", "getWeatherForecast: the user asked for Paris, the call asks for Lyon", "judge-m"),
        4: ("answer_unsupported", "no tool result gives 25 degrees", "judge-m")}
    assert weights(db, "wrong-city") == {2: 0, 4: 0}
    assert judge_scores(db) == {"wrong-city": (0.7, "judge-m"), "flagged": (0.9, "judge-m")}
    first, second = [r for r in server.requests if r.role == "judge"]
    assert first.body["model"] == "judge-m" and first.body["temperature"] == 0.0
    assert first.headers["authorization"] == f"Bearer {KEY}"
    asked = json.loads(second.body["messages"][1]["content"].split("\n", 1)[1])
    assert asked["judge"] == {"calls": [1], "answer": True}  # the flagger's masked call is shown, not asked about
    flagged, good = asked["conversation"][2], asked["conversation"][4]
    assert flagged["calls"][0]["call"] is None and flagged["already_flagged"] == ["param_missing"]
    assert good["calls"] == [{"call": 1, "tool": "getWeatherAlerts", "arguments": '{"region": "Brittany"}'}]
    assert [t["name"] for t in asked["tools"]] == ["getWeatherForecast", "getWeatherAlerts"]


def test_rejudging_replaces_the_judges_verdict(db, server, capsys):
    server.script(Step.verdict({1: ("content_error", "Lyon, not Paris")}, ("supported", "fine")), role="judge")
    curator(capsys, *model_judge(server, db, "--limit", "1"))
    assert judge_tags(db, "wrong-city")[2][0] == "content_error" and weights(db, "wrong-city")[2] == 0
    curator(capsys, *model_judge(server, db, "--again"))  # the automatic judge: everything is fine
    assert judge_tags(db, "wrong-city") == {} and weights(db, "wrong-city") == {2: 1, 4: 1}
    with Store.open(db) as store:
        assert {t.code for t in store.effective_tags("flagged")} == {"param_missing"}  # the flagger's stays


def test_a_reply_not_in_the_format_is_asked_for_again_saying_what_was_wrong(db, server, capsys):
    server.script(Step.answer("Sure! Both calls look fine to me."), Step.malformed(),
                  Step.answer(json.dumps({"calls": [{"call": 1, "verdict": "maybe", "reason": "", "confidence": 2}],
                                          "answer": None})),
                  Step.verdict({1: ("ok", "Paris")}, ("supported", "sun")), role="judge")
    code, out, err = curator(capsys, *model_judge(server, db, "--limit", "1"))
    assert code == 0, err
    assert "1 trajectories judged" in out and "1 retries" in out  # the cut-off body: the transport's retry
    bodies = [r.body["messages"] for r in server.requests if r.role == "judge"]
    assert [len(b) for b in bodies] == [2, 4, 4, 6]
    assert "no JSON object in the reply" in bodies[1][-1]["content"]
    assert "calls/0/verdict: 'maybe' is not one of ['ok', 'content_error']" in bodies[3][-1]["content"]
    assert judge_scores(db) == {"wrong-city": (0.9, "judge-m")}


def test_replies_that_stay_unreadable_are_counted_and_change_nothing(db, server, capsys):
    server.script(*[Step.answer('{"calls": [], "answer": null}')] * 3, role="judge")
    code, out, err = curator(capsys, *model_judge(server, db, "--limit", "1"))
    assert code == 1 and "Traceback" not in err
    assert "1 trajectories left as they were: judge reply unreadable" in out
    assert "wrong-city: calls asked about: [1]; missing [1]" in out and "(the last of 3 replies)" in out
    assert judge_tags(db, "wrong-city") == {} and judge_scores(db) == {}
    code, out, _ = curator(capsys, *model_judge(server, db, "--json"))
    assert code == 0 and json.loads(out)["judge_reply_unreadable"] == [] and json.loads(out)["judged"] == 2


def test_a_bad_key_is_one_line_and_writes_nothing(db, server, capsys):
    server.script(*[Step.error(401, message=f"Incorrect API key provided: {KEY}")] * 4, role="judge")
    code, out, err = curator(capsys, *model_judge(server, db))
    assert code == 1 and out == ""
    assert err == f"error: judge model: HTTP 401: Incorrect API key provided: {MASK}\n"
    assert judge_scores(db) == {} and judge_tags(db, "wrong-city") == {}
    assert weights(db, "wrong-city") == {2: 1, 4: 1} and KEY[:PREFIX].encode() not in store_bytes(db)


def test_the_key_never_reaches_the_store_or_the_output(db, server, capsys):
    server.script(Step.error(500, message=f"upstream rejected Bearer {KEY}"),
                  Step.verdict({1: ("content_error", f"your key {KEY[:20]} and Lyon")}, ("supported", KEY)),
                  role="judge")
    code, out, err = curator(capsys, *model_judge(server, db, "--json", "--concurrency", "1"))
    assert code == 0, err
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert KEY[:PREFIX] not in out + err
    assert judge_tags(db, "wrong-city")[2][1] == f"getWeatherForecast: your key {MASK} and Lyon"
    with Store.open(db) as store:
        store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    assert KEY[:PREFIX].encode() not in store_bytes(db)


def test_no_model_or_key_and_bad_settings_are_one_line_errors(db, tmp_path, capsys, monkeypatch):
    code, _, err = curator(capsys, "--db", str(db), "judge")
    assert code == 1 and err.startswith("error: judge: model: no judge model") and err.count("\n") == 1
    monkeypatch.delenv(KEY_ENV)
    code, _, err = curator(capsys, "--db", str(db), "judge", "--model", "m", "--api-key-env", KEY_ENV)
    assert code == 1 and f"no API key: set the environment variable {KEY_ENV}" in err
    (tmp_path / "curator.toml").write_text('[judge]\nmodel = "m"\nconcurency = 2\n')
    code, _, err = curator(capsys, "--db", str(db), "judge")
    assert code == 1 and "curator.toml: judge.concurency: not a judge setting" in err
    assert judge_scores(db) == {}


def test_the_judge_section_of_the_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[judge]\nmodel = "qwen3-32b"\nbase_url = "http://127.0.0.1:8000/v1"\napi_key_env = "MY_KEY"\n'
                    "concurrency = 16\n")
    judge = load_config(path).judge
    assert (judge.model, judge.base_url, judge.api_key_env, judge.concurrency) == (
        "qwen3-32b", "http://127.0.0.1:8000/v1", "MY_KEY", 16)
    assert load_config(tmp_path / "c.toml").judge.reply_attempts == JudgeConfig().reply_attempts
    for bad, where in (('api_key = "sk-x"', "judge.api_key"), ("concurrency = 0", "concurrency"),
                       ('concurrency = "8"', "judge.concurrency")):
        path.write_text(f'[judge]\nmodel = "m"\nbase_url = "http://x/v1"\n{bad}\n')
        with pytest.raises(InputError, match=where):
            load_config(path).judge.checked()


# -- the review screen shows the judge's reason ----------------------------------------------------------


async def test_the_review_screen_shows_the_judges_reason_as_inert_text(tmp_path):
    from curator.app import CuratorApp
    from curator.settings import Config
    from tui_fixtures import screen_text

    with Store.open(tmp_path / "r.db") as store:
        store.add_toolset(WEATHER)
        store.insert_trajectories([wrong_city()])
        store.replace_auto_tags("wrong-city", [(2, "content_error", "Lyon, not Paris [bold]x[/bold] \x1b[31mred")],
                                origin="judge", annotator="judge-m")
        app = CuratorApp(store, Config(), screen="review", annotator="ann")
        async with app.run_test(size=(140, 44)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            shown = screen_text(app)
    assert "⚑ content_error (judge-m): Lyon, not Paris [bold]x[/bold] \\x1b[31mred" in shown
