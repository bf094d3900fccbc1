"""GDSS's system of SDEs on the graph state ``{"x": nodes (B, N, F), "adj": adjacency (B, N, N)}``.

Each component has its own forward SDE, a path from :mod:`polyfold.core.paths`:

- ``VP``: score_sde's VP SDE with linear ``beta(t)`` (:class:`~polyfold.core.paths.VPLinear`);
- ``VE``: score_sde's VE SDE, ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``
  (:class:`~polyfold.core.paths.VE`).

GDSS's score networks take no time input. For a VP component the network output is read as the
noise (GDSS's ``score = -output / std``), for a VE component as the score itself; core's
denoisers and losses take those as the ``"eps"`` and ``"score"`` predictions.

Presets (the official GDSS configs ``config/qm9.yaml``, ``zinc250k.yaml``,
``community_small.yaml``; ``num_scales = 1000``):

======================  ==================  ==================  =========
preset                  x                   adj                 adj scale
======================  ==================  ==================  =========
``qm9``                 VE 0.1 .. 1.0       VE 0.1 .. 1.0       3
``zinc250k``            VP 0.1 .. 1.0       VE 0.2 .. 1.0       3
``community_small``     VP 0.1 .. 1.0       VP 0.1 .. 1.0       1
======================  ==================  ==================  =========

Molecular adjacencies are diffused in bond-order units ``{0, 1, 2, 3}`` as GDSS does (the data
API's ``bond order / 3`` times ``adj_scale = 3``) and quantised back with GDSS's thresholds 0.5,
1.5, 2.5. Adjacency noise is symmetric: upper-triangular standard normal noise mirrored, zero
diagonal; padded nodes (mask False) have zero rows and columns in every tensor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.core.paths import VE, GaussianPath, VPLinear
from polyfold.core.predictions import Prediction
from polyfold.core.state import outer_mask

__all__ = [
    "PRESETS",
    "ComponentSDE",
    "GraphSDE",
    "graph_noise",
    "mask_adj",
    "mask_x",
    "prior_sample",
    "state_masks",
    "symmetric_noise",
]

Kind = Literal["VP", "VE"]
KEYS = ("x", "adj")


@dataclass(frozen=True)
class ComponentSDE:
    """One component's forward SDE: ``VP`` (``lo, hi`` = beta_min, beta_max) or ``VE``
    (``lo, hi`` = sigma_min, sigma_max). ``num_scales`` is GDSS's config field (kept in model
    files); the samplers take their step count from ``steps``."""

    kind: Kind
    lo: float
    hi: float
    num_scales: int = 1000

    def __post_init__(self) -> None:
        if self.kind not in ("VP", "VE"):
            raise InputError(f"kind: expected 'VP' or 'VE', got {self.kind!r}")
        if not (0 <= self.lo < self.hi and math.isfinite(self.hi)):
            raise InputError(f"lo, hi: expected 0 <= lo < hi, got {self.lo!r}, {self.hi!r}")
        if not (isinstance(self.num_scales, int) and self.num_scales >= 2):
            raise InputError(f"num_scales: expected an integer >= 2, got {self.num_scales!r}")

    def path(self) -> GaussianPath:
        """The core path with this SDE's marginals."""
        if self.kind == "VP":
            return VPLinear(beta_min=self.lo, beta_max=self.hi)
        return VE(sigma_min=self.lo, sigma_max=self.hi)

    @property
    def prediction(self) -> Prediction:
        """What GDSS's time-free network outputs for this component."""
        return "eps" if self.kind == "VP" else "score"

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior at ``t = 1`` (1 for VP, sigma_max for VE)."""
        return 1.0 if self.kind == "VP" else self.hi

    def diffusion(self, t: Tensor) -> Tensor:
        """``g(t)`` of the forward SDE (from the core path)."""
        return self.path().sde(t)[1]

    def drift_coef(self, t: Tensor) -> Tensor:
        """``f(t)`` of the forward SDE ``dx = f x dt + g dW``."""
        return self.path().sde(t)[0]


@dataclass(frozen=True)
class GraphSDE:
    """The system of SDEs: one :class:`ComponentSDE` for nodes ``x`` and one for ``adj``."""

    x: ComponentSDE
    adj: ComponentSDE
    adj_scale: float = 1.0
    eps: float = 1e-5  # smallest training time (GDSS's train.eps)
    sample_eps: float = 1e-4  # last sampling time (GDSS's sample.eps)
    name: str = field(default="custom", compare=False)

    def paths(self) -> dict[str, GaussianPath]:
        """Per key, the core path."""
        return {"x": self.x.path(), "adj": self.adj.path()}

    def predictions(self) -> dict[str, Prediction]:
        """Per key, what the network outputs (``"eps"`` for VP, ``"score"`` for VE)."""
        return {"x": self.x.prediction, "adj": self.adj.prediction}

    def component(self, key: str) -> ComponentSDE:
        if key not in KEYS:
            raise InputError(f"key: expected 'x' or 'adj', got {key!r}")
        return self.x if key == "x" else self.adj

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphSDE:
        try:
            return cls(
                x=ComponentSDE(**d["x"]),
                adj=ComponentSDE(**d["adj"]),
                adj_scale=float(d.get("adj_scale", 1.0)),
                eps=float(d.get("eps", 1e-5)),
                sample_eps=float(d.get("sample_eps", 1e-4)),
                name=str(d.get("name", "custom")),
            )
        except (KeyError, TypeError) as err:
            raise InputError(f"sde: expected keys x, adj with kind/lo/hi ({err})") from None


PRESETS: dict[str, GraphSDE] = {
    "qm9": GraphSDE(ComponentSDE("VE", 0.1, 1.0), ComponentSDE("VE", 0.1, 1.0), 3.0, name="qm9"),
    "zinc250k": GraphSDE(
        ComponentSDE("VP", 0.1, 1.0), ComponentSDE("VE", 0.2, 1.0), 3.0, name="zinc250k"
    ),
    "community_small": GraphSDE(
        ComponentSDE("VP", 0.1, 1.0), ComponentSDE("VP", 0.1, 1.0), 1.0, name="community_small"
    ),
}


def _check_mask(mask: Tensor, n: int) -> None:
    if mask.dtype != torch.bool or mask.ndim != 2 or mask.shape[1] != n:
        raise InputError(
            f"mask: expected a bool node mask (B, {n}), got {mask.dtype} {tuple(mask.shape)}"
        )


def mask_x(x: Tensor, mask: Tensor) -> Tensor:
    """Zero the features of padded nodes: ``x (B, N, F)``, ``mask (B, N)``."""
    _check_mask(mask, x.shape[1])
    return x * mask[:, :, None].to(x.dtype)


def mask_adj(adj: Tensor, mask: Tensor) -> Tensor:
    """Zero the rows and columns of padded nodes of ``adj (B, N, N)`` (also ``(B, C, N, N)``)."""
    _check_mask(mask, adj.shape[-1])
    m = outer_mask(mask).to(adj.dtype)
    return adj * (m if adj.ndim == 3 else m[:, None])


def state_masks(mask: Tensor) -> dict[str, Tensor]:
    """Core's per-key masks of a node mask: ``{"x": (B, N), "adj": (B, N, N)}``."""
    return {"x": mask, "adj": outer_mask(mask)}


def symmetric_noise(
    shape: tuple[int, ...],
    mask: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Standard normal ``(B, N, N)`` noise on the strict upper triangle, mirrored; zero diagonal."""
    z = torch.randn(shape, generator=generator, device=device, dtype=dtype).triu(1)
    z = z + z.transpose(-1, -2)
    return z if mask is None else mask_adj(z, mask)


def graph_noise(
    state: dict[str, Tensor], mask: Tensor, *, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """GDSS's noise for a graph state: masked i.i.d. node noise, symmetric adjacency noise."""
    x, adj = state["x"], state["adj"]
    zx = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    za = symmetric_noise(
        tuple(adj.shape), mask, generator=generator, device=adj.device, dtype=adj.dtype
    )
    return {"x": mask_x(zx, mask), "adj": za}


def prior_sample(
    sde: GraphSDE,
    mask: Tensor,
    n_features: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """A draw from the prior at ``t = 1``: masked ``N(0, std^2)`` nodes, symmetric adjacency."""
    b, n = mask.shape
    z = graph_noise(
        {
            "x": torch.empty(b, n, n_features, dtype=dtype, device=mask.device),
            "adj": torch.empty(b, n, n, dtype=dtype, device=mask.device),
        },
        mask,
        generator=generator,
    )
    return {"x": z["x"] * sde.x.prior_std, "adj": z["adj"] * sde.adj.prior_std}
