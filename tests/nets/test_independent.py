"""IndependentGenerators: K generators with no shared layer, run by vmap, behave like K
separate networks: the same outputs, gradients only where allowed, per-slot batch-norm
statistics, one slot reset at a time, fixed checkpoint shapes."""

from __future__ import annotations

import pytest
import torch

from mgan_lightning.nets import DCGAN, MLP, IndependentGenerators


def plain_copy(gens: IndependentGenerators, k: int) -> torch.nn.Module:
    """An ordinary network holding slot ``k``'s weights and buffers."""
    net = gens.make()
    state = {name: getattr(gens, name.replace(".", "__"))[k] for name in gens.param_names}
    state |= {name: getattr(gens, name.replace(".", "__"))[k] for name in gens.buffer_names}
    net.load_state_dict(state)
    return net


@pytest.mark.parametrize(
    ("arch", "shape"), [(MLP(16, 2, 16, 2), (2,)), (DCGAN(width=8), (3, 32, 32))]
)
def test_each_slot_computes_what_its_own_network_computes(arch, shape) -> None:
    torch.manual_seed(0)
    gens = arch.independent_generators(3, 6, shape)
    nets = [plain_copy(gens, k) for k in range(3)]
    shared, separate = torch.randn(5, 6), torch.randn(3, 5, 6)
    for mode in ("train", "eval"):
        gens.train(mode == "train")
        for net in nets:
            net.train(mode == "train")
        out_shared, out_separate = gens(shared), gens(separate)
        assert out_shared.shape == (3, 5, *shape)
        for k, net in enumerate(nets):
            assert torch.allclose(out_shared[k], net(shared)[0], atol=1e-5)
            assert torch.allclose(out_separate[k], net(separate[k])[0], atol=1e-5)
            assert torch.allclose(gens.forward_one(k, shared), net(shared)[0], atol=1e-5)
    # the slots really are different networks
    assert not torch.allclose(out_shared[0], out_shared[1])


def test_batch_norm_statistics_are_per_slot() -> None:
    torch.manual_seed(0)
    gens = DCGAN(width=8).independent_generators(2, 6, (3, 32, 32)).train()
    before = {n: getattr(gens, n.replace(".", "__")).clone() for n in gens.buffer_names}
    gens.forward_one(1, torch.randn(8, 6))
    for name in gens.buffer_names:
        after = getattr(gens, name.replace(".", "__"))
        assert torch.equal(after[0], before[name][0]), name  # slot 0 untouched
    changed = [
        n
        for n in gens.buffer_names
        if not torch.equal(getattr(gens, n.replace(".", "__"))[1], before[n][1])
    ]
    assert changed  # slot 1's running statistics moved


def test_gradients_reach_only_trainable_slots() -> None:
    torch.manual_seed(0)
    gens = MLP(8, 1, 8, 1).independent_generators(4, 3, (2,))
    z = torch.randn(6, 3)
    gens.forward_one(2, z).square().sum().backward()
    grads = [float(p.grad[k].abs().sum()) for p in gens.parameters() for k in range(4)]
    per_slot = torch.tensor(grads).reshape(-1, 4).sum(0)
    assert per_slot[2] > 0 and per_slot[[0, 1, 3]].sum() == 0

    gens.zero_grad()
    gens.set_trainable([0, 3])
    gens(z).square().sum().backward()
    per_slot = torch.stack([p.grad.flatten(1).abs().sum(1) for p in gens.parameters()]).sum(0)
    assert per_slot[0] > 0 and per_slot[3] > 0 and per_slot[1] == 0 and per_slot[2] == 0


def test_reset_replaces_one_slot_only() -> None:
    torch.manual_seed(0)
    gens = MLP(8, 1, 8, 1).independent_generators(3, 3, (2,))
    before = {n: p.clone() for n, p in gens.named_parameters()}
    gens.reset(1)
    for name, p in gens.named_parameters():
        assert torch.equal(p[0], before[name][0]) and torch.equal(p[2], before[name][2])
    assert any(not torch.equal(p[1], before[n][1]) for n, p in gens.named_parameters())


def test_state_dict_shapes_are_fixed_and_reload() -> None:
    torch.manual_seed(0)
    gens = MLP(8, 1, 8, 1).independent_generators(5, 3, (2,))
    gens.set_trainable([1])
    torch.manual_seed(1)
    other = MLP(8, 1, 8, 1).independent_generators(5, 3, (2,))
    assert {k: v.shape for k, v in gens.state_dict().items()} == {
        k: v.shape for k, v in other.state_dict().items()
    }
    other.load_state_dict(gens.state_dict())
    z = torch.randn(4, 3)
    assert torch.equal(other(z), gens(z))
    assert other.trainable.tolist() == [False, True, False, False, False]
