"""ArtifactGen's class-conditional diffusion model on core's paths, loss, guidance and samplers.

The network is :class:`~polyfold.eeg.unet1d.UNet1d`; the forward process is core's
:class:`~polyfold.core.paths.DiscreteDDPM`, the loss core's
:func:`~polyfold.core.losses.dsm_loss` with the class dropped to the null label with probability
``p_uncond`` (so one network is both conditional and unconditional), sampling is a core sampler by
name (:func:`~polyfold.core.samplers.get_sampler`) on core's classifier-free guidance
(:func:`~polyfold.core.guidance.cfg`).

The paper and its public config disagree; both are presets (:data:`PRESETS`):

============  ===================  ==================
preset        ``paper``            ``config``
============  ===================  ==================
schedule      linear betas, 1000   cosine, 1000
objective     eps (noise MSE)      v-prediction
sampler       DDIM, 50 steps       DDIM, 50 steps
guidance      3.5                  3.5
============  ===================  ==================

The default is ``config`` (cosine + v keeps few-step samples sharper, and the shipped model was
trained with it); ``--preset paper`` trains the paper's variant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError, check_int
from polyfold.core.export import register_model
from polyfold.core.guidance import cfg as cfg_guidance
from polyfold.core.guidance import drop_labels
from polyfold.core.losses import dsm_loss
from polyfold.core.paths import DiscreteDDPM
from polyfold.core.samplers import get_sampler, uniform_t_grid
from polyfold.core.state import StepCallback
from polyfold.eeg.unet1d import UNet1d

__all__ = ["DEFAULT_PRESET", "PRESETS", "DiffusionConfig", "EEGDiffusion"]

#: schedule, objective, sampler, steps and guidance of the paper and of its public config
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "schedule": "linear",
        "prediction": "eps",
        "sampler": "ddim",
        "sample_steps": 50,
        "guidance": 3.5,
    },
    "config": {
        "schedule": "cosine",
        "prediction": "v",
        "sampler": "ddim",
        "sample_steps": 50,
        "guidance": 3.5,
    },
}
DEFAULT_PRESET = "config"
_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


@dataclass
class DiffusionConfig:
    """Network sizes, the preset's process and sampling settings, and training settings."""

    channels: int = 8
    n_times: int = 500
    n_classes: int = 5
    base: int = 16
    mults: list[int] = field(default_factory=lambda: [1, 2, 2, 2, 2])
    emb: int = 128
    dropout: float = 0.0
    preset: str = DEFAULT_PRESET
    schedule: str = "cosine"
    prediction: str = "v"
    diffusion_steps: int = 1000
    sampler: str = "ddim"
    sample_steps: int = 50
    guidance: float = 3.5
    p_uncond: float = 0.1
    lr: float = 2e-4
    batch_size: int = 32
    steps: int = 2000
    seed: int = 0

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides: Any) -> DiffusionConfig:
        if preset not in PRESETS:
            raise InputError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
        return cls(preset=preset, **{**PRESETS[preset], **overrides})

    def __post_init__(self) -> None:
        for name in ("channels", "n_times", "n_classes", "base", "emb", "batch_size", "steps"):
            check_int(name, getattr(self, name), 1)
        check_int("diffusion_steps", self.diffusion_steps, 2)
        check_int("sample_steps", self.sample_steps, 1)
        if self.schedule not in _SCHEDULES:
            raise InputError(f"schedule: expected linear or cosine, got {self.schedule!r}")
        if self.prediction not in ("eps", "v", "x0"):
            raise InputError(f"prediction: expected eps, v or x0, got {self.prediction!r}")
        if not 0 <= self.p_uncond < 1:
            raise InputError(f"p_uncond: expected a number in [0, 1), got {self.p_uncond!r}")
        get_sampler(self.sampler, kind="gaussian")  # an unknown name lists the known ones
        self.mults = [int(m) for m in self.mults]
        if any(self.base * m >= 8 and self.base * m % 8 for m in self.mults):
            raise InputError(
                f"base: expected level widths base x mults {self.mults} that are multiples of 8 "
                f"(the U-Net's group norms use 8 groups), got base {self.base}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@register_model("eeg.EEGDiffusion")
class EEGDiffusion(nn.Module):
    """The U-Net with its process: ``loss(x0, y, generator)`` and ``sample(y, ...)``."""

    def __init__(self, config: DiffusionConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if config is not None else DiffusionConfig(**kwargs)
        self.config = cfg
        self.net = UNet1d(
            cfg.channels,
            cfg.n_classes,
            base=cfg.base,
            mults=tuple(cfg.mults),
            emb=cfg.emb,
            dropout=cfg.dropout,
        )
        self.path = DiscreteDDPM(n=cfg.diffusion_steps, kind=_SCHEDULES[cfg.schedule])  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EEGDiffusion:
        try:
            return cls(DiffusionConfig(**config))
        except TypeError as err:
            raise InputError(f"config: {err}") from None

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        out: Tensor = self.net(x_t, t, y)
        return out

    @property
    def null_label(self) -> int:
        return self.config.n_classes

    def loss(
        self,
        x0: Tensor,
        y: Tensor,
        generator: torch.Generator | None = None,
        *,
        net: nn.Module | None = None,
    ) -> Tensor:
        """Core's DSM loss with the class replaced by the null label with ``p_uncond``; ``net``
        is the module to call (the Trainer's possibly wrapped copy of this one)."""
        cond = drop_labels(y, self.config.p_uncond, self.null_label, generator)
        return dsm_loss(
            self if net is None else net,
            x0,
            path=self.path,
            prediction=self.config.prediction,  # type: ignore[arg-type]
            cond=cond,
            generator=generator,
        )

    def sample(
        self,
        y: Tensor,
        *,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Windows of the classes ``y`` in the model's units, with classifier-free guidance
        ``guidance`` (1: conditional only) and core's sampler ``sampler`` over ``steps`` steps
        uniform in t (defaults: the preset's)."""
        cfg = self.config
        spec = get_sampler(sampler or cfg.sampler, kind="gaussian")
        n_steps = check_int("steps", cfg.sample_steps if steps is None else steps, 1)
        scale = cfg.guidance if guidance is None else guidance
        den = as_denoiser(self, self.path, prediction=cfg.prediction, cond=y)  # type: ignore[arg-type]
        guided = cfg_guidance(den, torch.full_like(y, self.null_label), float(scale))
        grid = uniform_t_grid(self.path, n_steps, append_zero=True)
        x = self.path.prior_sample((len(y), cfg.channels, cfg.n_times), generator=generator)
        with torch.no_grad():
            res = spec(guided, self.path, x, grid, generator=generator, callback=callback)
        out = res.x
        assert isinstance(out, Tensor)
        return out
