"""Class-conditional flow matching over the SET of M-SDF grids (or, as the baseline, over a set
of surface points with the same network: ``FlowConfig(tokens="points")``).

A shape is ``n`` tokens, one per grid: ``[centre (3), log scale (1), values (k^3)]`` (values in
units of the grid's scale, through ``asinh(v / (value_tau * s))``: ``FlowConfig.value_tau``),
standardised per feature with the training set's statistics (buffers of the model), then the four
geometry features multiplied by ``geometry_weight``: standardised alone, the 3 centre features are
3 of 129 loss terms (k=5) and the model learns the values' statistics but not where the grids go
(sampled grids scatter into one blob each); weighted, the centres also carry a higher
signal-to-noise ratio along the path, so they settle before the values. The network
is a transformer encoder over the tokens with NO positional encoding, plus one condition token
(time + class embedding, also added to every grid token), so permuting the grids permutes its
output: the model is permutation-equivariant and the generated set has no order.

Training is core's :func:`~polyfold.core.losses.cfm_loss` on the linear interpolant (optionally
minibatch-OT coupled) with the class dropped to a null label with probability ``p_uncond``;
sampling is core's classifier-free guidance around a core ODE sampler chosen by name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError, check_int
from polyfold.core.export import register_model
from polyfold.core.guidance import cfg as cfg_guidance
from polyfold.core.guidance import drop_labels
from polyfold.core.losses import cfm_loss
from polyfold.core.paths import LinearInterpolant
from polyfold.core.samplers import get_sampler, uniform_t_grid
from polyfold.core.state import StepCallback
from polyfold.shape.msdf import MSDF

__all__ = ["FlowConfig", "SetTransformer", "ShapeFlow", "from_tokens", "to_tokens"]


def to_tokens(shapes: list[MSDF], value_tau: float = 0.0) -> Tensor:
    """``(B, n, 4 + k^3)`` raw tokens of M-SDFs with equal ``n`` and ``k``: centre, log scale,
    and the values in units of the grid's scale, ``asinh(v / (value_tau * s))`` when
    ``value_tau > 0`` (see :class:`FlowConfig`), ``v / s`` otherwise."""
    if not shapes:
        raise InputError("shapes: expected at least one M-SDF")
    n, k = shapes[0].n, shapes[0].k
    if any(m.n != n or m.k != k for m in shapes):
        raise InputError("shapes: every M-SDF must have the same n and k")
    rows = []
    for m in shapes:
        s = m.scales.float()
        vals = m.values.float().reshape(n, -1) / s[:, None]
        if value_tau > 0:
            vals = torch.asinh(vals / value_tau)
        rows.append(torch.cat([m.centres.float(), s.log()[:, None], vals], -1))
    return torch.stack(rows)


def from_tokens(tokens: Tensor, k: int, cls: str = "", value_tau: float = 0.0) -> list[MSDF]:
    """M-SDFs of raw tokens ``(B, n, 4 + k^3)`` (scales clamped to a sane range); the inverse
    of :func:`to_tokens` with the same ``value_tau``."""
    out = []
    for t in tokens.detach().float():
        s = t[:, 3].clamp(math.log(1e-3), math.log(0.5)).exp()
        rel = t[:, 4:]
        if value_tau > 0:
            rel = value_tau * torch.sinh(rel.clamp(-8, 8))
        vals = (rel * s[:, None]).reshape(-1, k, k, k)
        out.append(MSDF(t[:, :3].clamp(-0.6, 0.6).contiguous(), s, vals.contiguous(), cls))
    return out


@dataclass
class FlowConfig:
    """Sizes, classes, the flow-matching and sampling settings, and training settings."""

    classes: list[str] = field(default_factory=lambda: ["chair"])
    #: "msdf" (one token per grid) or "points" (one token per surface point: the baseline)
    tokens: str = "msdf"
    n: int = 256
    k: int = 7
    width: int = 128
    depth: int = 4
    heads: int = 4
    p_uncond: float = 0.1
    coupling: str = "independent"
    sampler: str = "heun"
    sample_steps: int = 25
    guidance: float = 2.0
    #: scale of the standardised centre and log-scale features (M-SDF tokens; 1: plain)
    geometry_weight: float = 1.0
    #: values enter the tokens as ``asinh(v / (value_tau * s))`` (M-SDF tokens; 0: plain ``v / s``,
    #: what model files without this key use): linear within ``value_tau`` grid scales of the
    #: surface, logarithmic beyond, so the loss spends its precision on the sign near the surface
    value_tau: float = 0.1
    lr: float = 5e-4
    batch_size: int = 16
    steps: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n", "width", "depth", "heads", "batch_size", "steps", "sample_steps"):
            check_int(name, getattr(self, name), 1)
        check_int("k", self.k, 2)
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise InputError(f"classes: expected distinct class names, got {self.classes!r}")
        if self.width % self.heads:
            raise InputError(f"width: expected a multiple of heads={self.heads}, got {self.width}")
        if self.tokens not in ("msdf", "points"):
            raise InputError(f"tokens: expected msdf or points, got {self.tokens!r}")
        if self.coupling not in ("independent", "ot"):
            raise InputError(f"coupling: expected independent or ot, got {self.coupling!r}")
        if not self.geometry_weight > 0:
            raise InputError(
                f"geometry_weight: expected a positive number, got {self.geometry_weight!r}"
            )
        if not self.value_tau >= 0:
            raise InputError(f"value_tau: expected a number >= 0, got {self.value_tau!r}")
        if not 0 <= self.p_uncond < 1:
            raise InputError(f"p_uncond: expected a number in [0, 1), got {self.p_uncond!r}")
        get_sampler(self.sampler, kind="gaussian")
        self.classes = [str(c) for c in self.classes]

    @property
    def dim(self) -> int:
        return 3 if self.tokens == "points" else 4 + self.k**3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of ``t (B,)`` in [0, 1]."""
    half = dim // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    ang = 1000.0 * t.float()[:, None] * freq[None]
    return torch.cat([ang.sin(), ang.cos()], -1)


class SetTransformer(nn.Module):
    """Permutation-equivariant transformer over ``(B, L, dim)`` tokens with a condition vector
    ``(B, width)``: no positional encoding; the condition is added to every token and also
    attended to as one extra token."""

    def __init__(self, dim: int, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = self.inp(x) + c[:, None]
        h = self.body(torch.cat([c[:, None], h], 1))[:, 1:]
        out: Tensor = self.out(self.norm(h))
        return out


@register_model("shape.ShapeFlow")
class ShapeFlow(nn.Module):
    """The set transformer with its flow: ``loss(x0, y, generator)`` and ``sample(y, ...)``;
    ``x0`` are standardised tokens (:meth:`encode`)."""

    mean: Tensor
    std: Tensor

    def __init__(self, config: FlowConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if config is not None else FlowConfig(**kwargs)
        self.config = cfg
        self.net = SetTransformer(cfg.dim, cfg.width, cfg.depth, cfg.heads)
        self.label = nn.Embedding(len(cfg.classes) + 1, cfg.width)  # last row: the null label
        self.time = nn.Sequential(
            nn.Linear(cfg.width, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width)
        )
        self.register_buffer("mean", torch.zeros(cfg.dim))
        self.register_buffer("std", torch.ones(cfg.dim))
        self.path = LinearInterpolant()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ShapeFlow:
        config = {"value_tau": 0.0, **config}  # files from before value_tau: plain values
        try:
            return cls(FlowConfig(**config))
        except TypeError as err:
            raise InputError(f"config: {err}") from None

    @property
    def null_label(self) -> int:
        return len(self.config.classes)

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        t = t.reshape(-1).expand(x_t.shape[0]) if t.numel() == 1 else t
        c = self.time(time_embedding(t, self.config.width)) + self.label(y)
        out: Tensor = self.net(x_t, c)
        return out

    def fit_normalisation(self, tokens: Tensor) -> None:
        """Set the per-feature mean and std from raw training tokens ``(N, n, dim)``; the
        geometry features' std is divided by ``geometry_weight`` (M-SDF tokens)."""
        flat = tokens.reshape(-1, tokens.shape[-1]).float()
        self.mean.copy_(flat.mean(0))
        std = flat.std(0).clamp_min(1e-3)
        if self.config.tokens == "msdf":
            std[:4] = std[:4] / self.config.geometry_weight
        self.std.copy_(std)

    def encode(self, shapes: list[MSDF]) -> Tensor:
        return self.standardise(to_tokens(shapes, self.config.value_tau))

    def standardise(self, raw: Tensor) -> Tensor:
        return (raw - self.mean) / self.std

    def unstandardise(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    def decode(self, x: Tensor, cls: str = "") -> list[MSDF]:
        return from_tokens(self.unstandardise(x), self.config.k, cls, self.config.value_tau)

    def labels(self, classes: list[str]) -> Tensor:
        """Label indices of class names (an unknown class is an InputError)."""
        known = self.config.classes
        bad = [c for c in classes if c not in known]
        if bad:
            raise InputError(
                f"--class: unknown {', '.join(bad)}; this model knows {', '.join(known)}"
            )
        return torch.tensor([known.index(c) for c in classes], dtype=torch.long)

    def loss(
        self,
        x0: Tensor,
        y: Tensor,
        generator: torch.Generator | None = None,
        *,
        net: nn.Module | None = None,
    ) -> Tensor:
        """Core's flow-matching loss with the class dropped to the null label w.p. ``p_uncond``."""
        cond = drop_labels(y, self.config.p_uncond, self.null_label, generator)
        return cfm_loss(
            self if net is None else net,
            x0,
            path=self.path,
            coupling=self.config.coupling,  # type: ignore[arg-type]
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
        """Standardised tokens of shapes of classes ``y`` by core's sampler ``sampler`` with
        classifier-free guidance ``guidance`` (defaults: the config's)."""
        cfg = self.config
        spec = get_sampler(sampler or cfg.sampler, kind="gaussian")
        n_steps = check_int("steps", cfg.sample_steps if steps is None else steps, 1)
        scale = cfg.guidance if guidance is None else guidance
        den = as_denoiser(self, self.path, prediction="velocity", cond=y)
        guided = cfg_guidance(den, torch.full_like(y, self.null_label), float(scale))
        grid = uniform_t_grid(self.path, n_steps)
        x = self.path.prior_sample((len(y), cfg.n, cfg.dim), generator=generator)
        with torch.no_grad():
            res = spec(guided, self.path, x, grid, generator=generator, callback=callback)
        out = res.x
        assert isinstance(out, Tensor)
        return out
