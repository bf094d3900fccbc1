"""Score distillation into 3D: SDS, VSD, ISM and TSM optimise SDF grids through the renderer.

Every method by name shares the renderer, the teacher, the initial shapes (one particle: a
sphere on a dense ``grid^3`` :class:`~polyfold.shape.volrender.GridSDF`; several: independent
random blobs, :func:`initial_shapes`, as ProlificDreamer's particles are separately initialised),
the optimiser (Adam), the camera draws and the time schedule; only the gradient on the renders
differs, and each comes from core (:mod:`polyfold.core.distill`), weighted by its paper's
``w(t)`` (``sigma^2`` for SDS/VSD, LucidDreamer's ``sigma / alpha`` for ISM/TSM):

- ``sds``: :func:`~polyfold.core.distill.sds_gradient`;
- ``vsd``: :func:`~polyfold.core.distill.vsd_gradient` over ``particles`` shapes, with a small
  camera-conditioned auxiliary score network (:class:`AuxNet`) trained on the particles'
  renders by :func:`~polyfold.core.distill.vsd_aux_loss` (warmed up on the initial renders, then
  one step per distillation step), shared by all particles (it models their joint distribution,
  so it is not conditioned on the particle); ``aux="exact"`` swaps in the ideal auxiliary, the
  exact denoiser of the particles' own renders (a diagnostic of the network's share of VSD);
- ``ism``: :func:`~polyfold.core.distill.ism_gradient` (DDIM inversion with the teacher);
- ``tsm``: :func:`~polyfold.core.distill.tsm_gradient` with Dreamer XL's pixel-wise gradient
  clipping (each pixel's gradient vector is scaled to norm at most ``clip``).

Times: ``t ~ U(t_lo, hi(i))`` with ``hi`` annealed linearly from ``t_hi`` to ``t_end`` over the
run (ProlificDreamer's annealing, a decreasing-t schedule). Cameras are drawn from a fixed pool
(``elevations x azimuths``), so the teacher's target renders are cached. An eikonal penalty
(finite differences of the grid) keeps the grids distance-like.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.distill import (
    SDWeighting,
    ism_gradient,
    sds_gradient,
    surrogate_loss,
    tsm_gradient,
    vsd_aux_loss,
    vsd_gradient,
)
from polyfold.core.errors import InputError, check_int
from polyfold.shape.msdf import BOUND
from polyfold.shape.teachers import RenderPosterior, Teacher
from polyfold.shape.volrender import Cameras, GridBatch, GridSDF, render, sphere_grid

__all__ = [
    "METHODS",
    "AuxNet",
    "DistillConfig",
    "DistillResult",
    "annealed_t_max",
    "check_schedule",
    "distill",
    "initial_shapes",
    "pixel_clip",
]

METHODS = ("sds", "vsd", "ism", "tsm")
WEIGHTINGS = ("sigma2", "sigma_over_alpha")


def _sigma_over_alpha(alpha: Tensor, sigma: Tensor) -> Tensor:
    return sigma / alpha


@dataclass
class DistillConfig:
    """One distillation run (the same for every method but ``method`` and ``particles``)."""

    method: str = "sds"
    steps: int = 500
    particles: int = 1
    views: int = 2  # per particle per step
    grid: int = 32
    res: int = 32
    samples: int = 32
    beta: float = 0.01
    lr: float = 3e-3
    eikonal: float = 0.1
    init_radius: float = 0.3
    # particles > 1: independent random starts (ProlificDreamer's particles are separately
    # initialised): sphere centre std, radius spread and low-frequency SDF noise amplitude
    init_jitter: float = 0.1
    init_radius_spread: float = 0.08
    init_noise: float = 0.05
    weighting: str | None = None  # default: "sigma2" for sds/vsd, "sigma_over_alpha" for ism/tsm
    t_lo: float = 0.02
    t_hi: float = 0.98
    t_end: float = 0.5
    guidance: float = 1.0
    delta_t: float = 0.05
    inversion_steps: int = 32  # the exact teacher is cheap; 4 steps misalign ISM/TSM
    clip: float | None = None  # pixel-wise clipping; default: 1.0 for tsm, off otherwise
    aux: str = "net"  # "exact": the ideal auxiliary (a diagnostic, see distill)
    aux_width: int = 32
    aux_lr: float = 1e-3
    aux_warmup: int = 100
    elevations: tuple[float, ...] = (10.0, 25.0, 40.0)
    azimuths: int = 12
    seed: int = 0
    log_every: int = 10

    def check(self) -> DistillConfig:
        if self.method not in METHODS:
            raise InputError(f"--method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        check_int("--steps", self.steps, 1)
        check_int("--particles", self.particles, 1)
        check_int("views", self.views, 1)
        check_int("grid", self.grid, 4)
        check_schedule(self.t_lo, self.t_end, self.t_hi, self.guidance)
        if self.aux not in ("net", "exact"):
            raise InputError(f"aux: expected 'net' or 'exact', got {self.aux!r}")
        if self.weighting not in (None, *WEIGHTINGS):
            raise InputError(
                f"weighting: expected one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}"
            )
        return self

    @property
    def weighting_value(self) -> SDWeighting:
        """The papers' ``w(t)``: DreamFusion's ``sigma^2`` for SDS and VSD, LucidDreamer's
        (and Dreamer XL's) ``sigma / alpha`` for ISM and TSM, which makes ISM's gradient the
        change of the one-step ``x0`` estimate over the interval ``[s, t]``."""
        name = self.weighting or ("sigma_over_alpha" if self.method in ("ism", "tsm") else "sigma2")
        return _sigma_over_alpha if name == "sigma_over_alpha" else "sigma2"

    @property
    def clip_value(self) -> float | None:
        return self.clip if self.clip is not None else (1.0 if self.method == "tsm" else None)


def check_schedule(t_lo: float, t_end: float, t_hi: float, guidance: float) -> None:
    """The annealed time range and the CFG scale of a distillation run."""
    if not 0 < t_lo < t_end <= t_hi < 1:
        raise InputError("t_lo, t_end, t_hi: expected 0 < t_lo < t_end <= t_hi < 1")
    if guidance < 0:
        raise InputError(f"--guidance: expected >= 0, got {guidance}")


def annealed_t_max(t_hi: float, t_end: float, step: int, steps: int) -> float:
    """The decreasing upper end of the time range at ``step`` of ``steps``: ``t_hi`` to
    ``t_end``, linearly."""
    return t_hi - (t_hi - t_end) * step / max(1, steps - 1)


def pixel_clip(g: Tensor, c: float) -> Tensor:
    """Scale each pixel's gradient vector (over channels, ``(B, C, H, W)``) to norm <= ``c``."""
    n = g.norm(dim=1, keepdim=True)
    return g * (c / n.clamp_min(1e-12)).clamp_max(1.0)


class AuxNet(nn.Module):
    """VSD's auxiliary eps network: a two-level conv UNet on ``(B, C, H, W)`` renders,
    conditioned on time (Fourier features) and camera (:meth:`Cameras.embedding`) by FiLM."""

    def __init__(self, channels: int = 2, width: int = 32, cond_dim: int = 4) -> None:
        super().__init__()
        c = width
        self.emb = nn.Sequential(
            nn.Linear(16 + cond_dim, 4 * c), nn.SiLU(), nn.Linear(4 * c, 4 * c)
        )
        self.inp = nn.Conv2d(channels, c, 3, padding=1)
        self.d1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.u1 = nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1)
        self.out1 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.out = nn.Conv2d(c, channels, 3, padding=1)
        self.act = nn.SiLU()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000), 8)))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        ang = t.float().reshape(-1, 1) * self.freqs
        e = self.emb(torch.cat([ang.sin(), ang.cos(), cond.float()], -1))
        s1, b1, s2, b2 = e[:, :, None, None].chunk(4, 1)
        h0 = self.act(self.inp(x.float()) * (1 + s1) + b1)
        h1 = self.act(self.d1(h0))
        h1 = self.act(self.mid(h1) * (1 + torch.cat([s2, s2], 1)) + torch.cat([b2, b2], 1))
        h = self.act(self.out1(torch.cat([self.u1(h1), h0], 1)))
        return self.out(h).to(x.dtype)


@dataclass
class DistillResult:
    """The distilled grids ``(P, R, R, R)``, the per-step log, renders over the run (uint8
    ``(H, W*views)`` per snapshot) and timing."""

    grids: Tensor
    log: list[dict[str, float]]
    snapshots: list[tuple[int, np.ndarray]]
    seconds_per_step: float
    config: dict[str, object]


def _eikonal(values: Tensor) -> Tensor:
    h = 2 * BOUND / (values.shape[-1] - 1)
    gx = (values[..., 1:, :-1, :-1] - values[..., :-1, :-1, :-1]) / h
    gy = (values[..., :-1, 1:, :-1] - values[..., :-1, :-1, :-1]) / h
    gz = (values[..., :-1, :-1, 1:] - values[..., :-1, :-1, :-1]) / h
    return ((gx**2 + gy**2 + gz**2 + 1e-12).sqrt() - 1).pow(2).mean()


def _pool(cfg: DistillConfig) -> tuple[Tensor, Tensor]:
    az = torch.arange(cfg.azimuths, dtype=torch.float64) * (360.0 / cfg.azimuths) - 180.0
    el = torch.tensor(cfg.elevations, dtype=torch.float64)
    e, a = torch.meshgrid(el, az, indexing="ij")
    return e.reshape(-1), a.reshape(-1)


def initial_shapes(cfg: DistillConfig, gen: torch.Generator) -> list[GridSDF]:
    """The starting grids: one particle is the centred sphere of ``init_radius``; several are
    independent draws (centre ``N(0, init_jitter^2)``, radius ``init_radius +-
    init_radius_spread`` uniform, plus ``init_noise`` times 8 random low-frequency sines)."""
    if cfg.particles == 1:
        return [sphere_grid(cfg.grid, cfg.init_radius)]
    from polyfold.shape.msdf import volume_points

    pts = volume_points(cfg.grid, dtype=torch.float64)
    out = []
    for _ in range(cfg.particles):
        centre = torch.randn(3, generator=gen, dtype=torch.float64) * cfg.init_jitter
        u = torch.rand(1, generator=gen, dtype=torch.float64).item()
        radius = cfg.init_radius + cfg.init_radius_spread * (2 * u - 1)
        k = torch.randn(8, 3, generator=gen, dtype=torch.float64) * (math.pi / BOUND)
        phase = torch.rand(8, generator=gen, dtype=torch.float64) * (2 * math.pi)
        bumps = (pts @ k.T + phase).sin().sum(-1) * (cfg.init_noise / math.sqrt(8))
        sdf = (pts - centre).norm(dim=-1) - radius + bumps
        out.append(GridSDF(sdf.reshape(cfg.grid, cfg.grid, cfg.grid).float()))
    return out


def snapshot(shapes: list[GridSDF], cams: Cameras, cfg: DistillConfig) -> np.ndarray:
    """Shaded renders of every shape (rows) at ``cams`` (columns), uint8 ``(P*H, V*W)``."""
    with torch.no_grad():
        field = GridBatch(torch.stack([s.values for s in shapes]), len(cams))
        shade = render(
            field, cams.tile(len(shapes)), res=cfg.res, samples=cfg.samples, beta=cfg.beta
        ).shading
    rows = shade.reshape(len(shapes), len(cams), *shade.shape[1:])
    img = torch.cat([torch.cat(list(r), 1) for r in rows], 0)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def distill(
    teacher: Teacher,
    cls: str,
    cfg: DistillConfig,
    *,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    metric: Callable[[list[GridSDF]], dict[str, float]] | None = None,
    metric_every: int = 0,
    snapshot_every: int = 0,
) -> DistillResult:
    """Distil ``teacher``'s class ``cls`` into ``cfg.particles`` SDF grids with ``cfg.method``.

    ``progress(step, fields)`` is called after each step; ``metric(shapes)`` (extra log fields)
    every ``metric_every`` steps and at the end; ``snapshot_every`` records renders."""
    cfg.check()
    teacher.check_class(cls)
    path = teacher.path
    gen = torch.Generator().manual_seed(cfg.seed)
    n_p = cfg.particles
    shapes = initial_shapes(cfg, gen)
    opt = torch.optim.Adam([s.values for s in shapes], lr=cfg.lr)
    pool_e, pool_a = _pool(cfg)
    show = Cameras(torch.tensor([20.0, 20.0, 20.0]), torch.tensor([-150.0, -30.0, 90.0]))
    rkw = {"res": cfg.res, "samples": cfg.samples, "beta": cfg.beta}
    aux: AuxNet | None = None
    aux_opt = None

    def draw() -> Cameras:
        idx = torch.randint(len(pool_e), (n_p * cfg.views,), generator=gen)
        return Cameras(pool_e[idx], pool_a[idx])

    # particle i owns views i, i + P, ...: all particles render in one batched pass, the
    # cameras reordered particle-major and the renders put back in the draw's order
    order = torch.arange(n_p * cfg.views).reshape(cfg.views, n_p).T.reshape(-1)
    back = order.argsort()

    def renders(cams: Cameras) -> Tensor:
        field = GridBatch(torch.stack([s.values for s in shapes]), cfg.views)
        return render(field, cams[order], **rkw).image()[back]

    if cfg.method == "vsd" and cfg.aux == "net":
        aux = AuxNet(width=cfg.aux_width)
        aux_opt = torch.optim.Adam(aux.parameters(), lr=cfg.aux_lr)
        for _ in range(cfg.aux_warmup):
            cams = draw()
            with torch.no_grad():
                x = renders(cams)
            _aux_step(aux, aux_opt, x, cams, path, gen)
    log: list[dict[str, float]] = []
    snaps: list[tuple[int, np.ndarray]] = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        hi = annealed_t_max(cfg.t_hi, cfg.t_end, step, cfg.steps)
        cams = draw()
        x = renders(cams)
        b = x.shape[0]
        t = cfg.t_lo + (hi - cfg.t_lo) * torch.rand(b, generator=gen, dtype=torch.float64)
        prior = teacher.denoiser(cls, cams, guidance=cfg.guidance)
        kw = {"path": path, "t": t, "generator": gen, "weighting": cfg.weighting_value}
        if cfg.method == "sds":
            g = sds_gradient(x, prior, **kw)
        elif cfg.method == "vsd":
            aux_d = (
                as_denoiser(aux, path, prediction="eps", cond=cams.embedding())
                if aux is not None
                else _exact_aux(shapes, cams, teacher, rkw)
            )
            g = vsd_gradient(x, prior, aux_d, **kw)
        else:
            fn = ism_gradient if cfg.method == "ism" else tsm_gradient
            g = fn(x, prior, delta_t=cfg.delta_t, inversion_steps=cfg.inversion_steps, **kw)
        if cfg.clip_value is not None:
            g = pixel_clip(g, cfg.clip_value)
        vals = torch.stack([s.values for s in shapes])
        eik = _eikonal(vals)
        loss = surrogate_loss(x, g.to(x.dtype)) + cfg.eikonal * eik
        opt.zero_grad()
        loss.backward()
        opt.step()
        entry = {
            "step": float(step + 1),
            "grad_norm": float(g.norm() / math.sqrt(b)),
            "eikonal": float(eik.detach()),
            "t_max": hi,
        }
        if aux is not None and aux_opt is not None:
            entry["aux_loss"] = _aux_step(aux, aux_opt, x.detach(), cams, path, gen)
        last = step + 1 == cfg.steps
        measured = metric is not None and (
            (metric_every > 0 and (step + 1) % metric_every == 0) or last
        )
        if measured:
            assert metric is not None
            entry.update(metric(shapes))
        if snapshot_every and ((step + 1) % snapshot_every == 0 or step == 0 or last):
            snaps.append((step + 1, snapshot(shapes, show, cfg)))
        if (step + 1) % cfg.log_every == 0 or last or measured:
            log.append(entry)
        if progress is not None:
            progress(step + 1, entry)
    seconds = (time.perf_counter() - t0) / cfg.steps
    grids = torch.stack([s.values.detach() for s in shapes])
    return DistillResult(grids, log, snaps, seconds, asdict(cfg))


def _exact_aux(
    shapes: list[GridSDF], cams: Cameras, teacher: Teacher, rkw: dict[str, Any]
) -> RenderPosterior:
    """The ideal auxiliary denoiser: the exact one of the particles' own current renders at
    each view (widened by the teacher's ``tau``, 0.5 for a learned teacher), what the network
    approximates at best."""
    with torch.no_grad():
        field = GridBatch(torch.stack([s.values for s in shapes]), len(cams))
        own = render(field, cams.tile(len(shapes)), **rkw).image()
        own = own.reshape(len(shapes), len(cams), *own.shape[1:]).transpose(0, 1)
    return RenderPosterior(own, teacher.path, tau=getattr(teacher, "tau", 0.5))


def _aux_step(
    aux: AuxNet,
    opt: torch.optim.Optimizer,
    x: Tensor,
    cams: Cameras,
    path: object,
    gen: torch.Generator,
) -> float:
    loss = vsd_aux_loss(aux, x, path=path, cond=cams.embedding(), generator=gen)  # type: ignore[arg-type]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())
