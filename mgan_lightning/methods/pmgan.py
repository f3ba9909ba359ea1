"""The parallel balanced mix-generator GAN (Xiao & Rajasekaran: "PGAN", ICLR 2018 submission;
"PMGAN", ICANN 2018), as we read two abstracts."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import DDPStrategy
from torch.func import vmap
from torch.nn.parallel import DistributedDataParallel

from mgan_lightning import losses, losses_pmgan
from mgan_lightning.losses_pmgan import BALANCE_CHOICES, SHRINK_CHOICES, Balance, Shrink
from mgan_lightning.methods.gan import GAN
from mgan_lightning.nets.independent import IndependentGenerators
from mgan_lightning.private_api import attached_trainer
from mgan_lightning.rng import derive_seed
from mgan_lightning.schedules import StepOrFraction, resolve_step


class PMGAN(GAN):
    """Parallel balanced mix-generator GAN (Xiao & Rajasekaran, ICANN 2018; the ICLR 2018
    submission "PGAN"), **as we read it**. Only the two abstracts are public (no code, no full
    text); they name the pieces, not their formulas. What they say: K **disjoint** generators
    (no shared layer) mixed to approximate the data; an **adjustment component** that
    collects every generator's samples, learns the boundary between **each pair** of
    generators and gives each generator an error that separates its support from the others';
    a **shrinkage** of the adjustment component that gradually reduces that boundary during
    training; a **decay factor** that stabilises training; a **balance strategy** that
    controls the weights of the discriminator and the classifier; a loss that makes each
    generator **embrace a few modes with high probability**; and, because each generator's
    update depends on its own samples, generators **trained in parallel**, each on its own
    device. Our reading, one step (``GANMethod.training_step`` runs it)::

        x ~ data;  z ~ prior;  x_k = G_k(z) for every k        K independent networks
        t = generator steps done;  s(t) = shrinkage, 1 -> shrink_to over [shrink_start, shrink_end]

        critic step (D and the adjustment classifiers C_ij share the critic's body):
            L_D = BCE(D(x), 1) + BCE(D(x_k), 0)
            L_C = (1/K) sum_k e_k(margin 0)                    C_ij: G_i's samples vs G_j's
            avg_D, avg_C <- running averages of L_D, L_C        (decay factor gamma = decay)
            (w_D, w_C) = balance(avg_D, avg_C)                  w_C = clip(avg_D/avg_C): "ratio"
            minimise w_D L_D + w_C L_C

        generator step, generator k on its own samples only:
            e_k = E_{x~G_k}[ 1/(K-1) sum_{j != k} softplus(m(t) - s_kj c_kj(x)) ]   adjustment
            a_k = E_{x~G_k}[ -log D(x) ]                                          adversarial
            h_k = E_{x~G_k}[ (1 - D(x))^gamma_e (-log D(x)) ]                     embrace
            minimise (1/K) sum_k [ a_k + embrace_weight h_k + lam(t) e_k ]
            with lam(t) = adjust_weight s(t) (/ avg_C if normalise_adjustment),
                 m(t)   = adjust_margin s(t)

    ``s_kj c_kj(x)`` is C's logit that ``x`` is ``G_k``'s rather than ``G_j``'s
    (:func:`mgan_lightning.losses_pmgan.pair_orientation`). Each choice and the alternatives
    we considered:

    - **Disjoint generators**: :class:`~mgan_lightning.nets.IndependentGenerators`
      (``independent_generators`` is forced true), one network per generator run in one
      vectorised call; MGAN shares all but the first layer.
    - **Adjustment component** (``adjust_weight``, ``adjust_margin``): K(K-1)/2 binary
      classifiers on the critic's shared body, as MGAN's pairwise variant, trained on fake
      samples only, with the margin-0 cross-entropy. Each generator's error averages the K-1
      classifiers it is part of, so ``adjust_weight`` means the same for any K (MGAN's
      pairwise equations sum the K(K-1)/2 pair losses). Alternatives: a K-way classifier
      (MGAN's general one; the abstracts say "each pair"), or a classifier network of its own
      instead of a head on D's body (twice the critic's cost; the abstracts do not say).
    - **Shrinkage** (``shrink``, ``shrink_to``, ``shrink_start``, ``shrink_end``): the
      adjustment error's weight *and* its margin are multiplied by ``s(t)``, falling from 1 to
      ``shrink_to`` (``"linear"``, ``"exponential"``, ``"cosine"``; ``"none"`` keeps them),
      with boundaries as steps or fractions of the run like the library's schedules. Early,
      generators are pushed apart hard, and with a margin also away from the boundary band;
      later the push weakens and the band narrows, so generators may settle next to each
      other on neighbouring modes and the adversarial loss decides the details. Alternatives:
      shrinking the classifiers' own loss weight in the critic (C's boundary would blur
      instead of G's push weakening), or shrinking the sample share the adjustment sees.
    - **Decay factor** (``decay``): the memory ``gamma`` of the running averages of ``L_D``
      and ``L_C`` that the balance reads (and ``normalise_adjustment`` divides by). A ratio of
      two per-batch losses jumps from batch to batch; its moving average does not, so the
      critic's objective changes smoothly. ``decay = 0`` uses the batch's own losses.
      Alternatives: a decay of the learning rates (available without this class:
      ``scheduler_g: torch.optim.lr_scheduler.ExponentialLR``), or a decay of the adjustment
      weight (that is the shrinkage here).
    - **Balance strategy** (``balance``, ``balance_min``, ``balance_max``): ``"ratio"`` weighs
      C's loss by ``clip(avg_D / avg_C)`` so neither term dominates the shared body's
      gradient: C cannot take it over while it is learning, nor fade out once the generators
      are apart (``L_C`` near 0); ``"none"`` is MGAN's ``L_D + L_C``. Alternatives: scaling
      both terms by their averages (the same ratio; with Adam the overall scale hardly
      matters), balancing gradient norms on the body (GradNorm-like, a second backward
      pass), or balancing G's adversarial and adjustment terms instead of the critic's.
    - **Embracing a few modes with high probability** (``embrace_weight``,
      ``embrace_gamma``): a focal form of the non-saturating loss on the generator's own
      samples (:func:`mgan_lightning.losses_pmgan.embrace_values`): samples D finds least
      real weigh most, which pulls a generator's mass onto the modes it holds and off the
      bridges between them (the failure of a generator straddling two modes). ``0`` turns it
      off. Alternatives: the entropy of C's outputs on the generator's samples (symmetric:
      it rewards being confidently *another* generator's as much as one's own), or a
      penalty on the spread of a generator's samples (works against covering several modes).
    - **Parallel training** (``parallel_generators``): see below. The abstracts' asynchronous
      multi-GPU updates are not adopted: synchronous exchange keeps the run equal to one
      process, and the abstracts say nothing of staleness.

    **Parallel generators.** Generator k's update depends on its own samples only: ``a_k``,
    ``h_k`` and ``e_k`` are means over ``G_k``'s samples and the critic is fixed during the
    generator step. With ``parallel_generators: true`` under DDP (``--trainer.devices=W``),
    generator k lives on process ``k mod W``: each process runs the forward and backward
    passes of its own generators only, and the processes exchange, with
    ``torch.distributed`` collectives (``all_gather``): each step's real batches, the fake
    samples of every generator, and, before the generators' update, their gradients and
    batch-norm statistics. Every process then makes the same critic step on the whole batch
    (replicated, not divided) and the same optimizer updates, and ends each step with the
    same weights. DDP's own gradient averaging is switched off for this module's backward
    passes (``DistributedDataParallel.no_sync``): the generators' gradients are placed
    slot by slot, not averaged. The replicated critic step gives the same bits on every
    process only with deterministic kernels, as the CPU's are; on other devices
    (``sync_critic``) process 0's critic gradients are broadcast before the critic's update
    and its critic statistics and running averages each step.

    *The same result as one process.* W processes with ``data.batch_size: b`` train exactly
    as one process with ``b * W``: the gathered real batch is put back in the order one
    process reads it (the library's data modules give process r the examples ``r, r + W,
    ...`` of each global batch), every process draws the latents of process 0 (the step's
    draws do not depend on the rank), the critic sees the very tensors one process would,
    and a generator's slot computes what it computes in the K-slot call. No floating-point
    sum changes order, so on CPU (gloo) the weights and optimizer states are bitwise equal
    to one process's (tested with 2 processes); exchanging places values and adds nothing.
    This rests on the kernels giving a slot the same bits whether ``vmap`` batches K
    generators or K/W of them. Measured on CPU (``tests/methods/test_pmgan.py``): true for
    the MLP generators at any split, and for the DCGAN generators (whose convolutions
    ``vmap`` turns into one grouped convolution over the slots) whenever a process runs at
    least two of them; a process with a single convolutional generator gets a plain
    convolution, another kernel, which rounds differently (samples within about 1e-7,
    gradients within 1e-5 of their largest value), so such a run (K < 2W) agrees with one
    process to float tolerance only, as would a backend (a GPU's) that picks kernels by
    batch count. What is divided is the generators' forward and backward passes; the
    critic's passes, the optimizer and EMA updates over all K generators' weights and the
    gathered batches are replicated, and the exchange is added, so the speed-up is bounded
    by the generators' share of a step (``benchmarks/results/pmgan_parallel.md``: on 2 CPU
    cores, wide generators at K = 8 leave each process about 78% of one process's CPU
    time per step; with the ring config's small generators the exchange costs more than
    the half of their work it saves). Not adopted: dividing the critic's
    generator-step pass over each process's own samples (batch-norm critics need the whole
    batch, and matrix kernels pick different code paths for different row counts,
    measured: the discriminator logits of 14 rows differ in the last bit from the same rows
    inside 21, so it would cost the bitwise equality); and dividing the optimizer's update
    (each process updating its own slots, then exchanging weights), which needs per-slot
    parameters in :class:`~mgan_lightning.nets.IndependentGenerators` and an optimizer
    state gathered for checkpoints.

    Args:
        adjust_weight: weight of the adjustment error in G's loss at the start (``lam(0)``).
        adjust_margin: logit margin of the adjustment error at the start (0: cross-entropy).
        shrink: shape of the shrinkage ``s(t)`` (``"none"``, ``"linear"``, ``"exponential"``,
            ``"cosine"``).
        shrink_to: ``s`` at and after ``shrink_end`` (``> 0`` for ``"exponential"``).
        shrink_start / shrink_end: where the shrinkage starts and ends, in generator steps
            (``int``) or fractions of the run (``float`` in ``[0, 1]``).
        decay: the decay factor, the memory of the running loss averages (in ``[0, 1)``).
        balance: ``"ratio"`` (default) or ``"none"``.
        balance_min / balance_max: the range ``w_C`` is clipped to.
        normalise_adjustment: divide G's adjustment term by the running average of ``L_C``,
            so its strength is set by ``adjust_weight`` and the shrinkage alone, not by how
            far apart the generators already are.
        embrace_weight: weight of the embrace term (0: off).
        embrace_gamma: its focusing exponent (0: the non-saturating loss again).
        parallel_generators: place generator k on process ``k mod W`` under DDP (above);
            with one process it changes nothing.
        sync_critic: with parallel generators, broadcast process 0's critic gradients before
            each critic update, and its critic statistics and running averages each step, so
            the replicated critic cannot drift where kernels are not deterministic (GPUs).
            ``None`` (default): on for devices other than the CPU, where the replicas are
            bitwise equal without it (it then changes no bit either).
        num_generators: K (>= 2).
        same_latent: feed the same z batch to every generator (as MGAN's authors do).

    The other arguments (``latent_dim``, ``architecture``, optimizers, ...) are
    :class:`GANMethod`'s, passed through ``**kwargs``.
    """

    loss_average: torch.Tensor
    average_count: torch.Tensor

    def __init__(
        self,
        num_generators: int = 4,
        same_latent: bool = True,
        adjust_weight: float = 0.5,
        adjust_margin: float = 0.0,
        shrink: Shrink = "linear",
        shrink_to: float = 0.1,
        shrink_start: StepOrFraction = 0,
        shrink_end: StepOrFraction = 1.0,
        decay: float = 0.99,
        balance: Balance = "ratio",
        balance_min: float = 0.1,
        balance_max: float = 10.0,
        normalise_adjustment: bool = False,
        embrace_weight: float = 0.5,
        embrace_gamma: float = 2.0,
        parallel_generators: bool = False,
        sync_critic: bool | None = None,
        **kwargs,
    ) -> None:
        if num_generators < 2:
            raise ValueError(
                f"model.num_generators must be >= 2 for PMGAN (pairs of generators), "
                f"got {num_generators}"
            )
        if kwargs.pop("independent_generators", True) is not True:
            raise ValueError(
                "PMGAN's generators are disjoint: model.independent_generators must be true"
            )
        for name, value in (
            ("adjust_weight", adjust_weight),
            ("adjust_margin", adjust_margin),
            ("shrink_to", shrink_to),
            ("embrace_weight", embrace_weight),
            ("embrace_gamma", embrace_gamma),
        ):
            if not value >= 0:  # also rejects NaN
                raise ValueError(f"model.{name} must be >= 0, got {value}")
        if shrink not in SHRINK_CHOICES:
            raise ValueError(f"model.shrink must be one of {SHRINK_CHOICES}, got {shrink!r}")
        if shrink == "exponential" and not shrink_to > 0:
            raise ValueError("model.shrink_to must be > 0 for exponential shrinkage, got 0")
        if balance not in BALANCE_CHOICES:
            raise ValueError(f"model.balance must be one of {BALANCE_CHOICES}, got {balance!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"model.decay must be in [0, 1), got {decay}")
        if not 0 < balance_min <= balance_max:
            raise ValueError(
                f"model.balance_min and model.balance_max need 0 < min <= max, "
                f"got {balance_min} and {balance_max}"
            )
        for name, value in (("shrink_start", shrink_start), ("shrink_end", shrink_end)):
            resolve_step(value, 1, f"model.{name}")  # an int >= 0 or a fraction
        super().__init__(
            num_generators=num_generators,
            same_latent=same_latent,
            independent_generators=True,
            _classifier_outputs=num_generators * (num_generators - 1) // 2,  # C_ij, i < j
            **kwargs,
        )
        self.adjust_weight = float(adjust_weight)
        self.adjust_margin = float(adjust_margin)
        self.shrink = shrink
        self.shrink_to = float(shrink_to)
        self.shrink_start = shrink_start
        self.shrink_end = shrink_end
        self.decay = float(decay)
        self.balance = balance
        self.balance_min = float(balance_min)
        self.balance_max = float(balance_max)
        self.normalise_adjustment = normalise_adjustment
        self.embrace_weight = float(embrace_weight)
        self.embrace_gamma = float(embrace_gamma)
        self.parallel_generators = parallel_generators
        self.sync_critic = sync_critic
        if self.shrink != "none" and self.max_generator_steps is not None:
            self.shrink_window(self.max_generator_steps)  # refuse start >= end now
        # The decay factor's running averages of (L_D, L_C), and how many updates they had.
        self.register_buffer("loss_average", torch.zeros(2))
        self.register_buffer("average_count", torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- hooks
    def discriminator_loss(self, real, fake, generator_index):
        """D: real vs fake; the adjustment classifiers: G_i's samples vs G_j's; balanced."""
        real_logits, _ = self.critic(real)
        fake_logits, class_logits = self.critic(fake)
        adversarial = losses.discriminator_loss(real_logits, fake_logits)
        classifier = losses_pmgan.adjustment_classifier_loss(
            class_logits, generator_index, self.num_generators
        )
        self.update_averages(adversarial, classifier)
        w_d, w_c = self.balance_weights()
        total = w_d * adversarial + w_c * classifier
        return total, {
            "loss/d": adversarial,
            "loss/c": classifier,
            "loss/d_total": total,
            "balance/w_d": w_d,
            "balance/w_c": w_c,
        }

    def generator_loss(self, fake, generator_index, z):
        """Each generator on its own samples: fool D, embrace its modes, keep to its side of
        every pairwise boundary; averaged over the generators (pi_k = 1/K)."""
        k = self.num_generators
        fake_logits, class_logits = self.critic(fake)
        adversarial = losses_pmgan.per_generator_mean(F.softplus(-fake_logits), generator_index, k)
        errors = losses_pmgan.adjustment_errors(
            class_logits, generator_index, k, margin=self.adjust_margin_now()
        )
        weight = self.adjust_weight_now()
        per_generator = adversarial + weight * errors
        logs = {"loss/g": adversarial.mean(), "loss/g_adjust": errors.mean()}
        if self.embrace_weight > 0:
            embrace = losses_pmgan.per_generator_mean(
                losses_pmgan.embrace_values(fake_logits, self.embrace_gamma), generator_index, k
            )
            per_generator = per_generator + self.embrace_weight * embrace
            logs["loss/g_embrace"] = embrace.mean()
        loss = per_generator.mean()
        logs["loss/g_total"] = loss
        logs["adjust/weight"] = torch.as_tensor(weight, device=loss.device).float()
        logs["adjust/shrink"] = torch.tensor(self.shrinkage(), device=loss.device)
        return loss, logs

    # ------------------------------------------------- shrinkage, decay, balance
    def shrink_window(self, length: int | None) -> tuple[int, int]:
        """``(start, end)`` of the shrinkage in generator steps for a run of ``length``."""
        start = resolve_step(self.shrink_start, length, "model.shrink_start")
        end = resolve_step(self.shrink_end, length, "model.shrink_end")
        if not start < end:
            raise ValueError(
                f"model.shrink_start must come before model.shrink_end, got steps {start} "
                f"and {end} (of {length})"
            )
        return start, end

    def shrinkage(self, step: int | None = None) -> float:
        """``s(t)`` after ``step`` generator steps (default: the steps done)."""
        if self.shrink == "none":
            return 1.0
        step = self.generator_steps_done if step is None else step
        start, end = self.shrink_window(self.schedule_length())
        return losses_pmgan.shrink_factor(step, start, end, self.shrink_to, self.shrink)

    def adjust_weight_now(self) -> float | torch.Tensor:
        """``lam(t)``: the adjustment error's weight in this generator step."""
        weight = self.adjust_weight * self.shrinkage()
        if self.normalise_adjustment:
            return weight / self.loss_average[1].clamp_min(1e-8)
        return weight

    def adjust_margin_now(self) -> float:
        """``m(t)``: the adjustment error's margin in this generator step."""
        return self.adjust_margin * self.shrinkage()

    @torch.no_grad()
    def update_averages(self, d_loss: torch.Tensor, c_loss: torch.Tensor) -> None:
        """One step of the decay factor's running averages of ``(L_D, L_C)``; a step whose
        losses are not finite (skipped under ``on_divergence: skip``) leaves them."""
        value = torch.stack([d_loss.detach(), c_loss.detach()]).to(self.loss_average.dtype)
        first = self.average_count == 0
        new = losses_pmgan.running_average(self.loss_average, value, self.decay, first)
        finite = torch.isfinite(value).all()
        self.loss_average.copy_(torch.where(finite, new, self.loss_average))
        self.average_count.add_(finite.long())

    def balance_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_D, w_C)`` from the running averages."""
        return losses_pmgan.balance_weights(
            self.loss_average[0],
            self.loss_average[1],
            self.balance,
            self.balance_min,
            self.balance_max,
        )

    # ------------------------------------------------------ parallel generators
    def parallel_world(self) -> tuple[int, int]:
        """``(W, r)``: the processes sharing the generators and this one; ``(1, 0)`` when
        ``parallel_generators`` is off or there is one process."""
        trainer = attached_trainer(self)
        if not self.parallel_generators or trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def own_slots(self) -> slice:
        """The generators this process trains: ``r, r + W, r + 2W, ...``."""
        world, rank = self.parallel_world()
        return slice(rank, self.num_generators, world)

    def setup(self, stage: str) -> None:
        """:meth:`GANMethod.setup`, then, when ``parallel_generators`` spreads the generators over
        several processes, a ``ValueError`` unless the strategy is DDP and there are at most as many
        processes as generators."""
        super().setup(stage)
        world, _ = self.parallel_world()
        if world > 1:
            if not isinstance(self.trainer.strategy, DDPStrategy):
                raise ValueError(
                    "model.parallel_generators needs the DDP strategy (trainer.strategy: ddp), "
                    f"got {type(self.trainer.strategy).__name__}"
                )
            if self.num_generators < world:
                raise ValueError(
                    f"model.parallel_generators: {world} processes share "
                    f"{self.num_generators} generators; use at most as many processes as "
                    "generators"
                )

    def step_seed(self, stream: str) -> int:
        """With parallel generators every process draws what process 0 draws: they all make
        the same step."""
        if not self.parallel_generators:
            return super().step_seed(stream)
        return derive_seed(self.resolved_run_seed(), stream, 0, self.generator_steps_done)

    def training_step(self, batch, batch_idx: int) -> None:
        """With parallel generators, the step sees every process's real batch, in the order
        one process would read them; otherwise GANMethod's step as it is."""
        world, _ = self.parallel_world()
        if world > 1:
            real = self.real_samples(batch)
            gathered = self.gather(real)  # (W, b, ...): process r read rows r, r + W, ...
            batch = gathered.transpose(0, 1).reshape(world * len(real), *real.shape[1:])
        return super().training_step(batch, batch_idx)

    def fake_batch(self, real_batch_size, generator=None):
        """With parallel generators: the latents of all K generators (the same on every
        process), this process's generators run on theirs, and the samples of all gathered;
        the rows this process made keep their graph."""
        world, rank = self.parallel_world()
        if world == 1:
            return super().fake_batch(real_batch_size, generator)
        k = self.num_generators
        n = self.fake_per_generator or -(-real_batch_size // k)
        z = self.sample_latent(n, generator)
        own = self.generate_slots(z, self.own_slots())
        (fake,) = self.share_slots([own.detach()])
        fake[rank::world] = own  # a copy of the same values, with this process's graph
        index = torch.arange(k, device=fake.device).repeat_interleave(n)
        return fake.reshape(k * n, *fake.shape[2:]), index, z

    def generate_slots(self, z: torch.Tensor, slots: slice) -> torch.Tensor:
        """Generators ``slots`` alone: ``(len(slots), n, ...)``. They run on a strided view of
        the stacked weights, so gradients land in those slots only, as do batch-norm
        statistics."""
        bank = cast(IndependentGenerators, self.generators)
        params, buffers = bank.stacked()
        params = {name: p[slots] for name, p in params.items()}
        # Batch norm updates its statistics in place, which vmap does not carry back into a
        # strided view: run on contiguous copies and put them back.
        slot_buffers = {name: b[slots].clone() for name, b in buffers.items()}
        z_dim = None if z.dim() == 2 else 0
        z = z if z.dim() == 2 else z[slots]
        run = vmap(bank.functional_forward, in_dims=(0, 0, z_dim), randomness="different")
        samples = run(params, slot_buffers, z)
        with torch.no_grad():
            for name, b in buffers.items():
                b[slots] = slot_buffers[name]
        return samples

    def share_slots(
        self, tensors: list[torch.Tensor], out: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """Each of ``tensors`` holds this process's slots ``(K_own, ...)`` of a ``(K, ...)``
        quantity; returns the whole quantities, slot k from process ``k mod W``, written
        into ``out`` when given. One ``all_gather`` per dtype; values are placed, never
        summed. Each value is copied twice: into the message and out of it."""
        world, _ = self.parallel_world()
        k = self.num_generators
        most = -(-k // world)  # slots of the busiest process
        if out is None:
            out = [t.new_empty((k, *t.shape[1:])) for t in tensors]
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, tensor in enumerate(tensors):
            by_dtype.setdefault(tensor.dtype, []).append(i)
        for members in by_dtype.values():
            sizes = [most * math.prod(tensors[i].shape[1:]) for i in members]
            message = tensors[members[0]].new_zeros(sum(sizes))
            offset = 0
            for i, size in zip(members, sizes):
                piece = message[offset : offset + size].view(most, *tensors[i].shape[1:])
                piece[: len(tensors[i])] = tensors[i]
                offset += size
            gathered = self.gather(message)  # (W, sum of sizes)
            offset = 0
            for i, size in zip(members, sizes):
                parts = gathered[:, offset : offset + size].view(world, most, *tensors[i].shape[1:])
                for process in range(world):
                    count = len(range(process, k, world))
                    out[i][process::world] = parts[process, :count]
                offset += size
        return out

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(W, ...)``: ``tensor`` of every process, in rank order (one
        ``all_gather_into_tensor``, no list of copies to stack)."""
        import torch.distributed as dist

        world, _ = self.parallel_world()
        flat = tensor.contiguous().view(-1)
        gathered = flat.new_empty(world * flat.numel())
        dist.all_gather_into_tensor(gathered, flat)
        return gathered.view(world, *tensor.shape)

    def manual_backward(self, loss: torch.Tensor, *args, **kwargs) -> None:
        """With parallel generators, DDP does not average this backward pass's gradients:
        the critic's are the same on every process already, the generators' are exchanged
        before their update (:meth:`on_before_optimizer_step`)."""
        world, _ = self.parallel_world()
        ddp = self.trainer.strategy.model if world > 1 else None
        if isinstance(ddp, DistributedDataParallel):
            with ddp.no_sync():
                super().manual_backward(loss, *args, **kwargs)
        else:
            super().manual_backward(loss, *args, **kwargs)

    def on_before_optimizer_step(self, optimizer) -> None:
        """Before the generators' update: every process takes each generator's gradients and
        batch-norm statistics from the process that ran it (and, with ``sync_critic``, the
        critic's statistics and the running averages from process 0). Before the critic's
        update, with ``sync_critic``: process 0's critic gradients."""
        world, _ = self.parallel_world()
        if world == 1:
            return
        first = next(self.generators.parameters())
        if not any(p is first for group in optimizer.param_groups for p in group["params"]):
            if self.critic_is_synced():  # the critic's update
                grads = [p.grad for p in self.critic.parameters() if p.grad is not None]
                self.broadcast_from_first(grads)
            return
        own = self.own_slots()
        with torch.no_grad():
            params = [p for p in self.generators.parameters() if p.grad is not None]
            _, buffers = cast(IndependentGenerators, self.generators).stacked()
            targets = [cast(torch.Tensor, p.grad) for p in params] + list(buffers.values())
            self.share_slots([t[own] for t in targets], out=targets)
        if self.critic_is_synced():
            critic_state = list(self.critic.buffers()) + [self.loss_average, self.average_count]
            self.broadcast_from_first(critic_state)

    def critic_is_synced(self) -> bool:
        """Whether process 0's critic state is broadcast (``sync_critic``, or by device)."""
        if self.sync_critic is not None:
            return self.sync_critic
        return self.device.type != "cpu"

    @torch.no_grad()
    def broadcast_from_first(self, tensors: list) -> None:
        """Overwrite ``tensors`` in place with process 0's."""
        import torch.distributed as dist

        for tensor in tensors:
            dist.broadcast(tensor, src=0)
