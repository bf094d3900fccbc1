"""EMDM (few-step motion diffusion with a conditional GAN) and its DDPM baseline, on one network.

Both models are a :class:`~polyfold.motion.denoiser.MotionDenoiser` predicting the clean window
on core's :class:`~polyfold.core.paths.DiscreteDDPM` (cosine) path, conditioned on the caption's
MiniLM vector, trained through core's :class:`~polyfold.core.train.Trainer`:

- ``ddpm`` (MDM-style): core's ``dsm_loss`` with ``prediction="x0"``; sampled by core's ``ddpm``
  sampler by name over 50 steps.
- ``emdm``: ``K`` (default 4) large reverse steps ``t_k = k/K -> t_{k-1}``. The generator sees
  ``x_t``, ``t``, the caption and a latent ``z``, predicts ``x0`` and steps by the Gaussian
  posterior ``q(x_s | x_t, x0)``; a conditional critic scores real pairs ``(x_s, x_t)`` (both
  from the data by the forward process) against generated ones, so that each large step models
  the multimodal ``p(x_s | x_t, c)`` (denoising diffusion GAN). The adversarial objective is
  DDGAN's, as in EMDM's release: core's non-saturating (softplus) losses with the R1 penalty on
  real ``x_s`` (``r1_gamma`` 0.02, applied every ``r1_every`` = 15 steps: lazy regularisation);
  ``gan_loss="wgan-gp"`` selects core's WGAN-GP losses instead (``gp_weight``). Added to it:
  the reconstruction term ``||x0_hat - x0||^2`` and the paper's geometric (velocity) term on
  frame differences ``||diff(x0_hat) - diff(x0)||^2``; optionally (``geo_weight``,
  ``foot_weight``) the paper's geometric terms on the recovered world joints: position and
  velocity error in metres, and ankle motion where the real foot is in contact. Generator and
  critic train in one Trainer step: the generator's adversarial term scores with a detached
  copy of the critic's weights, the critic sees the generated step detached.

EMDM's release trains with 10 steps, R1 weight 0.02 and the generator's adversarial loss at
weight 1 beside the reconstruction terms. polyfold keeps DDGAN's default of 4 steps
(``emdm_steps``), which the speed goal against the 50-step DDPM needs, and weighs the adversarial
term 0.02 (``adv_weight``): with the small CPU-trained network, weight 1 overwhelms the
reconstruction terms (held-out accuracy 0.23 against 0.61 at 0.02, jerk 11x higher; see the
model card).

Classifier-free guidance (both models, as MDM): ``p_uncond`` replaces a caption by the null
caption (zeros) in training (:func:`drop_captions`); sampling mixes the two predictions of ``x0``
with the scale ``guidance`` (the card's default; 1 is the plain conditional model), through
core's :func:`~polyfold.core.guidance.cfg` for the DDPM.

Model files keep the feature normalisation (``mean``, ``std``) and a card with ``kind``, steps,
the path and the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.data import TensorDataset

from polyfold.core.errors import InputError, check_int, check_number
from polyfold.core.export import load_model, save_model
from polyfold.core.losses import (
    dsm_loss,
    nonsaturating_generator_loss,
    nonsaturating_r1_critic_loss,
    wgan_generator_loss,
    wgan_gp_critic_loss,
)
from polyfold.core.paths import DiscreteDDPM
from polyfold.core.samplers import get_sampler, uniform_t_grid
from polyfold.motion.dataset import MotionDataset
from polyfold.motion.denoiser import MotionCritic, MotionDenoiser
from polyfold.motion.features_torch import foot_contact_loss, joint_position_loss
from polyfold.motion.trainer import motion_trainer

__all__ = [
    "GAN_LOSSES",
    "MODEL_KINDS",
    "MotionModel",
    "TrainSettings",
    "drop_captions",
    "load_motion_model",
    "motion_path",
    "posterior_step",
    "train_motion_model",
]

MODEL_KINDS = ("emdm", "ddpm")
GAN_LOSSES = ("ns-r1", "wgan-gp")


def motion_path() -> DiscreteDDPM:
    """The diffusion path of both models: 1000-step cosine DDPM schedule."""
    return DiscreteDDPM(n=1000, kind="squaredcos_cap_v2")


def _levels(path: DiscreteDDPM, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(alpha, sigma)`` at times ``t`` (float64), with ``(1, 0)`` at ``t = 0``."""
    tt = t.to(torch.float64)
    pos = tt > 0
    safe = tt.clamp_min(1e-12)
    a = torch.where(pos, path.alpha(safe), torch.ones_like(tt))
    return a, torch.where(pos, path.sigma(safe), torch.zeros_like(tt))


def _posterior(
    x_t: Tensor,
    x0: Tensor,
    s: tuple[Tensor, Tensor],
    t: tuple[Tensor, Tensor],
    noise: Tensor | None,
) -> Tensor:
    (a_s, sg_s), (a_t, sg_t) = s, t
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    a_ts = a_t / a_s
    var_ts = (sg_t**2 - a_ts**2 * sg_s**2).clamp_min(0)
    c_xt = (a_ts * sg_s**2 / sg_t**2).to(x_t.dtype).reshape(shape)
    c_x0 = (a_s * var_ts / sg_t**2).to(x_t.dtype).reshape(shape)
    mean = c_xt * x_t + c_x0 * x0
    if noise is None:
        return mean
    std = (var_ts * sg_s**2 / sg_t**2).sqrt().to(x_t.dtype).reshape(shape)
    return mean + std * noise


def posterior_step(
    path: DiscreteDDPM,
    x_t: Tensor,
    x0: Tensor,
    s: float | Tensor,
    t: Tensor,
    noise: Tensor | None,
) -> Tensor:
    """A draw of ``q(x_s | x_t, x0)`` (its mean when ``noise`` is None; ``x0`` when ``s = 0``);
    ``t`` is per example ``(B,)``, ``s`` a common earlier time or a ``(B,)`` tensor."""
    ss = torch.as_tensor(s, dtype=torch.float64).expand(t.shape)
    return _posterior(x_t, x0, _levels(path, ss), _levels(path, t), noise)


class _EMDMPair(nn.Module):
    """Generator and critic in one module, so core's Trainer steps both."""

    def __init__(self, generator: MotionDenoiser, critic: MotionCritic) -> None:
        super().__init__()
        self.generator = generator
        self.critic = critic


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of :func:`train_motion_model`."""

    steps: int = 3000
    batch_size: int = 32
    lr: float = 5e-4
    emdm_steps: int = 4
    rec_weight: float = 1.0
    vel_weight: float = 1.0
    gan_loss: str = "ns-r1"
    adv_weight: float = 0.02
    r1_gamma: float = 0.02
    r1_every: int = 15
    gp_weight: float = 1.0
    geo_weight: float = 0.0
    foot_weight: float = 0.0
    p_uncond: float = 0.0
    guidance: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "emdm_steps", "r1_every"):
            check_int(name, getattr(self, name), 1)
        check_number("lr", self.lr, strict=True)
        if self.gan_loss not in GAN_LOSSES:
            raise InputError(
                f"gan_loss: expected one of {', '.join(GAN_LOSSES)}, got {self.gan_loss!r}"
            )
        for name in ("rec_weight", "vel_weight", "adv_weight", "r1_gamma", "gp_weight",
                     "geo_weight", "foot_weight", "guidance"):  # fmt: skip
            check_number(name, getattr(self, name))
        if not 0 <= self.p_uncond < 1:
            raise InputError(f"p_uncond: expected a number in [0, 1), got {self.p_uncond!r}")


def drop_captions(text: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Caption vectors ``text (B, C)`` with each row replaced by the null caption (zeros) with
    probability ``p``: the training side of classifier-free guidance. ``p = 0`` returns ``text``
    and draws nothing."""
    if not 0 <= p < 1:
        raise InputError(f"p_uncond: expected a number in [0, 1), got {p!r}")
    if p == 0:
        return text
    keep = torch.rand(text.shape[0], generator=generator, device=text.device) >= p
    return text * keep[:, None].to(text.dtype)


def _emdm_loss(
    pair: _EMDMPair,
    x0: Tensor,
    text: Tensor,
    g: torch.Generator,
    s: TrainSettings,
    denorm: tuple[Tensor, Tensor] | None = None,
    step: int = 0,
) -> tuple[Tensor, dict[str, float]]:
    """EMDM's loss on one batch: the critic's and the generator's terms in one scalar.
    ``step`` (the optimizer step) schedules the lazy R1 penalty: it is applied when
    ``step % r1_every == 0``."""
    path = motion_path()
    b = x0.shape[0]
    k = torch.randint(1, s.emdm_steps + 1, (b,), generator=g, device=x0.device)
    t, s_time = k.double() / s.emdm_steps, (k - 1).double() / s.emdm_steps
    shape = (-1, 1, 1)
    a_s, sg_s = _levels(path, s_time)
    e1 = torch.randn(x0.shape, generator=g, device=x0.device)
    e2 = torch.randn(x0.shape, generator=g, device=x0.device)
    x_s = a_s.float().reshape(shape) * x0 + sg_s.float().reshape(shape) * e1
    a_ts = path.alpha(t) / a_s
    sg_ts = (path.sigma(t) ** 2 - a_ts**2 * sg_s**2).clamp_min(0).sqrt()
    x_t = a_ts.float().reshape(shape) * x_s + sg_ts.float().reshape(shape) * e2
    gen = pair.generator
    text = drop_captions(text, s.p_uncond, g)
    z = torch.randn(b, gen.config.z_dim, generator=g, device=x0.device)
    tf = t.float()
    x0_hat = gen(x_t, tf, text, z)
    e3 = torch.randn(x0.shape, generator=g, device=x0.device)
    fake = _posterior(x_t, x0_hat, (a_s, sg_s), _levels(path, t), e3)
    cond = (x_t, tf, text)
    frozen = {n: p.detach() for n, p in pair.critic.named_parameters()}
    fake_scores = functional_call(pair.critic, frozen, (fake, cond))
    if s.gan_loss == "wgan-gp":
        loss_d, parts = wgan_gp_critic_loss(
            pair.critic, x_s, fake, cond, gp_weight=s.gp_weight, generator=g
        )
        adv = wgan_generator_loss(fake_scores)
    else:
        gamma = s.r1_gamma if step % s.r1_every == 0 else 0.0
        loss_d, parts = nonsaturating_r1_critic_loss(pair.critic, x_s, fake, cond, r1_gamma=gamma)
        adv = nonsaturating_generator_loss(fake_scores)
        if gamma == 0:
            del parts["r1"]  # not measured on this step
    rec = ((x0_hat - x0) ** 2).mean()
    vel = ((x0_hat.diff(dim=1) - x0.diff(dim=1)) ** 2).mean()
    parts.update(rec=float(rec.detach()), vel=float(vel.detach()))
    loss = loss_d + s.adv_weight * adv + s.rec_weight * rec + s.vel_weight * vel
    if denorm is not None and (s.geo_weight > 0 or s.foot_weight > 0):
        pos, jvel = joint_position_loss(x0_hat, x0, *denorm)
        foot = foot_contact_loss(x0_hat, x0, *denorm)
        loss = loss + s.geo_weight * (pos + jvel) + s.foot_weight * foot
        parts.update(joint_m=float(pos.detach()), foot=float(foot.detach()))
    return loss, parts


def train_motion_model(
    kind: str,
    data: MotionDataset,
    text_features: np.ndarray,
    out_dir: str | Path,
    settings: TrainSettings | None = None,
    *,
    width: int = 128,
    layers: int = 3,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> MotionDenoiser:
    """Train ``kind`` (``emdm`` or ``ddpm``) on the training windows against caption vectors
    ``text_features (N, 384)``; save ``out_dir/model.safetensors`` + ``.json``."""
    if kind not in MODEL_KINDS:
        raise InputError(f"--model: expected one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    s = settings or TrainSettings()
    torch.manual_seed(s.seed)
    mean, std = data.stats()
    idx = data.indices("train")
    x = torch.from_numpy((data.features[idx] - mean) / std).float()
    text = torch.from_numpy(np.asarray(text_features)[idx]).float()
    d = int(x.shape[-1])
    net = MotionDenoiser(feature_dim=d, text_dim=int(text.shape[-1]), width=width, layers=layers,
                         z_dim=16 if kind == "emdm" else 0)  # fmt: skip
    stats: dict[str, float] = {}
    module: nn.Module
    if kind == "emdm":
        denorm = (torch.from_numpy(mean).float(), torch.from_numpy(std).float())
        module = _EMDMPair(net, MotionCritic(feature_dim=d, text_dim=int(text.shape[-1])))

        def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
            loss, parts = _emdm_loss(m, batch[0], batch[1], g, s, denorm, trainer.step)  # type: ignore[arg-type]
            stats.update(parts)
            return loss
    else:
        module, path = net, motion_path()

        def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
            text = drop_captions(batch[1], s.p_uncond, g)
            return dsm_loss(m, batch[0], path=path, prediction="x0", cond=text, generator=g)

    out = Path(out_dir)
    trainer = motion_trainer(
        module, loss_fn, TensorDataset(x, text), out, steps=s.steps, batch_size=s.batch_size,
        lr=s.lr, seed=s.seed, quiet=quiet, model_config=net.model_config(),
        optimizer=lambda p: torch.optim.Adam(p, lr=s.lr, betas=(0.5, 0.9)),
    )  # fmt: skip
    result = trainer.fit(resume=resume)
    net.eval()
    save_model(
        net, out / "model", config=net.model_config(),
        card={"data_card": "deepmimic", "kind": kind, "command": command,
              "path": repr(motion_path()), "sample_steps": s.emdm_steps if kind == "emdm" else 50,
              "guidance": s.guidance,
              "train": s.__dict__, "final_loss": result.loss, "final_parts": stats},
        tensors={"mean": torch.from_numpy(mean).float(), "std": torch.from_numpy(std).float()},
    )  # fmt: skip
    return net


@dataclass
class MotionModel:
    """A trained model with its normalisation: :meth:`sample` gives raw feature windows."""

    net: MotionDenoiser
    kind: str
    mean: np.ndarray
    std: np.ndarray
    card: dict[str, Any]

    @torch.no_grad()
    def sample(
        self,
        text: np.ndarray,
        length: int,
        *,
        steps: int | None = None,
        seed: int = 0,
        sampler: str = "ddpm",
        guidance: float | None = None,
    ) -> np.ndarray:
        """Raw feature windows ``(N, length, D)`` for caption vectors ``text (N, text_dim)``:
        EMDM by its ``steps`` (default: trained) GAN steps, DDPM by core's ``sampler`` over
        ``steps`` (default 50) uniform steps."""
        check_int("length", length, 1)
        c = torch.from_numpy(np.asarray(text, dtype=np.float32))
        g = torch.Generator().manual_seed(seed)
        path = motion_path()
        shape = (len(c), length, self.net.config.feature_dim)
        x = path.prior_sample(shape, generator=g)
        n = int(steps or self.card.get("sample_steps", 50))
        check_int("steps", n, 1)
        w = float(self.card.get("guidance", 1.0) if guidance is None else guidance)
        if not np.isfinite(w):
            raise InputError(f"guidance: expected a finite number, got {w!r}")
        if self.kind == "emdm":
            a, sg = _levels(path, torch.arange(n + 1) / n)  # every level once
            for k in range(n, 0, -1):
                t = torch.full((len(c),), k / n)
                z = torch.randn(len(c), self.net.config.z_dim, generator=g)
                if w == 1.0:
                    x0 = self.net(x, t, c, z)
                else:
                    both = self.net(x.repeat(2, 1, 1), t.repeat(2), torch.cat([c, 0 * c]),
                                    z.repeat(2, 1))  # fmt: skip
                    x0 = both[len(c) :] + w * (both[: len(c)] - both[len(c) :])
                noise = torch.randn(x.shape, generator=g) if k > 1 else None
                x = _posterior(
                    x, x0, (a[k - 1 : k], sg[k - 1 : k]), (a[k : k + 1], sg[k : k + 1]), noise
                )
        else:
            from polyfold.core.denoiser import as_denoiser
            from polyfold.core.guidance import cfg

            den: Any = as_denoiser(self.net, path, prediction="x0", cond=c)
            if w != 1.0:  # one 2B call per step: caption and null caption (zeros)
                den = cfg(den, torch.zeros_like(c), w)
            grid = uniform_t_grid(path, n, append_zero=True)
            res = get_sampler(sampler, kind="gaussian")(den, path, x, grid, generator=g)
            x = res.x
        out: np.ndarray = (x.numpy().astype(np.float64) * self.std + self.mean).astype(np.float32)
        return out


def load_motion_model(path: str | Path) -> MotionModel:
    """A model file written by :func:`train_motion_model`."""
    loaded = load_model(path)
    card = dict(loaded.card)
    if card.get("kind") not in MODEL_KINDS:
        raise InputError(f"{path}: not a motion model file (card kind {card.get('kind')!r})")
    net = loaded.model
    net.eval()
    return MotionModel(net, card["kind"], loaded.tensors["mean"].numpy(),
                       loaded.tensors["std"].numpy(), card)  # fmt: skip
