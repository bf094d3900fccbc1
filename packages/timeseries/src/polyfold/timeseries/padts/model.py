"""PaD-TS: the model (network, schedule, scaling), its training, sampling and checkpoints.

:class:`PaDTS` holds the dual-channel encoder, the discrete DDPM cosine schedule (core's
``DiscreteDDPM(kind="squaredcos_cap_v2")``) and the per-channel min/max that maps training
windows to [-1, 1] (PaD-TS's normalisation). :func:`train_padts` fits the scaling and trains with
core's :class:`~polyfold.core.train.Trainer` (AdamW, warmup-cosine LR, EMA, atomic safetensors
checkpoints) on the population-aware loss. :meth:`PaDTS.sample` runs core samplers (DDPM
ancestral, DDIM, DPM-Solver++) on the x0-predicting network and maps back to the data scale.
:meth:`PaDTS.save` / :meth:`PaDTS.load` write and read ``padts.safetensors`` + ``padts.json``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.export import load_model, register_model, save_model
from polyfold.core.paths import DiscreteDDPM
from polyfold.core.samplers import StepCallback, get_sampler, uniform_t_grid
from polyfold.core.train import Trainer
from polyfold.timeseries._version import __version__
from polyfold.timeseries.padts.config import SAMPLERS, PaDTSConfig
from polyfold.timeseries.padts.loss import population_loss
from polyfold.timeseries.padts.network import DualChannelEncoder

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "PaDTS", "train_padts"]

STEM = "padts"  # the model pair is padts.safetensors + padts.json (polyfold.core.export)
WEIGHTS_FILE = f"{STEM}.safetensors"
CONFIG_FILE = f"{STEM}.json"


def as_windows(windows: object, name: str = "windows") -> Tensor:
    """``windows`` as a float32 CPU tensor ``(N, L, C)`` of finite values, or InputError."""
    if isinstance(windows, np.ndarray):
        if not np.issubdtype(windows.dtype, np.number):
            raise InputError(f"{name}: expected numeric windows, got dtype {windows.dtype}")
        windows = torch.from_numpy(np.ascontiguousarray(windows))
    if not isinstance(windows, Tensor):
        raise InputError(
            f"{name}: expected a numpy array or tensor (N, L, C), got {type(windows).__name__}"
        )
    if windows.ndim != 3:
        raise InputError(f"{name}: expected shape (N, L, C), got {tuple(windows.shape)}")
    x = windows.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{name}: contains NaN or infinite values")
    return x


class _Windows(Dataset[Tensor]):
    def __init__(self, x: Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Tensor:
        return self.x[i]


class PaDTS(nn.Module):
    """Population-aware diffusion for time series (Li et al., AAAI 2025).

    ``forward(x_t, t, cond=None)`` is the network in core's convention: normalised windows at
    continuous times ``t`` in [0, 1] (``t_k = (k + 1)/n`` is DDPM step ``k``) to the x0
    prediction. Build with :func:`train_padts` or :meth:`load`.
    """

    def __init__(self, config: PaDTSConfig) -> None:
        super().__init__()
        if not isinstance(config, PaDTSConfig):
            raise InputError(f"config: expected a PaDTSConfig, got {type(config).__name__}")
        self.config = config
        self.path = DiscreteDDPM(n=config.diffusion_steps, kind="squaredcos_cap_v2")
        self.net = DualChannelEncoder(
            config.seq_len,
            config.n_features,
            d_model=config.d_model,
            n_heads=config.n_heads,
            n_encoder=config.n_encoder,
            n_layers=config.n_layers,
            mlp_ratio=config.mlp_ratio,
        )
        self.register_buffer("data_min", torch.zeros(config.n_features))
        self.register_buffer("data_span", torch.ones(config.n_features))
        self.data_min: Tensor
        self.data_span: Tensor
        self.clip_output = False

    # --- scaling --------------------------------------------------------------------------------

    @torch.no_grad()
    def fit_scaling(self, windows: Tensor) -> None:
        """Per-channel min and max of ``windows``, so that :meth:`normalize` maps them to
        [-1, 1] (a constant channel maps to -1)."""
        lo = windows.amin(dim=(0, 1))
        span = windows.amax(dim=(0, 1)) - lo
        self.data_min.copy_(lo)
        self.data_span.copy_(torch.where(span > 0, span, torch.ones_like(span)))

    def normalize(self, x: Tensor) -> Tensor:
        """Data scale to the model's [-1, 1] scale."""
        return 2.0 * (x - self.data_min) / self.data_span - 1.0

    def denormalize(self, x: Tensor) -> Tensor:
        """The model's scale back to the data scale."""
        return (x + 1.0) * 0.5 * self.data_span + self.data_min

    # --- network --------------------------------------------------------------------------------

    def forward(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        step = torch.as_tensor(t, device=x_t.device) * self.path.n - 1.0
        x0: Tensor = self.net(x_t, step.reshape(-1).expand(x_t.shape[0]))
        return x0.clamp(-1.0, 1.0) if self.clip_output else x0

    # --- sampling -------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int = 1024,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """``n`` synthetic windows ``(n, L, C)`` in the training data's scale (CPU float32).

        ``sampler``: ``"ddpm"`` (ancestral, default ``diffusion_steps`` steps), ``"ddim"``
        (deterministic) or ``"dpm_solver_pp"`` (2M), the latter two 50 steps by default;
        ``steps`` overrides. Every draw comes from ``generator`` (default: seed 0); generation
        runs in chunks of ``batch_size`` windows, so the same generator state and chunk size
        give the same windows. ``callback(step, t, x, x0)`` (core's step callback) sees every
        sampler step of every chunk.
        """
        cfg = self.config
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"n: expected an integer >= 1, got {n!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        name = cfg.sampler if sampler is None else sampler
        if name not in SAMPLERS:
            raise InputError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {name!r}")
        k = steps if steps is not None else cfg.sample_steps
        if k is None:
            k = cfg.diffusion_steps if name == "ddpm" else min(50, cfg.diffusion_steps)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg.diffusion_steps:
            raise InputError(
                f"steps: expected an integer in [1, diffusion_steps={cfg.diffusion_steps}], "
                f"got {k!r}"
            )
        device = self.data_min.device
        gen = generator if generator is not None else torch.Generator(device).manual_seed(0)
        grid = uniform_t_grid(self.path, k, append_zero=True)
        was_training = self.training
        self.eval()
        self.clip_output = cfg.clip
        try:
            den = as_denoiser(self, self.path, prediction="x0")
            run = get_sampler(name, kind="gaussian")
            out: list[Tensor] = []
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                x = self.path.prior_sample(
                    (b, cfg.seq_len, cfg.n_features), generator=gen, device=device
                )
                res = run(den, self.path, x, grid, generator=gen, callback=callback)
                assert isinstance(res.x, Tensor)
                out.append(res.x)
        finally:
            self.clip_output = False
            self.train(was_training)
        x0 = torch.cat(out)
        return self.denormalize(x0.clamp(-1.0, 1.0) if cfg.clip else x0).float().cpu()

    # --- checkpoints ------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PaDTS:
        """An untrained model from :meth:`PaDTSConfig.to_dict`'s output (validated)."""
        return cls(PaDTSConfig.from_dict(config))

    def save(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write ``padts.safetensors`` (weights and the data scaling buffers) and ``padts.json``
        (config; ``meta`` and versions in the card) into ``directory`` through
        :func:`polyfold.core.export.save_model` (atomic); returns the folder."""
        folder = Path(directory)
        card = {
            "data_card": self.config.data_card,
            "polyfold_timeseries_version": __version__,
            "torch_version": torch.__version__,
            "meta": meta or {},
        }
        save_model(self, folder / STEM, config=self.config.to_dict(), card=card)
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> PaDTS:
        """A model from a folder written by :meth:`save` (safetensors and JSON only)."""
        folder = Path(directory)
        model = load_model(folder / STEM).model
        if not isinstance(model, PaDTS):
            raise InputError(f"directory: {str(folder)!r} holds a {type(model).__name__}")
        return model


register_model(PaDTS, name="timeseries.PaDTS")


def train_padts(
    windows: np.ndarray | Tensor,
    config: PaDTSConfig,
    *,
    quiet: bool = False,
    generator: torch.Generator | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
    checkpoint_every: int | None = None,
) -> PaDTS:
    """Train PaD-TS on ``windows`` ``(N, L, C)`` (any scale; ``N >= batch_size``).

    Uses core's Trainer with ``config``'s settings; the training seed is ``config.seed``, or
    drawn from ``generator`` when one is given. ``out_dir`` keeps the run's checkpoints and
    ``metrics.csv`` (every ``checkpoint_every`` steps and at the end; with ``resume`` it
    continues the newest checkpoint there); by default a temporary folder.
    Returns the model with its EMA weights, on the CPU, in eval mode.
    """
    if not isinstance(config, PaDTSConfig):
        raise InputError(f"config: expected a PaDTSConfig, got {type(config).__name__}")
    x = as_windows(windows)
    if x.shape[1:] != (config.seq_len, config.n_features):
        raise InputError(
            f"windows: expected windows of shape (N, {config.seq_len}, {config.n_features}) "
            f"(config seq_len, n_features), got {tuple(x.shape)}"
        )
    if len(x) < config.batch_size:
        raise InputError(
            f"windows: expected at least batch_size={config.batch_size} windows, got {len(x)}"
        )
    seed = config.seed
    if generator is not None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaDTS(config)
    model.fit_scaling(x)
    data = _Windows(model.normalize(x))
    path, alpha = model.path, float(config.alpha)

    def loss_fn(m: nn.Module, batch: Tensor, g: torch.Generator) -> Tensor:
        return population_loss(m, batch, path=path, alpha=alpha, generator=g)

    with tempfile.TemporaryDirectory(prefix="padts-") as tmp:
        trainer = Trainer(
            model,
            loss_fn,
            data,
            out_dir=out_dir if out_dir is not None else tmp,
            max_steps=config.steps,
            batch_size=config.batch_size,
            lr=config.lr,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_steps,
            ema_decay=config.ema_decay,
            grad_clip=config.grad_clip,
            seed=seed,
            quiet=quiet,
            device=device,
            tensorboard=False,
            log_every=50,
            checkpoint_every=checkpoint_every,
            keep_last=2,
            model_config=config.to_dict(),
            data_card=config.data_card,
        )
        trainer.fit(resume=resume)
        if trainer.ema is not None:
            trainer.ema.copy_to(model)
    return model.cpu().eval()
