"""benchmarks/time_to_coverage.py: the stop rule (with a fake evaluation, alone and inside a
real ``trainer.fit``) and the benchmark end to end at toy size (JSON structure)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_ttc():
    spec = importlib.util.spec_from_file_location(
        "time_to_coverage_benchmark", ROOT / "benchmarks/time_to_coverage.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeEvaluation:
    """Scores by generator step from a table; each call costs 10 fake seconds."""

    def __init__(self, table: dict[int, tuple[float, float]], clock: list[float]) -> None:
        self.table, self.clock, self.calls = table, clock, []

    def __call__(self, trainer, pl_module) -> dict[str, float]:
        step = pl_module.generator_steps_done
        self.calls.append(step)
        self.clock[0] += 10.0
        modes, hq = self.table.get(step, (1.0, 0.0))
        return {"modes": modes, "high_quality": hq, "reverse_kl": 0.1}


def test_reached_rule() -> None:
    ttc = load_ttc()
    assert ttc.reached({"modes": 8.0, "high_quality": 0.90}, 8)
    assert not ttc.reached({"modes": 8.0, "high_quality": 0.899}, 8)
    assert not ttc.reached({"modes": 7.0, "high_quality": 1.0}, 8)
    assert ttc.median_or_none([100, None, 300]) == 300  # not reached = +infinity
    assert ttc.median_or_none([100, None, None]) is None


def test_stop_callback_stops_at_first_hit_and_subtracts_evaluation_time() -> None:
    ttc = load_ttc()
    clock = [0.0]
    # step 20: all modes but HQ too low; 40: the hit; 60 would also hit
    fake = FakeEvaluation({20: (8, 0.5), 40: (8, 0.95), 60: (8, 0.99)}, clock)
    cb = ttc.TimeToCoverage(fake, 8, every=20, clock=lambda: clock[0])
    trainer = SimpleNamespace(should_stop=False, global_step=0)
    module = SimpleNamespace(generator_steps_done=0)
    cb.on_fit_start(trainer, module)
    clock[0] += 5.0  # set-up
    cb.on_train_start(trainer, module)
    for step in range(1, 101):
        clock[0] += 1.0  # one training step
        module.generator_steps_done = step
        cb.on_train_batch_end(trainer, module, None, None, step)
        if trainer.should_stop:
            break
    assert fake.calls == [20, 40]  # evaluated on the cadence, nothing after the hit
    assert step == 40 and trainer.should_stop
    assert cb.hit is not None and cb.hit["generator_step"] == 40
    # 5 s set-up + 40 steps; the first evaluation's 10 s subtracted
    assert cb.hit["train_seconds"] == pytest.approx(45.0)
    assert cb.hit["train_loop_seconds"] == pytest.approx(40.0)
    assert [p["reached"] for p in cb.curve] == [False, True]
    cb.on_train_end(trainer, module)  # no second evaluation of the hit step
    assert fake.calls == [20, 40]


def test_stop_callback_never_reached_evaluates_final_step() -> None:
    ttc = load_ttc()
    clock = [0.0]
    fake = FakeEvaluation({}, clock)
    cb = ttc.TimeToCoverage(fake, 8, every=20, clock=lambda: clock[0])
    trainer = SimpleNamespace(should_stop=False, global_step=0)
    module = SimpleNamespace(generator_steps_done=0)
    for step in range(1, 51):
        module.generator_steps_done = step
        cb.on_train_batch_end(trainer, module, None, None, step)
    cb.on_train_end(trainer, module)
    assert fake.calls == [20, 40, 50] and cb.hit is None and not trainer.should_stop


@pytest.mark.slow
def test_stop_rule_inside_trainer_fit(tmp_path: Path) -> None:
    """In a real fit of configs/ring/gan.yaml, a hit at step 40 ends training at step 40."""
    from mgan_lightning.cli import build_cli

    ttc = load_ttc()
    cli = build_cli(
        ["--config", str(ROOT / "configs/ring/gan.yaml"), "--seed_everything=0",
         f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false",
         "--trainer.logger=false", "--trainer.callbacks=[]",
         "--trainer.enable_checkpointing=false", "--data.init_args.num_train=2000"],
        run=False,
    )  # fmt: skip
    fake = FakeEvaluation({40: (8, 0.95)}, [0.0])
    cb = ttc.TimeToCoverage(fake, 8, every=20)
    cli.trainer.callbacks.insert(0, cb)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert fake.calls == [20, 40]
    assert cli.model.generator_steps_done == 40
    assert cb.hit["generator_step"] == 40


@pytest.mark.slow
def test_benchmark_end_to_end_tiny(tmp_path: Path) -> None:
    ttc = load_ttc()
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["--methods", "gan", "mgan", "--data", "ring", "--seeds", "1", "--max-steps", "40",
            "--every", "20", "--out-dir", str(out), "--run-dir", str(runs)]  # fmt: skip
    assert ttc.main(argv) == 0
    result = json.loads((out / "time_to_coverage.json").read_text())
    for key in ("command", "git_commit", "machine", "load_average_start", "load_average_end",
                "criterion", "summaries", "per_seed"):  # fmt: skip
        assert key in result
    assert (out / "time_to_coverage.md").read_text().startswith("# Time to coverage")
    assert (out / "time_to_coverage.png").stat().st_size > 0
    assert [(s["data"], s["method"]) for s in result["summaries"]] == [
        ("ring", "gan"),
        ("ring", "mgan"),
    ]
    for record in result["per_seed"]:
        steps = [e["generator_step"] for e in record["evaluations"]]
        assert steps[0] == 20 and steps == sorted(steps)
        assert record["total_modes"] == 8 and record["torch_threads"] == 1
        for e in record["evaluations"]:
            assert 0 <= e["modes"] <= 8 and 0 <= e["high_quality"] <= 1
            assert math.isfinite(e["train_seconds"]) and e["eval_seconds"] >= 0
        if record["reached"]:  # the stop rule: the run ends at its first hit
            assert record["evaluations"][-1]["reached"]
            assert record["stopped_at_step"] == record["steps"]
            assert not any(e["reached"] for e in record["evaluations"][:-1])
        else:
            assert record["stopped_at_step"] == 40 and steps[-1] == 40
            assert record["steps"] is None and record["seconds"] is None
    # finished seeds are reused on a rerun
    assert ttc.main(argv) == 0
    again = json.loads((out / "time_to_coverage.json").read_text())
    assert all(r.get("reused") for r in again["per_seed"])
