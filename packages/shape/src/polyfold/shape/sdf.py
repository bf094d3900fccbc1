"""Exact signed-distance functions of primitives and their combinations, in plain PyTorch.

Every function takes points ``p`` of shape ``(N, 3)`` and returns ``(N,)`` signed distances
(negative inside). Primitives are exact; a union (``min``) is exact outside and a lower bound of
the depth inside, a shell (``|d| - t``) of an exact SDF is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "SDF",
    "box",
    "capsule",
    "cylinder",
    "revolved_polyline",
    "sphere",
    "subtract",
    "torus",
    "union",
]

#: ``(N, 3) points -> (N,) signed distances``
SDF = Callable[[Tensor], Tensor]


def _vec(v: Sequence[float], like: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def sphere(center: Sequence[float], radius: float) -> SDF:
    return lambda p: (p - _vec(center, p)).norm(dim=-1) - radius


def box(center: Sequence[float], half: Sequence[float]) -> SDF:
    """Axis-aligned box of half extents ``half``."""

    def f(p: Tensor) -> Tensor:
        q = (p - _vec(center, p)).abs() - _vec(half, p)
        outside = q.clamp(min=0).norm(dim=-1)
        inside = q.max(dim=-1).values.clamp(max=0)
        return outside + inside

    return f


def capsule(a: Sequence[float], b: Sequence[float], radius: float) -> SDF:
    """Segment ``a``-``b`` thickened by ``radius``."""

    def f(p: Tensor) -> Tensor:
        av, bv = _vec(a, p), _vec(b, p)
        pa, ba = p - av, bv - av
        h = ((pa @ ba) / (ba @ ba)).clamp(0, 1)
        return (pa - h[:, None] * ba).norm(dim=-1) - radius

    return f


def cylinder(center: Sequence[float], radius: float, half_height: float) -> SDF:
    """Capped cylinder along y."""

    def f(p: Tensor) -> Tensor:
        q = p - _vec(center, p)
        d = torch.stack([q[:, [0, 2]].norm(dim=-1) - radius, q[:, 1].abs() - half_height], -1)
        return d.clamp(min=0).norm(dim=-1) + d.max(dim=-1).values.clamp(max=0)

    return f


def torus(center: Sequence[float], major: float, minor: float, axis: int = 1) -> SDF:
    """Torus around ``axis`` (0: x, 1: y, 2: z)."""
    others = [i for i in range(3) if i != axis]

    def f(p: Tensor) -> Tensor:
        q = p - _vec(center, p)
        ring = q[:, others].norm(dim=-1) - major
        return torch.stack([ring, q[:, axis]], -1).norm(dim=-1) - minor

    return f


def revolved_polyline(profile: Sequence[tuple[float, float]], thickness: float) -> SDF:
    """A shell of half-thickness ``thickness`` around the surface of revolution about y of the
    polyline ``profile`` of ``(radius, y)`` points (a vase, a lamp shade)."""
    pts = torch.tensor(profile, dtype=torch.float64)

    def f(p: Tensor) -> Tensor:
        a, b = pts[:-1].to(p), pts[1:].to(p)
        q = torch.stack([p[:, [0, 2]].norm(dim=-1), p[:, 1]], -1)  # (N, 2)
        pa = q[:, None, :] - a[None]
        ba = (b - a)[None]
        h = ((pa * ba).sum(-1) / (ba * ba).sum(-1)).clamp(0, 1)
        d = (pa - h[..., None] * ba).norm(dim=-1).min(dim=1).values
        return d - thickness

    return f


def union(*parts: SDF) -> SDF:
    return lambda p: torch.stack([f(p) for f in parts], 0).min(dim=0).values


def subtract(a: SDF, b: SDF) -> SDF:
    """``a`` with ``b`` carved out."""
    return lambda p: torch.maximum(a(p), -b(p))
