"""LinearDecay: constant, then linear to zero, and restarting every ``period`` steps."""

from __future__ import annotations

import pytest
import torch

from mgan_lightning.methods.resume import ConfiguredOptimization
from mgan_lightning.schedules import LinearDecay, resolve_step


def learning_rates(steps: int, **kwargs) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = LinearDecay(optimizer, **kwargs)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_decays_linearly_to_zero_and_stays() -> None:
    assert learning_rates(7, start=2, end=4) == pytest.approx([1, 1, 1, 0.5, 0, 0, 0])


def test_period_restarts_the_schedule() -> None:
    assert learning_rates(9, start=1, end=3, period=4) == pytest.approx(
        [1, 1, 0.5, 0, 1, 1, 0.5, 0, 1]
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start": 3, "end": 3}, "start < end"),
        ({"start": 0, "end": 5, "period": 4}, "end <= period"),
    ],
)
def test_bad_settings_are_refused(kwargs, message) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=message):
        LinearDecay(optimizer, **kwargs)


def test_fractions_are_of_the_run_length() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = LinearDecay(optimizer, start=0.5, end=1.0)
    scheduler.set_run_length(8)
    assert (scheduler.start, scheduler.end) == (4, 8)
    scheduler.set_run_length(4000)  # a shorter or longer run keeps its recipe
    assert (scheduler.start, scheduler.end) == (2000, 4000)


def test_fractions_in_a_period_are_of_the_period() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = LinearDecay(optimizer, start=0.5, end=1.0, period=10)
    scheduler.set_run_length(100)
    assert (scheduler.start, scheduler.end) == (5, 10)


@pytest.mark.parametrize(
    "value, length, expected",
    [(0.5, 4000, 2000), (300, 4000, 300), (1.0, 7, 7), (0, None, 0), (0.25, 10, 2)],
)
def test_resolve_step(value, length, expected) -> None:
    assert resolve_step(value, length) == expected


@pytest.mark.parametrize(
    "value, length, message",
    [
        (1.5, 10, r"\[0, 1\]"),
        (-3, 10, ">= 0"),
        (0.5, None, "max_generator_steps"),
        ("a", 1, "step"),
    ],
)
def test_resolve_step_refuses(value, length, message) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_step(value, length)


def test_resume_reapplies_the_configured_schedule_and_rate() -> None:
    """A checkpoint of an 8-step run resumed as a 16-step run with a new learning rate: the
    schedule's step count and Adam's moments come from the checkpoint, its boundaries and
    rate from the configuration given now."""
    weight = torch.nn.Parameter(torch.ones(2))

    def build(lr: float, length: int):
        optimizer = torch.optim.Adam([weight], lr=lr)
        scheduler = LinearDecay(optimizer, start=0.5, end=1.0)
        scheduler.set_run_length(length)
        return optimizer, scheduler

    optimizer, scheduler = build(1.0, 8)
    for _ in range(6):
        weight.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
    saved = optimizer.state_dict(), scheduler.state_dict()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)  # step 6 of decay 4 -> 8

    optimizer, scheduler = build(0.1, 16)
    configured = ConfiguredOptimization.record([optimizer], [{"scheduler": scheduler}])
    optimizer.load_state_dict(saved[0])
    scheduler.load_state_dict(saved[1])
    assert scheduler.end == 8 and optimizer.param_groups[0]["initial_lr"] == 1.0  # restored
    configured.reapply(16)
    assert scheduler.last_epoch == 6 and (scheduler.start, scheduler.end) == (8, 16)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # before the new decay
    assert optimizer.state[weight]["step"] == 6  # Adam's state kept
