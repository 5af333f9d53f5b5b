"""The demo's model: the compact template, the cache directory, the full-finetune check, the corpus writer, the
demo store's `T` defaults, the evaluation that starts by itself, and the runs screen's comparison.

Every test here uses a temporary cache directory (``CURATOR_CACHE``), never the user's ``~/.cache``.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from curator import launcher
from curator.demo_model import (DEMO_PRESET, DEMO_TOOLSET, PRESET_KEY, corpus_path, ensure_corpus, prepare_store,
                                store_preset)
from curator.settings import TrainSettings
from curator.settings import load as load_config
from curator.sim import SimConfig, Simulation
from curator.widgets.run_panels import RunDetails
from store import Store
from store.taxonomy import MaskPolicy
from training.config import DEMO, DEMO_RECIPE_ENV, DEMO_TRAIN, ArgumentError, DemoBase, demo_base_dir
from training.templates import TEMPLATES

TINY_CORPUS = json.dumps({"corpus_per_toolset": 3})


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CURATOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DEMO_RECIPE_ENV, raising=False)
    return tmp_path / "cache"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_the_compact_template_names_the_tools_on_one_line_and_keeps_chatml_calls() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    messages = [{"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}]
    # rendered as transformers renders chat templates (trim_blocks, lstrip_blocks)
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(TEMPLATES["compact"])
    text = template.render(messages=messages, tools=TOOLS, add_generation_prompt=False)
    assert "# Tools: get_weather\nCall a tool as <tool_call>" in text
    assert '"parameters"' not in text and "<tools>" not in text  # no schema
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>' in text


def test_bench_ablation_uses_the_built_in_template() -> None:
    source = Path(__file__).resolve().parents[1].joinpath("bench", "ablation.py").read_text()
    assert "def compact_chatml" not in source and '"compact"' in source


def test_demo_base_dir_follows_curator_cache_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    assert demo_base_dir() == tmp_path / "cache" / "demo-base-v1"
    monkeypatch.delenv("CURATOR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo_base_dir() == tmp_path / "xdg" / "curator" / "demo-base-v1"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert demo_base_dir() == tmp_path / "home" / ".cache" / "curator" / "demo-base-v1"


def test_the_recipe_override_is_read_from_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DemoBase.current() == DemoBase()
    monkeypatch.setenv(DEMO_RECIPE_ENV, '{"max_steps": 5, "tiny": {"hidden_size": 32}}')
    recipe = DemoBase.current()
    assert recipe.max_steps == 5 and recipe.tiny["hidden_size"] == 32 and recipe.tiny["vocab_size"] == 2048
    monkeypatch.setenv(DEMO_RECIPE_ENV, '{"steps": 5}')
    with pytest.raises(ArgumentError, match=DEMO_RECIPE_ENV):
        DemoBase.current()


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "training", "sft", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.slow
def test_full_finetune_refuses_an_adapter_directory_in_one_line(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    data = tmp_path / "d.jsonl"
    data.write_text("")
    done = _train("--data", str(data), "--full-finetune", "--base-model", str(adapter), "--output",
                  str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --full-finetune trains a full model: {adapter} holds a LoRA adapter"


def test_full_finetune_is_allowed_on_tiny_demo_and_a_full_model_directory(tmp_path: Path) -> None:
    from training.models import is_adapter

    full = tmp_path / "full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    assert not is_adapter("tiny") and not is_adapter(DEMO) and not is_adapter(str(full))
    assert not is_adapter("Qwen/Qwen2.5-0.5B-Instruct")


def test_demo_base_without_a_corpus_says_where_it_looked(cache: Path) -> None:
    from training.demo_base import ensure
    from training.errors import TrainingError

    with pytest.raises(TrainingError, match=f"no demo corpus at {cache / 'demo-base-v1' / 'corpus.jsonl'}"):
        ensure()


def test_the_corpus_is_written_once_from_the_other_toolsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEMO_RECIPE_ENV, TINY_CORPUS)
    path = ensure_corpus()
    assert path == corpus_path() and path.parent == demo_base_dir()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    names = {t["function"]["name"] for line in lines for t in json.loads(line["tools"])}  # a JSON string
    toolsets = {json.loads(line["meta"])["toolset"] for line in lines}
    assert len(lines) == 3 * len(DemoBase().corpus_toolsets) and toolsets == set(DemoBase().corpus_toolsets)
    assert DEMO_TOOLSET not in toolsets and not any("weather" in n.lower() for n in names)
    assert [p.name for p in path.parent.iterdir()] == ["corpus.jsonl"]  # no temporary left behind
    stamp = path.stat().st_mtime_ns
    assert ensure_corpus() == path and path.stat().st_mtime_ns == stamp


def _demo_store(db: Path, n: int = 8, seed: int = 0) -> SimConfig:
    config = SimConfig().with_changes(toolset=DEMO_TOOLSET, n=n, backend="scripted", seed=seed)
    with Store.open(db) as store:
        assert prepare_store(store, config, gold=12) == 12
        asyncio.run(Simulation(store, config, policy=MaskPolicy.of()).run())
    return config


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_demo_store_holds_gold_items_no_trajectory_asks(tmp_path: Path, seed: int) -> None:
    _demo_store(tmp_path / "d.db", n=24, seed=seed)
    with Store.open(tmp_path / "d.db") as store:
        requests = {t.instruction for t in store.iter_trajectories()}
        gold = list(store.gold_items())
        assert len(requests) == 24 and len(gold) == 12 and {g.toolset for g in gold} == {DEMO_TOOLSET}
        assert not requests & {g.messages[1]["content"] for g in gold}
        assert store.setting(PRESET_KEY) == DEMO_PRESET


def test_t_on_the_demo_store_defaults_to_the_demo_recipe_and_train_overrides_it(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _demo_store(tmp_path / "d.db")
    with Store.open(tmp_path / "d.db") as store:
        preset = store_preset(store)
    with Store.open(tmp_path / "other.db") as store:
        assert store_preset(store) == {}
    assert preset == DEMO_TRAIN
    config = TrainSettings(preset=preset).config()
    assert (config.base_model, config.full_finetune, config.max_steps) == (DEMO, True, DEMO_TRAIN["max_steps"])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "curator.toml").write_text("[train]\nmax_steps = 7\n")
    settings = load_config().train
    settings.preset = preset
    assert settings.config().max_steps == 7 and settings.config().base_model == DEMO
    assert "--max-steps" in settings.argv() and settings.argv()[settings.argv().index("--max-steps") + 1] == "7"
    assert settings.to_table() == {"max_steps": 7}  # the preset is the store's, never written to [train]


def test_the_app_gives_t_the_demo_stores_preset(tmp_path: Path) -> None:
    from curator.app import CuratorApp
    from curator.settings import Config

    _demo_store(tmp_path / "d.db")
    app = CuratorApp(Store.open(tmp_path / "d.db"), Config(), screen="runs", annotator="ann")
    assert app.config.train.config().base_model == DEMO and app.config.train.to_table() == {}


def test_t_writes_the_corpus_before_launching_on_the_demo_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.setenv(DEMO_RECIPE_ENV, TINY_CORPUS)
    _demo_store(tmp_path / "d.db")
    with Store.open(tmp_path / "d.db") as store:
        for t in list(store.iter_trajectories(status="complete")):
            store.decide(t.id, "accept")
        preset = store_preset(store)
    launched: list[list[str]] = []
    monkeypatch.setattr(launcher, "launch_detached", lambda db, kind, algorithm, args, dataset=None:
                        launched.append([*args, str(corpus_path().is_file())]) or "run1")
    assert launcher.export_and_train(str(tmp_path / "d.db"), TrainSettings(preset=preset), MaskPolicy.of()) == "run1"
    assert launched[0][-1] == "True" and "--full-finetune" in launched[0] and "demo" in launched[0]


def _finished_sft(store: Store, base_model: str, output: str) -> str:
    run = store.create_run("train", "sft", base_model, {"base_model": base_model, "full_finetune": True},
                           output_dir=output)
    store.update_run(run, status="completed", finished_at="2026-01-01T00:01:00.000Z")
    return run


def test_a_completed_demo_run_is_evaluated_against_its_base_by_itself_once(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "d.db")
    with Store.open(db) as store:
        demo = _finished_sft(store, DEMO, str(tmp_path / "out"))
        _finished_sft(store, "tiny", str(tmp_path / "other"))  # not the demo's: `e` evaluates it
        runs = store.runs()
    assert [r.id for r in launcher.auto_evaluated(runs)] == [demo]
    started: list[list[str]] = []

    def launch(db: str, kind: str, algorithm: str, args: list[str], dataset=None) -> str:
        started.append(args)
        with Store.open(db) as s:
            return s.create_run("eval", "eval", args[1], {"model": args[1]})

    monkeypatch.setattr(launcher, "launch_detached", launch)
    assert len(launcher.start_auto_evaluations(db, runs)) == 2
    assert started == [["--model", str(tmp_path / "out")], ["--model", DEMO]]
    with Store.open(db) as store:
        for run in store.runs():
            if run.kind == "eval":
                store.update_run(run.id, status="failed", error="boom")
        runs = store.runs()
    assert launcher.auto_evaluated(runs) == []  # a failed evaluation is not retried by itself


def test_the_runs_screen_starts_the_demo_evaluations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curator.app import CuratorApp
    from curator.screens import runs as runs_screen
    from curator.settings import Config

    db = tmp_path / "d.db"
    with Store.open(db) as store:
        demo = _finished_sft(store, DEMO, str(tmp_path / "out"))
    calls: list[str] = []
    monkeypatch.setattr(runs_screen, "start_auto_evaluations", lambda db, runs: calls.append(db) or ["e1", "e2"])

    async def drive() -> None:
        app = CuratorApp(Store.open(db), Config(), screen="runs", annotator="ann")
        async with app.run_test() as pilot:
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            pilot.app.screen._reload()  # a second look does not start them twice
            await pilot.app.workers.wait_for_complete()
            assert demo in pilot.app.screen.auto_started

    asyncio.run(drive())
    assert calls == [str(db)]


def _rendered(widget: RunDetails) -> str:
    console = Console(width=100, record=True)
    console.print(widget.content if hasattr(widget, "content") else widget.renderable)
    return console.export_text()


def test_run_details_say_what_the_demo_model_is_and_show_the_difference(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d.db") as store:
        sft = store.run(_finished_sft(store, DEMO, str(tmp_path / "out")))
        scored = []
        for model, ts in ((str(tmp_path / "out"), 0.45), (DEMO, 0.0)):
            ev = store.create_run("eval", "eval", model, {})
            store.update_run(ev, status="completed", summary={"metrics": {"ts": ts, "pi": ts / 2, "cf": 0.0, "n": 60}})
            scored.append(store.run(ev))
    details = RunDetails()
    details.show(sft, scored[0], scored[1], DEMO)
    text = _rendered(details)
    assert DemoBase.describe() in text.replace("\n", " ") or "pretrained once" in text
    assert "full fine-tune" in text
    trained, base, difference = (next(line for line in text.splitlines() if line.strip().startswith(w))
                                 for w in ("trained", "base demo", "difference"))
    assert "45%" in trained and "0%" in base
    assert difference.split()[1:4] == ["+45", "+22.5", "±0"]


#: A smaller demo base (``$CURATOR_DEMO_RECIPE``: half the steps on 600 trajectories, not 2,000), so the
#: end-to-end test builds it in well under a minute.
def test_a_second_run_waits_for_the_build_rather_than_building_twice(cache: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from training import demo_base

    root = demo_base_dir()
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text("{}\n")
    builds: list[int] = []

    def slow_build(corpus: Path, model: Path, recipe: DemoBase) -> None:
        builds.append(1)
        time.sleep(0.3)
        model.mkdir()

    monkeypatch.setattr(demo_base, "_build", slow_build)
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(demo_base.ensure())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == [1] and got == [root / "model"] * 2 and demo_base.ready()


def test_the_t_dialog_says_what_the_demo_model_is(tmp_path: Path) -> None:
    from curator.app import CuratorApp
    from curator.settings import Config

    _demo_store(tmp_path / "d.db")
    with Store.open(tmp_path / "d.db") as store:
        for t in list(store.iter_trajectories(status="complete")):
            store.decide(t.id, "accept")

    async def drive() -> str:
        app = CuratorApp(Store.open(tmp_path / "d.db"), Config(), screen="review", annotator="ann")
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("T")
            await pilot.pause()
            return " ".join(str(w.render()) for w in app.screen.query("Static"))

    text = asyncio.run(drive())
    assert DemoBase.describe() in text and "builds it once" in text
