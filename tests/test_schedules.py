"""LinearDecay: constant, then linear to zero, and restarting every ``period`` steps."""

from __future__ import annotations

import pytest
import torch

from mgan_lightning.schedules import LinearDecay


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
