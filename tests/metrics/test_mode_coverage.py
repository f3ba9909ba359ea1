"""ModeCoverage on hand-made samples whose answers are known in closed form."""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mgan_lightning.metrics import ModeCoverage, assign_modes

STD = 0.01


def ring(num: int = 8, radius: float = 1.0) -> torch.Tensor:
    """Means on a circle, computed here independently of the data module."""
    return torch.tensor(
        [
            [radius * math.cos(2 * math.pi * i / num), radius * math.sin(2 * math.pi * i / num)]
            for i in range(num)
        ]
    )


def on_modes(modes: torch.Tensor, which: list[int], per_mode: int) -> torch.Tensor:
    return torch.cat([modes[i].expand(per_mode, 2) for i in which])


def scores(metric: ModeCoverage) -> dict[str, float]:
    return {k: float(v) for k, v in metric.compute().items()}


def test_all_modes_evenly_covered() -> None:
    modes = ring()
    metric = ModeCoverage(modes, STD)
    metric.update(on_modes(modes, list(range(8)), 25))
    out = scores(metric)
    assert out["modes"] == 8
    assert out["high_quality"] == pytest.approx(1.0)
    assert out["reverse_kl"] == pytest.approx(0.0, abs=1e-7)


def test_two_of_eight_modes_evenly() -> None:
    modes = ring()
    metric = ModeCoverage(modes, STD)
    metric.update(on_modes(modes, [2, 5], 40))
    out = scores(metric)
    assert out["modes"] == 2
    assert out["high_quality"] == pytest.approx(1.0)
    # q = (1/2, 1/2) on two modes, p = 1/8 each: KL = 2 * 1/2 * log(4) = log 4.
    assert out["reverse_kl"] == pytest.approx(math.log(4), rel=1e-5)


def test_one_mode_gives_log_of_the_number_of_modes() -> None:
    modes = ring()
    metric = ModeCoverage(modes, STD)
    metric.update(on_modes(modes, [7], 30))
    out = scores(metric)
    assert out["modes"] == 1
    assert out["reverse_kl"] == pytest.approx(math.log(8), rel=1e-5)


def test_half_the_samples_far_from_every_mode() -> None:
    modes = ring()
    good = on_modes(modes, list(range(8)), 10)  # 80 on the modes
    far = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-3.0, 0.2], [0.5, 0.5]]).repeat(20, 1)  # 80
    metric = ModeCoverage(modes, STD)
    metric.update(torch.cat([good, far])[torch.randperm(160)])
    out = scores(metric)
    assert out["high_quality"] == pytest.approx(0.5)
    assert out["modes"] == 8
    # The histogram is over the high-quality samples only: still uniform.
    assert out["reverse_kl"] == pytest.approx(0.0, abs=1e-7)


def test_a_low_quality_sample_does_not_cover_its_nearest_mode() -> None:
    modes = ring()
    near_but_not_close = modes[3] * 1.1  # 0.1 = 10 std away from mode 3, nearest is mode 3
    metric = ModeCoverage(modes, STD)
    metric.update(torch.cat([on_modes(modes, [0], 3), near_but_not_close[None]]))
    out = scores(metric)
    assert out["modes"] == 1
    assert out["high_quality"] == pytest.approx(0.75)


def _boundary_samples(mode: torch.Tensor, inside: float, outside: float, n: int) -> torch.Tensor:
    """n/2 samples at distance ``inside`` and n/2 at ``outside`` from ``mode``, in
    different directions."""
    angles = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
    radius = torch.where(torch.arange(n) % 2 == 0, torch.tensor(inside), torch.tensor(outside))
    offsets = torch.stack([angles.cos(), angles.sin()], 1) * radius[:, None]
    return mode + offsets


@pytest.mark.parametrize("n", [4, 40])  # torch.cdist switches algorithm above 25 rows
@pytest.mark.parametrize(
    "modes",
    [
        pytest.param(ring(), id="ring"),
        pytest.param(torch.tensor([[4.0, 4.0], [-4.0, -4.0]]), id="grid-corner"),
        pytest.param(torch.tensor([[50.0, 50.0], [60.0, 50.0]]), id="far-from-origin"),
    ],
)
def test_threshold_boundary_just_inside_and_just_outside_3_std(n: int, modes) -> None:
    samples = _boundary_samples(modes[0], 2.99 * STD, 3.01 * STD, n)
    nearest, good = assign_modes(samples, modes, STD)
    assert nearest.tolist() == [0] * n
    assert good.tolist() == [i % 2 == 0 for i in range(n)]
    metric = ModeCoverage(modes, STD)
    metric.update(samples)
    assert scores(metric)["high_quality"] == pytest.approx(0.5)


def test_custom_threshold() -> None:
    modes = ring()
    samples = _boundary_samples(modes[1], 0.99 * STD, 1.01 * STD, 30)
    metric = ModeCoverage(modes, STD, threshold=1.0)
    metric.update(samples)
    assert scores(metric)["high_quality"] == pytest.approx(0.5)
    wide = ModeCoverage(modes, STD, threshold=3.0)
    wide.update(samples)
    assert scores(wide)["high_quality"] == pytest.approx(1.0)


def test_non_uniform_weights() -> None:
    modes = ring(4)
    weights = [4.0, 2.0, 1.0, 1.0]  # p = (1/2, 1/4, 1/8, 1/8) after normalisation
    p = [0.5, 0.25, 0.125, 0.125]
    # Samples that follow p exactly: KL 0.
    exact = ModeCoverage(modes, STD, weights=weights)
    exact.update(torch.cat([modes[i].expand(c, 2) for i, c in enumerate([8, 4, 2, 2])]))
    assert scores(exact)["reverse_kl"] == pytest.approx(0.0, abs=1e-7)
    # Uniform samples against p: KL = sum 1/4 log((1/4) / p_i).
    uniform = ModeCoverage(modes, STD, weights=torch.tensor(weights))
    uniform.update(on_modes(modes, [0, 1, 2, 3], 5))
    expected = sum(0.25 * math.log(0.25 / pi) for pi in p)
    assert expected == pytest.approx(0.25 * math.log(2))
    assert scores(uniform)["reverse_kl"] == pytest.approx(expected, rel=1e-5)
    assert scores(uniform)["modes"] == 4


def test_rare_modes_covered_and_their_share_against_their_weight() -> None:
    modes = ring(4)
    # p = (0.45, 0.45, 0.05, 0.05): modes 2 and 3 are below half the uniform share (1/8).
    metric = ModeCoverage(modes, STD, weights=[9.0, 9.0, 1.0, 1.0])
    far = torch.full((10, 2), 5.0)  # low quality: count in N only
    metric.update(torch.cat([on_modes(modes, [0, 1], 40), on_modes(modes, [2], 10), far]))
    out = scores(metric)
    assert out["rare_modes"] == 1  # mode 2 only
    # 10 of N = 100 samples at the rare modes, whose mass is 0.1: ratio 1.
    assert out["rare_share_ratio"] == pytest.approx(1.0)
    assert out["rare_share_ratio_min"] == 0.0  # mode 3 never drawn
    doubled = ModeCoverage(modes, STD, weights=[9.0, 9.0, 1.0, 1.0])
    doubled.update(torch.cat([on_modes(modes, [0, 1], 35), on_modes(modes, [2, 3], 10), far]))
    assert scores(doubled)["rare_share_ratio"] == pytest.approx(2.0)  # 20 / 100 against 0.1
    assert scores(doubled)["rare_share_ratio_min"] == pytest.approx(2.0)


def test_no_rare_figures_without_rare_modes() -> None:
    metric = ModeCoverage(ring(), STD, weights=[1.0] * 7 + [0.6])  # 0.6 / 7.6 > 1 / 16
    metric.update(on_modes(ring(), list(range(8)), 5))
    assert not [k for k in scores(metric) if k.startswith("rare")]


@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_spread_is_the_samples_width_against_the_data(dim: int, scale: float) -> None:
    g = torch.Generator().manual_seed(dim)
    modes = torch.eye(dim)
    metric = ModeCoverage(modes, STD)
    which = torch.randint(0, dim, (20_000,), generator=g)
    metric.update(modes[which] + scale * STD * torch.randn(20_000, dim, generator=g))
    out = scores(metric)
    assert out["spread"] == pytest.approx(scale, rel=0.03)
    assert out["spread_max"] >= out["spread"]
    assert out["spread_max"] == pytest.approx(scale, rel=0.06)


def test_spread_of_a_collapsed_generator_is_near_zero_and_undefined_without_samples() -> None:
    modes = ring()
    metric = ModeCoverage(modes, STD)
    metric.update(on_modes(modes, [0, 1], 50))  # every sample exactly on its mode
    assert scores(metric)["spread"] < 0.02
    too_few = ModeCoverage(modes, STD)
    too_few.update(on_modes(modes, [0], ModeCoverage.MIN_SPREAD_SAMPLES - 1))
    assert math.isnan(scores(too_few)["spread"])


def test_updates_accumulate_and_reset_clears() -> None:
    modes = ring()
    metric = ModeCoverage(modes, STD)
    metric.update(on_modes(modes, [0], 10))
    metric.update(on_modes(modes, [4], 10))
    out = scores(metric)
    assert out["modes"] == 2
    assert out["reverse_kl"] == pytest.approx(math.log(4), rel=1e-5)
    metric.reset()
    metric.update(on_modes(modes, list(range(8)), 2))
    assert scores(metric)["modes"] == 8


def test_no_high_quality_sample_gives_nan_kl() -> None:
    metric = ModeCoverage(ring(), STD)
    metric.update(torch.full((5, 2), 10.0))
    out = scores(metric)
    assert out["modes"] == 0 and out["high_quality"] == 0
    assert math.isnan(out["reverse_kl"])


def test_images_are_flattened() -> None:
    modes = torch.zeros(2, 4)
    modes[1] = 1.0
    metric = ModeCoverage(modes, 0.1)
    metric.update(torch.ones(6, 1, 2, 2))
    out = scores(metric)
    assert out["modes"] == 1 and out["high_quality"] == 1


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="std"):
        ModeCoverage(ring(), 0.0)
    with pytest.raises(ValueError, match="threshold"):
        ModeCoverage(ring(), STD, threshold=-1)
    with pytest.raises(ValueError, match="modes"):
        ModeCoverage(torch.zeros(8), STD)


def _split_data() -> tuple[torch.Tensor, torch.Tensor, ModeCoverage]:
    modes = ring()
    first = torch.cat([on_modes(modes, [0, 1], 10), torch.full((5, 2), 9.0)])  # 25 samples
    second = on_modes(modes, [1, 6], 15)  # 30 samples
    single = ModeCoverage(modes, STD)
    single.update(torch.cat([first, second]))
    return first, second, single


def test_state_merges_like_a_two_process_reduction() -> None:
    first, second, single = _split_data()
    modes = single.modes
    a, b = ModeCoverage(modes, STD), ModeCoverage(modes, STD)
    a.update(first)
    b.update(second)
    a.merge_state(b)
    merged = scores(a)
    # Counts by hand: mode 0: 10, mode 1: 10 + 15, mode 6: 15; 50 good of 55.
    q = torch.tensor([10.0, 25.0, 15.0]) / 50
    expected_kl = float((q * (q / (1 / 8)).log()).sum())
    assert merged["modes"] == 3
    assert merged["high_quality"] == pytest.approx(50 / 55)
    assert merged["reverse_kl"] == pytest.approx(expected_kl, rel=1e-5)
    assert merged == pytest.approx(scores(single), nan_ok=True)


@pytest.mark.filterwarnings("ignore:.*called before the ``update``")
def test_summed_states_match_one_metric_over_all_samples() -> None:
    """torchmetrics' ``dist_reduce_fx="sum"``: states of the processes are added."""
    first, second, single = _split_data()
    a, b = ModeCoverage(single.modes, STD), ModeCoverage(single.modes, STD)
    a.update(first)
    b.update(second)
    assert a._reductions["mode_counts"] is not None  # a reduction is registered for DDP
    reduced = ModeCoverage(single.modes, STD)
    reduced.merge_state(
        {
            "mode_counts": a.mode_counts + b.mode_counts,
            "total": a.total + b.total,
            "distance_counts": a.distance_counts + b.distance_counts,
        }
    )
    assert scores(reduced) == pytest.approx(scores(single))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo_worker(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # A bounded wait: a lost peer fails the test in two minutes instead of gloo's thirty.
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=120))
    try:
        first, second, _ = _split_data()
        metric = ModeCoverage(ring(), STD)
        metric.update(first if rank == 0 else second)
        queue.put((rank, {k: float(v) for k, v in metric.compute().items()}))
        dist.barrier()  # neither rank tears down while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spawned workers import this module by name; put the repo first on their path so
    # ``tests`` is ours, not a ``tests`` package some dependency installed.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_gloo_worker, args=(_free_port(), queue), nprocs=2, start_method="spawn")
    results = dict(queue.get() for _ in range(2))
    _, _, single = _split_data()
    expected = scores(single)
    assert results[0] == pytest.approx(expected)
    assert results[1] == pytest.approx(expected)
