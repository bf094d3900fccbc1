"""Mosaic-SDF (Yariv et al.): a shape as n local grids of k^3 SDF values with centres and scales.

Grid ``i`` spans the cube ``c_i +- s_i``; its nodes sit at ``c_i + s_i * linspace(-1, 1, k)`` on
each axis (``values[i, a, b, c]`` at x-node a, y-node b, z-node c). The volumetric SDF blends the
trilinear interpolants ``I_i`` with the weights ``w_i(x) = relu(1 - ||x - c_i||_inf / s_i)``:

    F(x) = sum_i w_i(x) I_i(x) / sum_i w_i(x)      (where some grid covers x)

:func:`evaluate` is that formula at arbitrary points (every point against every grid: the dense
reference); :func:`evaluate_volume` fills a regular ``R^3`` volume SPARSELY, each grid touching
only the voxels inside its cube (a scatter-add over covered cells), and gives uncovered voxels the
sign of their region (connected to the volume's border: outside; otherwise the sign of the SDF on
the covered voxels around it). :func:`to_mesh` runs marching cubes on that volume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError, check_int, reading
from polyfold.core.ops import grid_blend_volume, local_grid_blend

__all__ = [
    "BOUND",
    "MSDF",
    "evaluate",
    "evaluate_sparse",
    "evaluate_volume",
    "evaluate_volume_dense",
    "load_msdf",
    "save_msdf",
    "to_mesh",
    "volume_points",
]

#: volumes and meshes live in [-BOUND, BOUND]^3 (shapes in the unit cube plus a margin)
BOUND = 0.55
#: the SDF value of voxels no grid covers (the sign is set per region)
FAR = 1.0


@dataclass
class MSDF:
    """``centres (n, 3)``, ``scales (n,)`` (half-widths) and ``values (n, k, k, k)``."""

    centres: Tensor
    scales: Tensor
    values: Tensor
    cls: str = ""

    def __post_init__(self) -> None:
        n = self.centres.shape[0]
        k = self.values.shape[-1] if self.values.ndim == 4 else 0
        if (
            self.centres.shape != (n, 3)
            or self.scales.shape != (n,)
            or self.values.shape != (n, k, k, k)
            or k < 2
        ):
            raise InputError(
                "msdf: expected centres (n, 3), scales (n,), values (n, k, k, k) with k >= 2, "
                f"got {tuple(self.centres.shape)}, {tuple(self.scales.shape)}, "
                f"{tuple(self.values.shape)}"
            )
        if not all(torch.isfinite(t).all() for t in (self.centres, self.scales, self.values)):
            raise InputError("msdf: centres, scales and values must be finite")
        if (self.scales <= 0).any():
            raise InputError("msdf: scales must be positive")

    @property
    def n(self) -> int:
        return int(self.centres.shape[0])

    @property
    def k(self) -> int:
        return int(self.values.shape[-1])

    def to(self, dtype: torch.dtype) -> MSDF:
        return MSDF(self.centres.to(dtype), self.scales.to(dtype), self.values.to(dtype), self.cls)


def _local(m: MSDF, x: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Blend weights and interpolants of grids ``grid (Q,)`` at points ``x (Q, 3)``."""
    return local_grid_blend(m.centres, m.scales, m.values, x, grid)


def evaluate(m: MSDF, x: Tensor, *, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """``(F(x), sum_i w_i(x))`` at points ``x (P, 3)``, every point against every grid (the dense
    reference, differentiable in the M-SDF's tensors). ``F`` is :data:`FAR` where no grid covers
    a point (weight sum 0)."""
    n = m.n
    fs, ws = [], []
    for xs in x.split(chunk):
        q = len(xs)
        grid = torch.arange(n, device=x.device).repeat(q)
        pts = xs.repeat_interleave(n, 0)
        w, v = _local(m, pts, grid)
        w, v = w.reshape(q, n), v.reshape(q, n)
        den = w.sum(-1)
        fs.append(torch.where(den > 0, (w * v).sum(-1) / den.clamp_min(1e-12), FAR))
        ws.append(den)
    return torch.cat(fs), torch.cat(ws)


def evaluate_sparse(m: MSDF, x: Tensor, *, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Same as :func:`evaluate`, but only (point, grid) pairs with the point inside the grid's
    cube are interpolated (found without autograd), so the cost follows the overlap, not n."""
    fs, ws = [], []
    c, s = m.centres.detach(), m.scales.detach()
    for xs in x.split(chunk):
        inside = ((xs.detach()[:, None, :] - c[None]).abs().amax(-1) < s[None]).nonzero()
        point, grid = inside[:, 0], inside[:, 1]
        w, v = _local(m, xs[point], grid)
        num = torch.zeros(len(xs), dtype=xs.dtype, device=xs.device).index_add(0, point, w * v)
        den = torch.zeros(len(xs), dtype=xs.dtype, device=xs.device).index_add(0, point, w)
        fs.append(torch.where(den > 0, num / den.clamp_min(1e-30), FAR))
        ws.append(den)
    return torch.cat(fs), torch.cat(ws)


def volume_points(res: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``res^3`` voxel centres of ``[-BOUND, BOUND]^3`` (x slowest), ``(res^3, 3)``."""
    g = torch.linspace(-BOUND, BOUND, res, dtype=dtype)
    return torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def _fill_uncovered(f: Tensor, den: Tensor, res: int) -> Tensor:
    """Give each region of uncovered voxels +FAR or -FAR: outside (+) where it reaches the
    volume's border, else the sign the blended SDF has on the covered voxels around it (a
    vase's cavity is enclosed by grids but outside the solid; a thick body's core is inside)."""
    from scipy import ndimage

    uncovered = (den <= 0).reshape(res, res, res).cpu().numpy()
    labels, count = ndimage.label(uncovered)
    if count == 0:
        return f.reshape(res, res, res).clone()
    # Each covered voxel next to an uncovered region votes with the sign of its SDF.
    near = ndimage.grey_dilation(labels, size=3) * ~uncovered
    shell = near > 0
    sign = np.sign(f.reshape(res, res, res).detach().cpu().numpy()[shell])
    votes = np.bincount(near[shell], weights=sign, minlength=count + 1)
    inside = votes < 0
    border = np.unique(
        np.concatenate(
            [labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(), labels[:, :, [0, -1]].ravel()]
        )
    )
    inside[border] = False
    inside[0] = False
    vol = f.reshape(res, res, res).clone()
    vol[torch.from_numpy(inside[labels]).to(vol.device)] = -FAR
    return vol


def evaluate_volume_dense(m: MSDF, res: int) -> Tensor:
    """The ``(res, res, res)`` volume by :func:`evaluate` on every voxel (the reference)."""
    check_int("res", res, 2)
    f, den = evaluate(m, volume_points(res, dtype=m.centres.dtype).to(m.centres.device))
    return _fill_uncovered(f, den, res)


def evaluate_volume(m: MSDF, res: int) -> Tensor:
    """The ``(res, res, res)`` volume, sparse: each grid visits only the voxels of its cube
    (:func:`polyfold.core.ops.grid_blend_volume`: a fused kernel on CUDA, a scatter elsewhere)."""
    check_int("res", res, 2)
    num, den = grid_blend_volume(m.centres, m.scales, m.values, res, BOUND)
    f = torch.where(den > 0, num / den.clamp_min(1e-30), torch.full_like(num, FAR))
    return _fill_uncovered(f, den, res)


def to_mesh(volume: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of a ``(R, R, R)`` volume on ``[-BOUND, BOUND]^3``: ``(vertices, faces)``."""
    from skimage.measure import marching_cubes

    vol = volume.detach().cpu().numpy().astype(np.float32)
    if not (vol.min() < 0 < vol.max()):
        raise InputError("msdf: the volume has no zero crossing (no surface to mesh)")
    res = vol.shape[0]
    h = 2 * BOUND / (res - 1)
    verts, faces, _, _ = marching_cubes(vol, 0.0, spacing=(h, h, h))
    # skimage orients faces for "inside = high values"; ours is inside = negative
    return verts - BOUND, faces[:, ::-1].astype(np.int64).copy()


def save_msdf(m: MSDF, path: str | os.PathLike[str]) -> Path:
    """Write ``m`` as a .msdf file (safetensors: centres, scales, values; class in metadata)."""
    from safetensors.torch import save

    from polyfold.core.outputs import write_bytes

    tensors = {
        "centres": m.centres.detach().float().contiguous().cpu(),
        "scales": m.scales.detach().float().contiguous().cpu(),
        "values": m.values.detach().float().contiguous().cpu(),
    }
    return write_bytes(Path(path), save(tensors, metadata={"format": "msdf", "cls": m.cls}))


def load_msdf(path: str | os.PathLike[str]) -> MSDF:
    """Read a .msdf file written by :func:`save_msdf`."""
    from safetensors import safe_open

    path = Path(path)
    with reading(path, "M-SDF file"):
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error type on a broken header
            raise InputError(f"{path}: not an M-SDF file ({err})") from None
    if meta.get("format") != "msdf" or set(tensors) != {"centres", "scales", "values"}:
        raise InputError(f"{path}: not an M-SDF file (expected centres, scales and values)")
    return MSDF(tensors["centres"], tensors["scales"], tensors["values"], meta.get("cls", ""))
