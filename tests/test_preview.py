"""``python -m training preview``: the JSON contract, inert text, refusals."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from real_templates import CASES  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.models import load_tokenizer  # noqa: E402
from training_fixtures import records, write_jsonl  # noqa: E402


@pytest.fixture
def data(tmp_path):
    rows = records(3, extra_turns=1)
    rows[0]["messages"][1]["content"] = "Weather? [bold red]x[/] \x1b[31mred\x07"
    rows[0]["meta"]["tags"] = [{"code": "param_missing", "source": "auto", "message": 2, "note": None}]
    return write_jsonl(tmp_path / "data.jsonl", rows), rows


def preview(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["preview", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_tokens_concatenate_to_the_render_with_their_weights(data, capsys):
    path, rows = data
    code, out, _ = preview(capsys, "--data", str(path), "--json")
    assert code == 0
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["id"] for o in objects] == ["t0", "t1", "t2"]
    tokenizer = load_tokenizer("tiny", records=rows)
    for obj, row in zip(objects, rows):
        assert set(obj) == {"id", "tokens", "refused", "truncated"}
        assert obj["refused"] is None and obj["truncated"] is False
        render = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        assert "".join(text for text, _ in obj["tokens"]) == render
        weights = [w for _, w in obj["tokens"]]
        assert min(weights) == 0 and 1 in weights and max(weights) > 1  # PKT key tokens carry their weight
        trained = "".join(text for text, w in obj["tokens"] if w > 0)
        assert "What" not in trained and "helpful" not in trained and "<tool_response>" not in trained
    masked_call = "".join(t for t, w in objects[0]["tokens"] if w == 0 and t)
    assert "town" in masked_call  # the failed call (weight 0) is shown, untrained


def test_truncation_is_reported_and_tokens_are_the_kept_prefix(data, capsys):
    path, rows = data
    code, out, _ = preview(capsys, "--data", str(path), "--json", "--id", "t1", "--max-length", "40")
    obj = json.loads(out)
    assert code == 0 and obj["truncated"] is True and len(obj["tokens"]) == 40
    render = load_tokenizer("tiny", records=rows).apply_chat_template(rows[1]["messages"], tools=rows[1]["tools"],
                                                                      tokenize=False)
    assert render.startswith("".join(t for t, _ in obj["tokens"]))


def test_refusal_is_reported_with_the_templates_reason(data, capsys):
    path, _ = data
    gemma = next(c for c in CASES if c.name == "gemma3")
    code, out, _ = preview(capsys, "--data", str(path), "--json", "--chat-template", str(gemma.path()), "--id", "t1")
    obj = json.loads(out)
    assert code == 0 and obj["tokens"] == []
    assert obj["refused"] == "chat template refused trajectory t1: Conversation roles must alternate user/assistant/user/assistant/..."
    code, out, _ = preview(capsys, "--data", str(path), "--chat-template", str(gemma.path()), "--id", "t1")
    assert "refused: chat template refused trajectory t1" in out


def test_text_from_data_prints_inertly_with_a_summary(data, capsys):
    path, _ = data
    code, out, _ = preview(capsys, "--data", str(path), "--id", "t0")
    assert code == 0
    assert "[bold red]x[/]" in out  # shown as typed, not applied as markup
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[31mred\\x07" in out
    assert "masked message 2: weight 0 (param_missing)" in out
    assert "trainable" in out and "key" in out


def test_bad_input_is_one_error_line(tmp_path, capsys):
    code, out, err = preview(capsys, "--data", str(tmp_path / "missing.jsonl"))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: dataset not found: {tmp_path / 'missing.jsonl'}"]
    path = write_jsonl(tmp_path / "d.jsonl", records(1))
    code, _, err = preview(capsys, "--data", str(path), "--id", "nope")
    assert code == 2 and err.strip() == f"error: {path}: no trajectory nope"
