"""TSDiff: an unconditional diffusion model over time-series windows, guided at inference.

Training (``TSDiff.fit``) minimises core's DSM loss (``eps`` prediction, the DDPM "simple"
loss) on the discrete DDPM path TSDiff uses (``T = 100`` steps, betas linear from 1e-4 to 0.1)
over mean-scaled windows with lag channels (:mod:`.features`). At inference:

- :meth:`TSDiff.predict`: self-guidance. DDPM ancestral sampling through core's
  ``observation_guidance`` with an energy of the predicted clean window on the observed
  entries: ``mse`` (``sum (x0 - y)^2``) or ``quantile`` (each sample gets its own quantile
  level ``q`` and the energy is the pinball loss ``sum rho_q(y - x0)``, TSDiff-Q). Missing
  values (NaN) in the context are simply unobserved entries, which covers the random-missing
  and blackout scenarios.
- :meth:`TSDiff.refine`: improve a base forecaster's samples by descending
  ``E(y) = -log p_theta(y) + lam ||y - y_base||^2`` where ``-log p_theta`` is estimated by the
  denoising loss at random diffusion steps: ``energy`` (Langevin, core's ``langevin``) or
  ``ml`` (maximum likelihood, plain gradient steps).
- :meth:`TSDiff.synthesize`: unconditional windows, for train-on-synthetic-test-on-real.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError, NonFiniteError, check_number
from polyfold.core.export import load_model, register_model, save_model
from polyfold.core.guidance import observation_guidance
from polyfold.core.langevin import langevin
from polyfold.core.losses import dsm_loss
from polyfold.core.paths import DiscreteDDPM
from polyfold.core.samplers import ddpm, uniform_t_grid
from polyfold.core.samplers.result import StepCallback
from polyfold.timeseries.data import check_freq
from polyfold.timeseries.tsdiff.backbone import TSDiffBackbone
from polyfold.timeseries.tsdiff.features import (
    context_affine,
    default_lags,
    lagged_window,
    training_windows,
)

__all__ = ["Guidance", "TSDiff", "TSDiffConfig", "WindowSampler"]

Guidance = Literal["mse", "quantile"]
#: ``(denoiser, path, x, generator, callback) -> windows``: how :meth:`TSDiff.sample_windows`
#: integrates (default: DDPM ancestral on the full grid).
WindowSampler = Callable[[Any, DiscreteDDPM, Tensor, Any, Any], Tensor]


@dataclass
class TSDiffConfig:
    """Hyperparameters (saved with checkpoints). ``lags=None``: seasonal lags of ``freq``."""

    context_length: int
    prediction_length: int
    freq: str = "h"
    lags: list[int] | None = None
    hidden: int = 64
    n_blocks: int = 3
    state_size: int = 32
    diffusion_steps: int = 100
    beta_start: float = 1e-4
    beta_end: float = 0.1
    lr: float = 1e-3
    batch_size: int = 64
    steps: int = 2000
    ema_decay: float | None = 0.999
    guidance: Guidance = "quantile"
    guidance_scale: float = 1.0
    scaling: str = "mean"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("context_length", "prediction_length", "hidden", "n_blocks", "steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name}: expected an integer >= 1, got {v!r}")
        self.freq = check_freq(self.freq)
        if self.lags is None:
            self.lags = default_lags(self.freq)
        if any((not isinstance(v, int)) or v < 1 for v in self.lags):
            raise InputError(f"lags: expected positive integers, got {self.lags!r}")
        if self.scaling not in ("mean", "standard"):
            raise InputError(f"scaling: expected 'mean' or 'standard', got {self.scaling!r}")
        if self.guidance not in ("mse", "quantile"):
            raise InputError(f"guidance: expected 'mse' or 'quantile', got {self.guidance!r}")

    @property
    def length(self) -> int:
        return self.context_length + self.prediction_length

    @property
    def channels(self) -> int:
        assert self.lags is not None
        return 1 + len(self.lags)

    @property
    def max_lag(self) -> int:
        assert self.lags is not None
        return max(self.lags, default=0)


class _Net(nn.Module):
    """``model(x_t, t, cond)`` for core: the backbone fed the DDPM step index of ``t``."""

    def __init__(self, cfg: TSDiffConfig, path: DiscreteDDPM) -> None:
        super().__init__()
        self.backbone = TSDiffBackbone(cfg.channels, cfg.hidden, cfg.n_blocks, cfg.state_size)
        self.path = path
        self.config = dataclasses.asdict(cfg)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        return self.backbone(x, self.path.index_of(t.double()).float())


def _pinball(y: Tensor, x0: Tensor, q: Tensor) -> Tensor:
    diff = y - x0
    return torch.maximum(q * diff, (q - 1) * diff)


class TSDiff:
    """A TSDiff model: :meth:`fit`, then :meth:`predict`, :meth:`refine`, :meth:`synthesize`."""

    def __init__(self, config: TSDiffConfig) -> None:
        if not isinstance(config, TSDiffConfig):
            raise InputError(f"config: expected a TSDiffConfig, got {type(config).__name__}")
        self.config = config
        self.path = DiscreteDDPM(
            beta_start=config.beta_start, beta_end=config.beta_end, n=config.diffusion_steps
        )
        torch.manual_seed(config.seed)
        self.net = _Net(config, self.path)
        self.trained_steps = 0
        self.metrics: dict[str, float] = {}

    # -- training ---------------------------------------------------------------------------
    def loss(self, model: nn.Module, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        """Core's DSM loss on ``eps`` (DDPM's simple loss) for a batch of scaled windows."""
        return dsm_loss(model, x0, path=self.path, prediction="eps", generator=generator)

    def fit(
        self,
        series: list[np.ndarray],
        *,
        out_dir: str | Path,
        quiet: bool = True,
        data_card: str | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> TSDiff:
        """Train on NaN-free series with core's Trainer (EMA weights are kept for sampling).

        ``out_dir`` receives the trainer's checkpoints (every ``checkpoint_every`` steps and at
        the end) and ``metrics.csv``; ``resume`` continues the newest checkpoint there.
        """
        from polyfold.core.train import Trainer, load_weights

        cfg = self.config
        data = training_windows(
            series, list(cfg.lags or []), cfg.context_length, cfg.prediction_length, cfg.scaling
        )
        trainer = Trainer(
            self.net,
            self.loss,
            _TensorData(data),
            out_dir=out_dir,
            max_steps=cfg.steps,
            batch_size=min(cfg.batch_size, len(data)),
            lr=cfg.lr,
            warmup_steps=min(100, cfg.steps // 10),
            ema_decay=cfg.ema_decay,
            seed=cfg.seed,
            quiet=quiet,
            log_every=max(1, min(50, cfg.steps)),
            device="cpu",
            tensorboard=False,
            data_card=data_card,
            checkpoint_every=checkpoint_every,
            keep_last=2,
        )
        result = trainer.fit(resume=resume)
        load_weights(out_dir, self.net)
        self.trained_steps = result.step
        self.metrics["train_loss"] = float(result.loss) if result.loss is not None else math.nan
        self.metrics["train_windows"] = float(len(data))
        self.net.eval()
        return self

    # -- sampling ---------------------------------------------------------------------------
    def denoiser(self) -> Any:
        return as_denoiser(self.net, self.path, prediction="eps")

    def _grid(self) -> Tensor:
        return uniform_t_grid(self.path, self.config.diffusion_steps, append_zero=True)

    def sample_windows(
        self,
        n: int,
        *,
        observation: Tensor | None = None,
        observed: Tensor | None = None,
        guidance: Guidance | None = None,
        scale: float | None = None,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        sampler: WindowSampler | None = None,
    ) -> Tensor:
        """``(n, L, C)`` scaled windows: unconditional, or self-guided towards ``observation``
        on the ``observed`` entries (both ``(n, L, C)``). ``callback(step, t, x, x0)`` is handed
        to the sampler (one call per diffusion step). ``sampler(denoiser, path, x, generator,
        callback)`` replaces the default (DDPM ancestral on the ``diffusion_steps`` grid), e.g.
        a core ODE sampler at a few steps; it returns the final windows."""
        cfg = self.config
        if scale is not None and (not math.isfinite(scale) or scale < 0):
            raise InputError(f"scale: expected a finite guidance scale >= 0, got {scale!r}")
        g = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
        x = self.path.prior_sample((n, cfg.length, cfg.channels), generator=g)
        den = self.denoiser()
        if observation is not None:
            if observed is None:
                raise InputError("observed: expected a bool mask with the observation")
            den = self.guided_denoiser(observation, observed, guidance=guidance, scale=scale)
        with torch.no_grad():
            out = (sampler or self._ddpm)(den, self.path, x, g, callback)
        assert isinstance(out, Tensor)
        return out

    def _ddpm(self, den: Any, path: Any, x: Tensor, g: Any, callback: Any) -> Tensor:
        extra: dict[str, Any] = {} if callback is None else {"callback": callback}
        out = ddpm(den, path, x, self._grid(), generator=g, **extra).x
        assert isinstance(out, Tensor)
        return out

    def guided_denoiser(
        self,
        observation: Tensor,
        observed: Tensor,
        *,
        guidance: Guidance | None = None,
        scale: float | None = None,
        levels: Tensor | None = None,
    ) -> Any:
        """The denoiser self-guided towards ``observation`` on the ``observed`` entries (both
        ``(n, L, C)``); ``levels (n,)``: each sample's quantile for ``quantile`` guidance
        (default ``(i + 0.5) / n``)."""
        cfg = self.config
        y = torch.nan_to_num(observation)
        m = observed.to(y.dtype)
        kind = guidance or cfg.guidance
        w = cfg.guidance_scale if scale is None else scale
        if kind == "mse":

            def energy(x0: Tensor, t: Tensor) -> Tensor:
                return ((x0 - y) ** 2 * m).sum(dim=(1, 2))
        else:
            n = y.shape[0]
            q = (torch.arange(n, dtype=y.dtype) + 0.5) / n if levels is None else levels
            if q.shape != (n,):
                raise InputError(f"levels: expected {n} quantile levels, got {tuple(q.shape)}")
            q = q.to(y.dtype)[:, None, None]

            def energy(x0: Tensor, t: Tensor) -> Tensor:
                return (_pinball(y, x0, q) * m).sum(dim=(1, 2))

        return observation_guidance(self.denoiser(), energy, w, paths=self.path)

    def observation_window(
        self, history: np.ndarray
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """The guidance target for forecasting after ``history`` (NaN = missing):
        ``(observation (L, C) scaled, observed (L, C) bool, (loc, scale))``."""
        cfg = self.config
        h = np.asarray(history, dtype=np.float32)
        need = cfg.max_lag + cfg.context_length
        if len(h) < need:
            h = np.concatenate([np.full(need - len(h), np.nan, np.float32), h])
        h = h[len(h) - need :]
        full = torch.as_tensor(
            np.concatenate([h, np.full(cfg.prediction_length, np.nan, np.float32)])
        )
        w = lagged_window(full, list(cfg.lags or []), cfg.length)
        if not bool(torch.isfinite(full[cfg.max_lag : need]).any()):
            raise InputError("history: the context window holds no observed value")
        loc, scale = context_affine(full[None, cfg.max_lag : need], cfg.scaling)
        return (w - loc[0]) / scale[0], torch.isfinite(w), (loc[0], scale[0])

    def predict(
        self,
        history: np.ndarray,
        n_samples: int = 100,
        *,
        guidance: Guidance | None = None,
        scale: float | None = None,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        sampler: WindowSampler | None = None,
    ) -> np.ndarray:
        """``(n_samples, prediction_length)`` forecast samples after ``history`` (NaN allowed,
        unobserved), by self-guided sampling (``sampler``: see :meth:`sample_windows`); in the
        data's units. A run that diverges (too strong guidance) raises an InputError."""
        win = self._guided_windows(
            history, n_samples, guidance, scale, generator, callback, sampler
        )
        return win[:, self.config.context_length :]

    def impute(
        self,
        history: np.ndarray,
        n_samples: int = 100,
        *,
        guidance: Guidance | None = None,
        scale: float | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """``(n_samples, context_length)`` samples of the last context window (missing values
        filled), from the same guided run as :meth:`predict`."""
        win = self._guided_windows(history, n_samples, guidance, scale, generator)
        return win[:, : self.config.context_length]

    def _guided_windows(
        self,
        history: np.ndarray,
        n_samples: int,
        guidance: Guidance | None,
        scale: float | None,
        generator: torch.Generator | None,
        callback: StepCallback | None = None,
        sampler: WindowSampler | None = None,
    ) -> np.ndarray:
        """``(n_samples, context + prediction)`` self-guided windows in the data's units."""
        if not isinstance(n_samples, int) or n_samples < 1:
            raise InputError(f"n_samples: expected an integer >= 1, got {n_samples!r}")
        y, obs, (loc, spread) = self.observation_window(history)
        try:
            win = self.sample_windows(
                n_samples,
                observation=y.expand(n_samples, -1, -1),
                observed=obs.expand(n_samples, -1, -1),
                guidance=guidance,
                scale=scale,
                generator=generator,
                callback=callback,
                sampler=sampler,
            )
        except NonFiniteError as err:  # guidance that blew up: name the setting to change
            raise InputError(f"scale: sampling diverged ({err}); lower the guidance scale") from err
        _check_diverged(win[:, :, 0], y[:, 0][obs[:, 0]], "scale", "the guidance scale")
        return (win[:, :, 0] * spread + loc).numpy()

    # -- refinement -------------------------------------------------------------------------
    def diffusion_energy(self, windows: Tensor, generator: torch.Generator, n_t: int = 1) -> Tensor:
        """``(B,)`` estimate of ``-log p_theta`` up to constants: the denoising loss at ``n_t``
        random DDPM steps (fresh noise each call)."""
        total = windows.new_zeros(windows.shape[0])
        for _ in range(n_t):
            total = (
                total
                + dsm_loss(
                    self.net,
                    windows,
                    path=self.path,
                    prediction="eps",
                    generator=generator,
                    reduction="none",
                )
                * windows[0].numel()
            )
        return total / n_t

    def refine(
        self,
        history: np.ndarray,
        base_samples: np.ndarray,
        *,
        method: Literal["energy", "ml"] = "energy",
        steps: int = 20,
        step_size: float = 1e-2,
        reg: float = 1.0,
        noise_scale: float | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Refine ``base_samples (S, H)`` of the forecast after ``history``: descend
        ``E(y) = -log p_theta(window(y)) + reg ||y - y_base||^2`` (scaled units) from the base
        samples; ``energy``: Langevin with noise ``noise_scale`` (default ``sqrt(2 step)``
        times 0.1 of the data scale, i.e. ``sqrt(2 step_size) * 0.1``); ``ml``: no noise."""
        cfg = self.config
        base = np.asarray(base_samples, dtype=np.float32)
        if base.ndim == 1:
            base = base[None]
        if base.ndim != 2 or base.shape[1] != cfg.prediction_length:
            raise InputError(
                f"base_samples: expected shape (S, {cfg.prediction_length}), got {base.shape}"
            )
        if not np.isfinite(base).all():
            raise InputError("base_samples: contains NaN or infinite values")
        if method not in ("energy", "ml"):
            raise InputError(f"method: expected 'energy' or 'ml', got {method!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InputError(f"steps: expected an integer >= 1, got {steps!r}")
        check_number("step_size", step_size, strict=True)
        check_number("reg", reg)
        h = np.asarray(history, dtype=np.float32)
        need = cfg.max_lag + cfg.context_length
        if len(h) < need:
            raise InputError(f"history: refinement needs {need} points, got {len(h)}")
        h = torch.as_tensor(h[len(h) - need :])
        if not bool(torch.isfinite(h).all()):
            raise InputError("history: refinement needs a history without NaN")
        loc, s = (v[0] for v in context_affine(h[None, cfg.max_lag :], cfg.scaling))
        past = ((h - loc) / s).expand(base.shape[0], -1)
        y0 = (torch.as_tensor(base) - loc) / s
        g = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
        lags = list(cfg.lags or [])

        def energy(y: Tensor) -> Tensor:
            w = lagged_window(torch.cat([past, y], dim=1), lags, cfg.length)
            return self.diffusion_energy(w, g) + reg * ((y - y0) ** 2).sum(-1)

        if method == "ml":
            noise = 0.0
        else:
            noise = math.sqrt(2 * step_size) * 0.1 if noise_scale is None else noise_scale
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            out = langevin(
                y0, generator=g, steps=steps, step_size=step_size, energy=energy, noise_scale=noise
            ).samples
        finally:
            for p in self.net.parameters():
                p.requires_grad_(True)
        _check_diverged(out, torch.cat([past[0], y0.flatten()]), "step_size", "the step size")
        return (out * s + loc).numpy()

    # -- synthesis --------------------------------------------------------------------------
    def synthesize(
        self,
        n: int,
        *,
        scale: float = 1.0,
        loc: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """``(n, L)`` synthetic target windows (channel 0) mapped back as ``x * scale + loc``
        (e.g. the training series' mean absolute value for mean scaling, or its mean and
        standard deviation for ``scaling="standard"``)."""
        if not isinstance(n, int) or n < 1:
            raise InputError(f"n: expected an integer >= 1, got {n!r}")
        return (self.sample_windows(n, generator=generator)[..., 0] * scale + loc).numpy()

    # -- persistence ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TSDiff:
        """An untrained model from ``dataclasses.asdict(config)`` (how model files rebuild it)."""
        return cls(TSDiffConfig(**config))

    def state_dict(self) -> dict[str, Tensor]:
        """The network's weights (what :meth:`save` writes)."""
        return self.net.state_dict()

    def load_state_dict(self, state: Any, strict: bool = True) -> Any:
        return self.net.load_state_dict(state, strict=strict)

    def save(self, directory: str | Path) -> Path:
        """``tsdiff.safetensors`` + ``tsdiff.json`` (config; steps and metrics in the card) in
        ``directory``, written atomically by :func:`polyfold.core.export.save_model`."""
        d = Path(directory)
        card = {"trained_steps": self.trained_steps, "metrics": self.metrics}
        save_model(self, d / "tsdiff", config=dataclasses.asdict(self.config), card=card)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> TSDiff:
        """A model saved by :meth:`save` (safetensors + JSON; nothing is unpickled)."""
        loaded = load_model(Path(directory) / "tsdiff")
        model = loaded.model
        if not isinstance(model, TSDiff):
            raise InputError(f"{directory}: holds a {type(model).__name__}, not a TSDiff model")
        model.net.eval()
        model.trained_steps = int(loaded.card.get("trained_steps", 0))
        model.metrics = dict(loaded.card.get("metrics", {}))
        return model


register_model(TSDiff, name="timeseries.TSDiff")


#: scaled samples beyond this many times the largest scaled observation count as diverged
DIVERGENCE_FACTOR = 100.0


def _check_diverged(samples: Tensor, reference: Tensor, option: str, what: str) -> None:
    """InputError when ``samples`` (scaled) are non-finite or leave the range of the scaled
    ``reference`` values by more than :data:`DIVERGENCE_FACTOR` (a run that blew up)."""
    ref = reference[torch.isfinite(reference)]
    bound = DIVERGENCE_FACTOR * max(1.0, float(ref.abs().max()) if ref.numel() else 1.0)
    worst = float(samples.abs().max()) if samples.numel() else 0.0
    if not bool(torch.isfinite(samples).all()) or worst > bound:
        raise InputError(
            f"{option}: sampling diverged (samples reach {worst:.3g} in scaled units, the data "
            f"stays within {bound / DIVERGENCE_FACTOR:.3g}); lower {what}"
        )


class _TensorData(torch.utils.data.Dataset[Tensor]):
    def __init__(self, data: Tensor) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Tensor:
        return self.data[i]
