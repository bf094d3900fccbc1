"""A differentiable SDF volume renderer in plain PyTorch (VolSDF-style density, Lambert shading).

Any SDF callable ``(N, 3) -> (N,)`` renders: an M-SDF (:func:`msdf_field`), a dense grid
(:class:`GridSDF`, trilinear via ``grid_sample``), a small MLP (:class:`MLPSDF`) or an analytic
procedural shape. A field with ``batched = True`` (:class:`GridBatch`, :class:`MSDFBatch`:
several shapes, each seen by its own cameras) is called once with ``(B, N, 3)`` points, row
``b`` the points of camera ``b``, so many shapes render in one pass.
Density is VolSDF's ``sigma(x) = Psi_beta(-d(x)) / beta`` (``Psi_beta`` the CDF of a zero-mean
Laplace of scale ``beta``); samples are spread uniformly over each ray's chord through the cube
``[-BOUND, BOUND]^3``; weights ``w_i = T_i (1 - exp(-sigma_i delta_i))``.
Normals are tetrahedral finite differences of the SDF (4 extra evaluations per sample); shading
is ``ambient + (1 - ambient) max(0, n . l)`` with a light at the camera (a headlight), composited
on a black background. Cameras are pinholes on a sphere looking at the origin, y up, described
by elevation and azimuth in degrees.

:func:`render` returns a :class:`Render` (opacity, depth, normals, shading; ``(B, H, W)`` or
``(B, 3, H, W)``); :meth:`Render.image` is the 2-channel picture in ``[-1, 1]`` (shading,
opacity) that the 2D teachers see.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError, check_int
from polyfold.core.ops import local_grid_blend
from polyfold.shape.msdf import BOUND, FAR, MSDF, evaluate

__all__ = [
    "MLPSDF",
    "Cameras",
    "GridBatch",
    "GridSDF",
    "MSDFBatch",
    "Render",
    "cameras",
    "grid_sdf",
    "msdf_field",
    "random_cameras",
    "render",
    "sphere_grid",
]

#: ``(N, 3) points -> (N,) signed distances`` (differentiable for the renderer's gradients)
Field = Callable[[Tensor], Tensor]

_TETRA = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])


@dataclass(frozen=True)
class Cameras:
    """``B`` pinhole cameras: elevation and azimuth (degrees), distance to the origin, field of
    view (degrees)."""

    elevation: Tensor
    azimuth: Tensor
    radius: float = 2.2
    fov: float = 40.0

    def __len__(self) -> int:
        return int(self.elevation.shape[0])

    def eye(self) -> Tensor:
        """``(B, 3)`` camera positions (y up; azimuth 0 looks along -z)."""
        e, a = self.elevation.double().deg2rad(), self.azimuth.double().deg2rad()
        return self.radius * torch.stack([e.cos() * a.sin(), e.sin(), e.cos() * a.cos()], -1)

    def embedding(self) -> Tensor:
        """``(B, 4)`` sin/cos of elevation and azimuth: the camera condition of 2D networks."""
        e, a = self.elevation.float().deg2rad(), self.azimuth.float().deg2rad()
        return torch.stack([e.sin(), e.cos(), a.sin(), a.cos()], -1)

    def __getitem__(self, index: slice | Tensor) -> Cameras:
        """The cameras at ``index`` (a slice or an index tensor), same radius and field of view."""
        return Cameras(self.elevation[index], self.azimuth[index], self.radius, self.fov)

    def repeat(self, n: int) -> Cameras:
        """Each camera ``n`` times in a row (``B * n`` cameras)."""
        return Cameras(
            self.elevation.repeat_interleave(n),
            self.azimuth.repeat_interleave(n),
            self.radius,
            self.fov,
        )

    def tile(self, n: int) -> Cameras:
        """All cameras, ``n`` times over (``n * B`` cameras)."""
        return Cameras(self.elevation.repeat(n), self.azimuth.repeat(n), self.radius, self.fov)


def cameras(elevation: list[float] | Tensor, azimuth: list[float] | Tensor, **kw: float) -> Cameras:
    """Cameras at the given elevations and azimuths (degrees, same length)."""
    e = torch.as_tensor(elevation, dtype=torch.float64).reshape(-1)
    a = torch.as_tensor(azimuth, dtype=torch.float64).reshape(-1)
    if e.shape != a.shape or len(e) == 0:
        raise InputError("elevation, azimuth: expected the same non-zero number of angles")
    return Cameras(e, a, **kw)


def random_cameras(
    n: int,
    *,
    elevation: tuple[float, float] = (0.0, 40.0),
    azimuth: tuple[float, float] = (-180.0, 180.0),
    generator: torch.Generator | None = None,
    **kw: float,
) -> Cameras:
    """``n`` cameras with elevation and azimuth uniform on the given ranges (degrees)."""
    check_int("n", n, 1)
    for name, (lo, hi) in (("elevation", elevation), ("azimuth", azimuth)):
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise InputError(f"{name}: expected a range (lo, hi) with lo <= hi, got {(lo, hi)}")
    if not -90.0 < elevation[0] <= elevation[1] < 90.0:
        raise InputError(f"elevation: expected degrees inside (-90, 90), got {elevation}")
    u = torch.rand(2, n, generator=generator, dtype=torch.float64)
    e = elevation[0] + (elevation[1] - elevation[0]) * u[0]
    a = azimuth[0] + (azimuth[1] - azimuth[0]) * u[1]
    return Cameras(e, a, **kw)


def _rays(cams: Cameras, res: int) -> tuple[Tensor, Tensor]:
    """Origins ``(B, 3)`` and unit directions ``(B, res*res, 3)`` (row 0 on top), float64."""
    eye = cams.eye()
    fwd = -eye / eye.norm(dim=-1, keepdim=True)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand_as(fwd)
    right = torch.linalg.cross(fwd, up)
    right = right / right.norm(dim=-1, keepdim=True)
    true_up = torch.linalg.cross(right, fwd)
    half = math.tan(math.radians(cams.fov) / 2)
    s = (torch.arange(res, dtype=torch.float64) + 0.5) / res * 2 - 1  # pixel centres in (-1, 1)
    v, u = torch.meshgrid(-s * half, s * half, indexing="ij")  # rows go down the image
    d = (
        fwd[:, None, :]
        + u.reshape(1, -1, 1) * right[:, None, :]
        + v.reshape(1, -1, 1) * true_up[:, None, :]
    )
    return eye, d / d.norm(dim=-1, keepdim=True)


def _chord(eye: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit distances ``(B, R)`` of each ray through the cube; misses get ``far=near``."""
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t1 = (-BOUND - eye[:, None, :]) * inv
    t2 = (BOUND - eye[:, None, :]) * inv
    near = torch.minimum(t1, t2).amax(-1).clamp_min(0.0)
    far = torch.maximum(t1, t2).amin(-1)
    return near, torch.maximum(far, near)


def _laplace_cdf(s: Tensor, beta: float) -> Tensor:
    """``Psi_beta(s)``: the CDF of a Laplace(0, beta) at ``s``."""
    e = torch.exp(-s.abs() / beta)
    return torch.where(s <= 0, 0.5 * e, 1 - 0.5 * e)


@dataclass(frozen=True)
class Render:
    """Rendered views: ``opacity``, ``depth``, ``shading`` ``(B, H, W)``; ``normal``
    ``(B, 3, H, W)`` (opacity-weighted, world frame)."""

    opacity: Tensor
    depth: Tensor
    normal: Tensor
    shading: Tensor

    def image(self) -> Tensor:
        """``(B, 2, H, W)`` in ``[-1, 1]``: Lambert shading on black, and opacity."""
        return torch.stack([self.shading, self.opacity], 1) * 2 - 1


def render(
    field: Field,
    cams: Cameras,
    *,
    res: int = 32,
    samples: int = 48,
    beta: float = 0.01,
    fd: float = 2e-3,
    ambient: float = 0.25,
    jitter: torch.Generator | None = None,
) -> Render:
    """Volume-render the SDF ``field`` from ``cams`` at ``res x res`` pixels with ``samples``
    points per ray (stratified with random offsets from ``jitter`` if given, else midpoints);
    ``beta`` is the density's Laplace scale, ``fd`` the finite-difference step of the normals.
    Differentiable with respect to everything ``field`` depends on."""
    check_int("res", res, 1)
    check_int("samples", samples, 2)
    if not (beta > 0 and fd > 0 and 0 <= ambient <= 1):
        raise InputError("beta, fd: expected > 0; ambient: expected in [0, 1]")
    if not isinstance(cams, Cameras):
        raise InputError(f"cams: expected Cameras, got {type(cams).__name__}")
    eye, d = _rays(cams, res)
    near, far = _chord(eye, d)
    dtype = _field_dtype(field)
    eye, d, near, far = (v.to(dtype) for v in (eye, d, near, far))
    b, r = near.shape
    if jitter is None:
        u = ((torch.arange(samples, dtype=dtype) + 0.5) / samples).expand(b, r, samples)
    else:
        off = torch.rand(b, r, samples, generator=jitter, dtype=torch.float64).to(dtype)
        u = (torch.arange(samples, dtype=dtype) + off) / samples
    ts = near[..., None] + (far - near)[..., None] * u  # (B, R, S)
    pts = eye[:, None, None, :] + ts[..., None] * d[:, :, None, :]  # (B, R, S, 3)
    flat = pts.reshape(-1, 3)
    tet = _TETRA.to(dtype)
    # one batched call: the points, then the four tetrahedral offsets
    allp = torch.cat([flat, (flat[None] + fd * tet[:, None, :]).reshape(-1, 3)])
    if getattr(field, "batched", False):  # per-camera rows: (5, B, R*S) -> (B, 5 * R*S)
        per_cam = allp.reshape(5, b, -1, 3).transpose(0, 1).reshape(b, -1, 3)
        bvals = field(per_cam)
        if bvals.shape != per_cam.shape[:2]:
            raise InputError(
                f"field: expected (B, N) distances for (B, N, 3) points, got {bvals.shape}"
            )
        vals = bvals.reshape(b, 5, -1).transpose(0, 1).reshape(-1)
    else:
        vals = field(allp)
    if vals.shape != (len(allp),):
        raise InputError(f"field: expected (N,) distances for (N, 3) points, got {vals.shape}")
    n = len(flat)
    sdf = vals[:n].reshape(b, r, samples)
    grad = (vals[n:].reshape(4, n, 1) * tet[:, None, :]).sum(0)
    normal = (grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-8)).reshape(b, r, samples, 3)
    sigma = _laplace_cdf(-sdf, beta) / beta
    delta = ((far - near) / samples).to(sigma.dtype)[..., None].expand_as(sigma)
    tau = sigma * delta
    alpha = 1 - torch.exp(-tau)
    trans = torch.exp(-torch.cumsum(tau, -1) + tau)  # exclusive cumulative sum
    w = trans * alpha  # (B, R, S)
    light = (-d).to(w.dtype)  # a headlight
    lambert = ambient + (1 - ambient) * (normal * light[:, :, None, :]).sum(-1).clamp_min(0)
    opacity = w.sum(-1)
    depth = (w * ts).sum(-1)
    nrm = (w[..., None] * normal).sum(-2)
    shade = (w * lambert).sum(-1)

    def img(x: Tensor) -> Tensor:
        return x.reshape(b, res, res)

    return Render(
        img(opacity),
        img(depth),
        nrm.reshape(b, res, res, 3).permute(0, 3, 1, 2),
        img(shade),
    )


def _field_dtype(field: Field) -> torch.dtype:
    dt = getattr(field, "dtype", None)
    if isinstance(dt, torch.dtype):
        return dt
    if isinstance(field, nn.Module):
        for p in field.parameters():
            return p.dtype
    return torch.float32


class GridSDF(nn.Module):
    """A dense ``(R, R, R)`` SDF grid on ``[-BOUND, BOUND]^3`` (indexed x, y, z like
    :func:`~polyfold.shape.msdf.volume_points`), trilinear inside, plus the distance to the cube
    outside it. ``values`` is a parameter (trainable)."""

    def __init__(self, values: Tensor) -> None:
        super().__init__()
        if values.ndim != 3 or len(set(values.shape)) != 1 or values.shape[0] < 2:
            raise InputError(f"values: expected an (R, R, R) grid, got {tuple(values.shape)}")
        self.values = nn.Parameter(values.clone())

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def res(self) -> int:
        return int(self.values.shape[0])

    def forward(self, p: Tensor) -> Tensor:
        return grid_sdf(self.values, p)


class GridBatch:
    """``G`` dense SDF grids ``values (G, R, R, R)`` (as :class:`GridSDF`, differentiable in
    ``values``) rendered together: camera ``b`` of a :func:`render` call sees grid
    ``b // views``, so the cameras are grid-major (``views`` per grid). A batched field: one
    ``grid_sample`` over all grids."""

    batched = True

    def __init__(self, values: Tensor, views: int = 1) -> None:
        if values.ndim != 4 or len(set(values.shape[1:])) != 1 or values.shape[1] < 2:
            raise InputError(f"values: expected (G, R, R, R) grids, got {tuple(values.shape)}")
        self.values, self.views = values, check_int("views", views, 1)
        self.dtype = values.dtype

    def __call__(self, p: Tensor) -> Tensor:
        n_g = len(self.values)
        if p.ndim != 3 or p.shape[0] != n_g * self.views:
            raise InputError(
                f"GridBatch: expected ({n_g * self.views}, N, 3) points ({n_g} grids x "
                f"{self.views} views), got {tuple(p.shape)}"
            )
        q = p.to(self.values.dtype).clamp(-BOUND, BOUND)
        g = (q.flip(-1) / BOUND).reshape(n_g, -1, 1, 1, 3)  # grid_sample wants (z, y, x)
        v = F.grid_sample(self.values[:, None], g, align_corners=True, padding_mode="border")
        return v.reshape(p.shape[:2]) + (p.to(q.dtype) - q).norm(dim=-1)


class MSDFBatch:
    """``G`` M-SDFs as batched tensors, ``centres (G, n, 3)``, ``scales (G, n)``, ``values (G,
    n, k, k, k)`` (each shape as :func:`msdf_field`: the blend of its grids, :data:`FAR` where
    none covers a point; differentiable in all three), rendered together: camera ``b`` of a
    :func:`render` call sees shape ``b // views`` (grid-major cameras). Only (point, grid) pairs
    with the point inside the grid's cube are interpolated (core's ``local_grid_blend``, as
    :func:`~polyfold.shape.msdf.evaluate_sparse`)."""

    batched = True

    def __init__(self, centres: Tensor, scales: Tensor, values: Tensor, views: int = 1) -> None:
        g, n = centres.shape[:2] if centres.ndim == 3 else (0, 0)
        k = values.shape[-1] if values.ndim == 5 else 0
        if (
            centres.shape != (g, n, 3)
            or scales.shape != (g, n)
            or values.shape != (g, n, k, k, k)
            or min(g, n) < 1
            or k < 2
        ):
            raise InputError(
                "MSDFBatch: expected centres (G, n, 3), scales (G, n), values (G, n, k, k, k), "
                f"got {tuple(centres.shape)}, {tuple(scales.shape)}, {tuple(values.shape)}"
            )
        self.centres, self.scales, self.values = centres, scales, values
        self.views = check_int("views", views, 1)
        self.dtype = values.dtype

    def __call__(self, p: Tensor) -> Tensor:
        g, n = self.scales.shape
        if p.ndim != 3 or p.shape[0] != g * self.views:
            raise InputError(
                f"MSDFBatch: expected ({g * self.views}, N, 3) points ({g} shapes x "
                f"{self.views} views), got {tuple(p.shape)}"
            )
        pts = p.to(self.dtype).reshape(g, -1, 3)
        m = pts.shape[1]
        c, s = self.centres.detach(), self.scales.detach()
        inside = (torch.cdist(pts.detach(), c, p=float("inf")) < s[:, None]).nonzero()
        point = inside[:, 0] * m + inside[:, 1]
        grid = inside[:, 0] * n + inside[:, 2]
        k = self.values.shape[-1]
        w, v = local_grid_blend(
            self.centres.reshape(-1, 3),
            self.scales.reshape(-1),
            self.values.reshape(-1, k, k, k),
            pts.reshape(-1, 3)[point],
            grid,
        )
        zero = torch.zeros(g * m, dtype=w.dtype, device=w.device)
        num, den = zero.index_add(0, point, w * v), zero.index_add(0, point, w)
        f = torch.where(den > 0, num / den.clamp_min(1e-30), torch.full_like(num, FAR))
        return f.reshape(p.shape[:2])


def grid_sdf(values: Tensor, p: Tensor) -> Tensor:
    """A dense ``(R, R, R)`` SDF grid (as :class:`GridSDF`, differentiable in ``values``) at
    the points ``p`` ``(N, 3)``."""
    q = p.to(values.dtype).clamp(-BOUND, BOUND)
    g = (q.flip(-1) / BOUND).reshape(1, -1, 1, 1, 3)  # grid_sample wants (z, y, x) order
    v = F.grid_sample(values[None, None], g, align_corners=True, padding_mode="border")
    return v.reshape(-1) + (p.to(q.dtype) - q).norm(dim=-1)


def sphere_grid(
    res: int = 32,
    radius: float = 0.3,
    dtype: torch.dtype = torch.float32,
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> GridSDF:
    """A :class:`GridSDF` of a sphere (the distillations' initial shape)."""
    from polyfold.shape.msdf import volume_points

    check_int("res", res, 2)
    pts = volume_points(res, dtype=torch.float64) - torch.tensor(centre, dtype=torch.float64)
    return GridSDF((pts.norm(dim=-1) - radius).reshape(res, res, res).to(dtype))


class MLPSDF(nn.Module):
    """A small SDF MLP: ``|p| - radius + mlp(fourier(p))`` (the last layer starts at zero, so it
    starts as a sphere)."""

    def __init__(
        self, width: int = 64, depth: int = 3, frequencies: int = 4, radius: float = 0.3
    ) -> None:
        super().__init__()
        check_int("width", width, 1)
        check_int("depth", depth, 1)
        self.register_buffer("freqs", 2.0 ** torch.arange(check_int("frequencies", frequencies, 0)))
        self.radius = float(radius)
        dims = [3 + 6 * frequencies] + [width] * depth
        layers: list[nn.Module] = []
        for a, o in itertools.pairwise(dims):
            layers += [nn.Linear(a, o), nn.Softplus(beta=10)]
        last = nn.Linear(dims[-1], 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, p: Tensor) -> Tensor:
        x = p.float()
        ang = (x[:, :, None] * self.freqs * math.pi).reshape(len(x), -1)
        feats = torch.cat([x, ang.sin(), ang.cos()], -1)
        return x.norm(dim=-1) - self.radius + self.net(feats)[:, 0]


def msdf_field(m: MSDF) -> Field:
    """An M-SDF as a renderer field (points no grid covers read as far outside)."""

    def f(p: Tensor) -> Tensor:
        return evaluate(m, p.to(m.centres.dtype))[0]

    f.dtype = m.centres.dtype  # type: ignore[attr-defined]
    return f
