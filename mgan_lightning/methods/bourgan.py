"""BourGAN: a Gaussian-mixture latent prior from a Bourgain embedding of the data, and a
distance-preserving generator loss (Xiao, Zhong, Zheng; NeurIPS 2018)."""

from __future__ import annotations

import torch

from mgan_lightning import losses
from mgan_lightning.embedding import embedding_dim
from mgan_lightning.latent import GaussianMixturePrior
from mgan_lightning.methods.gan import GAN


class BourGAN(GAN):
    """BourGAN (Xiao, Zhong, Zheng; NeurIPS 2018), Algorithm 1, as the authors' code runs it:

        once, before step 1 (process 0, then broadcast; skipped on resume):
            y_1..y_n  <- a seeded subsample of the training data
            f(y_i)    <- Bourgain embedding (mgan_lightning.embedding), dim m*ceil(log2 n)
            s         <- max_{i != j} sqrt(d(y_i, y_j) / ||f(y_i) - f(y_j)||)
            prior     <- (1/n) sum_i N(f(y_i), sigma^2 I)
        every step:
            z_1, z_2 ~ prior (independent batches, paired element-wise)
            D step:  BCE(D(x), 1) + BCE(D(G(z_1)), 0)
            G step:  BCE(D(G(z_1)), 1)
                     + alpha * MSE(log ||G(z_1) - G(z_2)||, log(s ||z_1 - z_2||))   (eq. 4)

    The Gaussian mixture puts latent mass on every data cluster the embedding separates,
    and the distance term keeps G from mapping distant latent centres onto one mode.
    ``num_generators > 1`` runs the same losses for a bank of generators (each pairs its own
    two batches); MGAN with ``prior: GaussianMixturePrior`` is the other combination.

    Args:
        alpha: weight of the distance-preserving term (paper: 0.1).
        sigma: standard deviation of each mixture component (paper: 0.01).
        num_embedding_points: training examples embedded (``None``: all of them for vector
            data, 20,000 for images). The latent dimension follows: 5 * ceil(log2 n).
        eps: inside the logarithms of the distance term.
        prior: a :class:`GaussianMixturePrior` with other embedding settings (a metric, a
            feature extractor for images); then ``sigma`` and ``num_embedding_points`` are
            its own.

    The other arguments (``architecture``, ``optimizer_g``, schedules, EMA, ...) are
    :class:`GANMethod`'s, passed through ``**kwargs``. ``latent_dim`` is the embedding's:
    leave it unset (a checkpoint's hyperparameters carry it).
    """

    def __init__(
        self,
        alpha: float = 0.1,
        sigma: float = 0.01,
        num_embedding_points: int | None = None,
        eps: float = 1e-8,
        prior: GaussianMixturePrior | None = None,
        latent_dim: int | None = None,
        **kwargs,
    ) -> None:
        if not alpha >= 0:
            raise ValueError(f"model.alpha must be >= 0, got {alpha}")
        if not eps > 0:
            raise ValueError(f"model.eps must be > 0, got {eps}")
        if prior is None:
            prior = GaussianMixturePrior(sigma=sigma, num_points=num_embedding_points)
        elif not isinstance(prior, GaussianMixturePrior):
            raise ValueError("BourGAN's prior must be a GaussianMixturePrior")
        # Known now when the number of points is; otherwise when the data is first seen
        # (a checkpoint's hyperparameters carry the dimension it was trained with).
        n = prior.num_points
        if n is not None:
            expected = embedding_dim(n, prior.repeats)
            if latent_dim is not None and latent_dim != expected:
                raise ValueError(
                    f"BourGAN's latent dimension is its embedding's, {expected} for "
                    f"{n} embedded examples; leave model.latent_dim unset (got {latent_dim})"
                )
            latent_dim = expected
        super().__init__(prior=prior, latent_dim=latent_dim or prior.repeats, **kwargs)
        self.alpha = float(alpha)
        self.eps = float(eps)

    def generator_loss(self, fake, generator_index, z):
        """Fool D; keep pairwise distances of latents and samples in proportion (eq. 4)."""
        loss, logs = super().generator_loss(fake, generator_index, z)
        if self.alpha == 0:
            return loss, logs
        fake_2 = self.generate(z_2 := self.second_latents(z))
        k = self.num_generators
        z_1 = z.expand(k, *z.shape) if z.ndim == 2 else z  # (K, n, dim) like z_2's samples
        z_2 = z_2.expand(k, *z_2.shape) if z_2.ndim == 2 else z_2
        distance = losses.distance_preserving_loss(
            fake.reshape(fake_2.shape).flatten(0, 1),
            fake_2.flatten(0, 1),
            z_1.flatten(0, 1),
            z_2.flatten(0, 1),
            self.prior.scale,
            self.eps,
        )
        total = loss + self.alpha * distance
        return total, {**logs, "loss/g_distance": distance, "loss/g_total": total}

    def second_latents(self, z: torch.Tensor) -> torch.Tensor:
        """z_2: a latent batch shaped like ``z``, independent of it, from this step's own
        stream (resumes exactly, differs across DDP processes)."""
        n = z.shape[-2]
        return self.sample_latent(n, self.training_generator("bourgan-pairs"))
