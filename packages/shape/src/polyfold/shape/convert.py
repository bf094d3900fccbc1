"""Conversion of a mesh or an analytic SDF to an M-SDF (the paper's two stages).

1. Initialise: ``n`` centres by farthest-point sampling of surface samples, one scale for all
   grids (``coverage`` times the largest distance, in the max norm, from a surface sample to its
   nearest centre, so every surface point is covered with overlap), values by SDF queries at the
   grid nodes.
2. Refine: Adam steps on centres, log-scales and values minimising the L1 error of the blended
   SDF against the true SDF at surface samples and at points jittered off the surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError, check_int
from polyfold.shape.exact import project_to_surface
from polyfold.shape.meshes import Mesh, sample_surface
from polyfold.shape.msdf import MSDF, evaluate_sparse, to_mesh, volume_points
from polyfold.shape.procshapes import Shape
from polyfold.shape.sdf import SDF

__all__ = ["ConvertConfig", "Target", "convert", "farthest_points", "target_of"]


@dataclass(frozen=True)
class Target:
    """What gets converted: its SDF, surface samples with normals, the reference mesh, class."""

    sdf: SDF
    surface: np.ndarray
    normals: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    name: str
    cls: str = ""
    #: ``sdf`` is analytic (surface samples lie on the reference MESH, not on the zero level set);
    #: otherwise ``sdf`` is the distance to that mesh
    analytic: bool = False


@dataclass(frozen=True)
class ConvertConfig:
    """The paper's n = 256 grids of k = 7; refinement steps, learning rate and samples."""

    n: int = 256
    k: int = 7
    steps: int = 100
    lr: float = 2e-3
    coverage: float = 1.5
    surface_samples: int = 20_000
    batch: int = 2048
    jitter: tuple[float, ...] = (0.005, 0.02)
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("k", self.k, 2)
        check_int("steps", self.steps, 0)
        check_int("batch", self.batch, 1)
        check_int("surface_samples", self.surface_samples, self.n)
        if not self.coverage >= 1:
            raise InputError(f"coverage: expected a number >= 1, got {self.coverage!r}")


def target_of(
    source: Mesh | Shape, *, samples: int = 20_000, res: int = 128, seed: int = 0
) -> Target:
    """The :class:`Target` of a loaded mesh, or of a procedural shape (its reference mesh is
    marching cubes of the exact SDF at ``res``, vertices projected onto the exact surface)."""
    if isinstance(source, Mesh):
        v, f = source.surface
        pts, nrm = sample_surface(v, f, samples, seed=seed)
        return Target(source.sdf, pts, nrm, v, f, source.name, source.cls, analytic=False)
    if not isinstance(source, Shape):
        raise InputError(
            f"source: expected a Mesh or a procedural Shape, got {type(source).__name__}"
        )
    vol = source.sdf(volume_points(res, dtype=torch.float64)).reshape(res, res, res)
    v, f = to_mesh(vol)
    v = project_to_surface(source.sdf, v.astype(np.float64), 3)
    pts, nrm = sample_surface(v, f, samples, seed=seed)
    name = f"{source.cls}-{source.seed}"
    return Target(source.sdf, pts, nrm, v, f, name, source.cls, analytic=True)


def farthest_points(points: Tensor, n: int) -> Tensor:
    """Indices of ``n`` farthest-point samples of ``points (N, 3)``, starting at the point
    farthest from the centroid (deterministic, so independent of the points' order up to ties)."""
    check_int("n", n, 1)
    if n > len(points):
        raise InputError(f"n: expected at most {len(points)} grids for this many samples, got {n}")
    dist = (points - points.mean(0)).norm(dim=-1)
    idx = torch.empty(n, dtype=torch.long)
    idx[0] = dist.argmax()
    dist = (points - points[idx[0]]).norm(dim=-1)
    for i in range(1, n):
        idx[i] = dist.argmax()
        dist = torch.minimum(dist, (points - points[idx[i]]).norm(dim=-1))
    return idx


def initialise(target: Target, cfg: ConvertConfig) -> MSDF:
    """Stage 1: FPS centres, one covering scale, values from SDF queries at the nodes."""
    pts = torch.from_numpy(target.surface).double()
    centres = pts[farthest_points(pts, cfg.n)]
    nearest = torch.cat(
        [(p[:, None] - centres[None]).abs().amax(-1).min(-1).values for p in pts.split(4096)]
    )
    scale = float(nearest.max()) * cfg.coverage
    lin = torch.linspace(-1, 1, cfg.k, dtype=torch.float64)
    nodes = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(-1, 3)
    xyz = centres[:, None, :] + scale * nodes[None]
    values = target.sdf(xyz.reshape(-1, 3)).double().reshape(cfg.n, cfg.k, cfg.k, cfg.k)
    scales = torch.full((cfg.n,), scale, dtype=torch.float64)
    return MSDF(centres, scales, values, target.cls)


def _training_points(target: Target, cfg: ConvertConfig) -> tuple[Tensor, Tensor]:
    r = np.random.default_rng(cfg.seed)
    pts = [target.surface]
    for sigma in cfg.jitter:
        pts.append(target.surface + r.normal(0, sigma, target.surface.shape))
    x = torch.from_numpy(np.concatenate(pts)).double()
    with torch.no_grad():
        y = target.sdf(x).double()
    return x, y


def refine(m: MSDF, x: Tensor, y: Tensor, cfg: ConvertConfig) -> MSDF:
    """Stage 2: Adam on centres, log-scales and values (L1 of the blended SDF at ``x``)."""
    centres = m.centres.clone().requires_grad_(True)
    log_s = m.scales.log().clone().requires_grad_(True)
    values = m.values.clone().requires_grad_(True)
    opt = torch.optim.Adam([centres, log_s, values], lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.steps):
        b = torch.randint(len(x), (cfg.batch,), generator=g)
        cur = MSDF.__new__(MSDF)  # skip validation on the hot path
        cur.centres, cur.scales, cur.values, cur.cls = centres, log_s.exp(), values, m.cls
        f, den = evaluate_sparse(cur, x[b])
        covered = den > 0
        loss = (f - y[b]).abs()[covered].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return MSDF(centres.detach(), log_s.detach().exp(), values.detach(), m.cls)


def convert(source: Mesh | Shape | Target, config: ConvertConfig | None = None) -> MSDF:
    """The refined M-SDF of a mesh, a procedural shape or a prepared :class:`Target`."""
    cfg = config or ConvertConfig()
    target = (
        source
        if isinstance(source, Target)
        else target_of(source, samples=cfg.surface_samples, seed=cfg.seed)
    )
    m = initialise(target, cfg)
    if cfg.steps:
        x, y = _training_points(target, cfg)
        m = refine(m, x, y, cfg)
    return m.to(torch.float32)
