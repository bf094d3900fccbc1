"""Meshes: reading a user's files and folders, pybullet_data's named objects, normalisation to
the unit cube, signed distances and surface samples.

Every loaded mesh is centred and scaled so that its bounding box's longest side is 1 (it lies in
``[-0.5, 0.5]^3``, the frame of :mod:`polyfold.shape.procshapes`). Signed distances use
point-cloud-utils' fast winding numbers, so meshes with small holes still get a sign.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError, reading

if TYPE_CHECKING:
    import trimesh

__all__ = [
    "MESH_SUFFIXES",
    "PYBULLET_MESHES",
    "Mesh",
    "load_folder",
    "load_mesh",
    "mesh_sdf",
    "pybullet_mesh",
    "pybullet_random_object",
    "sample_surface",
]

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")

#: name -> file under pybullet_data (single objects, see data_cards/pybullet-meshes.md)
PYBULLET_MESHES: dict[str, str] = {
    "bunny": "bunny.obj",
    "duck": "duck.obj",
    "teddy": "teddy2_VHACD_CHs.obj",
    "mug": "objects/mug.obj",
    "soccerball": "soccerball.obj",
    "sphere": "sphere_smooth.obj",
    "torus": "torus/torus_textured.obj",
    "lego": "lego/lego.obj",
    "jenga": "jenga/jenga.obj",
    "domino": "domino/domino.obj",
}


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in the unit cube: ``vertices (V, 3)`` float64, ``faces (F, 3)`` int64,
    its source name, whether it is watertight and its class (the folder name, or ``""``)."""

    vertices: np.ndarray
    faces: np.ndarray
    name: str
    watertight: bool
    cls: str = ""
    #: which faces border the outside (None: all). A watertight mesh of several closed bodies
    #: (a convex decomposition: pybullet's teddy is 15 hulls, 46 % of whose area lies on the cut
    #: planes between them) also has faces inside the solid, which are not its surface.
    outer: np.ndarray | None = None

    @property
    def surface(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vertices, faces)`` of the solid's surface: the faces that border the outside."""
        return self.vertices, self.faces if self.outer is None else self.faces[self.outer]

    def sdf(self, p: Tensor) -> Tensor:
        """Signed distances of points ``p (N, 3)`` to :attr:`surface` (negative inside; the sign
        from the whole mesh's winding numbers)."""
        d = mesh_sdf(self.vertices, self.faces, p)
        if self.outer is None:
            return d
        return torch.copysign(mesh_sdf(*self.surface, p).abs(), d)


def normalise(vertices: np.ndarray) -> np.ndarray:
    """Centre the bounding box at 0 and scale its longest side to 1."""
    lo, hi = vertices.min(0), vertices.max(0)
    return (vertices - (lo + hi) / 2) / float((hi - lo).max())


def _check_arrays(v: np.ndarray, f: np.ndarray, where: str) -> None:
    if len(v) == 0 or len(f) == 0:
        raise InputError(f"{where}: the mesh is empty (no vertices or no faces)")
    if not np.isfinite(v).all():
        raise InputError(f"{where}: the mesh has NaN or infinite vertex coordinates")
    if np.ptp(v, axis=0).max() <= 0:
        raise InputError(f"{where}: the mesh is degenerate (all vertices at one point)")


def from_arrays(
    vertices: np.ndarray, faces: np.ndarray, name: str = "mesh", *, cls: str = ""
) -> Mesh:
    """A :class:`Mesh` from raw arrays (checked, merged, normalised to the unit cube)."""
    import trimesh

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[-1] != 3 or f.ndim != 2 or f.shape[-1] != 3:
        raise InputError(f"{name}: expected vertices (V, 3) and triangle faces (F, 3)")
    _check_arrays(v, f, name)
    if f.min() < 0 or f.max() >= len(v):
        raise InputError(f"{name}: face indices outside 0..{len(v) - 1}")
    m = trimesh.Trimesh(v, f, process=True)
    m.merge_vertices()
    m.update_faces(m.nondegenerate_faces())
    _check_arrays(np.asarray(m.vertices), np.asarray(m.faces), name)
    v, f = normalise(np.asarray(m.vertices, dtype=np.float64)), np.asarray(m.faces, dtype=np.int64)
    outer = None
    if m.is_watertight and m.body_count > 1:
        outer = _outer_faces(trimesh.Trimesh(v, f, process=False))
    return Mesh(v, f, name, bool(m.is_watertight), cls, outer)


def _outer_faces(mesh: trimesh.Trimesh, offset: float = 1e-3) -> np.ndarray:
    """Faces whose centre, moved ``offset`` along the face normal, lies outside the mesh
    (winding-number sign): those of a multi-body solid that are not inside it."""
    probe = torch.from_numpy(mesh.triangles_center + offset * mesh.face_normals)
    outer = mesh_sdf(mesh.vertices, mesh.faces, probe).numpy() > 0
    if not outer.any():
        raise InputError("mesh: none of its faces borders the outside (inverted faces?)")
    return outer


def load_mesh(
    path: str | os.PathLike[str], *, cls: str = "", require_watertight: bool = False
) -> Mesh:
    """Read one mesh file (.obj/.ply/.stl/.off/.glb; scenes are merged into one mesh)."""
    import trimesh

    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"{path}: expected a mesh file ({', '.join(MESH_SUFFIXES)})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with reading(path, "mesh"):
        try:
            loaded = trimesh.load(path, force="mesh")
        except Exception as err:  # trimesh raises many kinds on a broken file
            raise InputError(f"{path}: not a readable mesh ({type(err).__name__}: {err})") from None
    v = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    f = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64)
    if f.ndim != 2 or len(f) == 0:
        raise InputError(f"{path}: the file holds no triangles (empty mesh or a point cloud)")
    mesh = from_arrays(v, f, str(path), cls=cls)
    if require_watertight and not mesh.watertight:
        raise InputError(f"{path}: the mesh is not watertight (it has holes or open edges)")
    return mesh


def load_folder(folder: str | os.PathLike[str], *, require_watertight: bool = False) -> list[Mesh]:
    """Every mesh file under ``folder``; a file inside a sub-folder takes its class from that
    sub-folder's name (ShapeNet-style ``folder/<class>/.../*.obj``)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: expected a folder of mesh files")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{root}: no mesh files ({', '.join(MESH_SUFFIXES)}) in it")
    out = []
    for p in files:
        rel = p.relative_to(root).parts
        out.append(
            load_mesh(p, cls=rel[0] if len(rel) > 1 else "", require_watertight=require_watertight)
        )
    return out


def pybullet_mesh(name: str) -> Mesh:
    """One of pybullet_data's named objects (:data:`PYBULLET_MESHES`; needs the pybullet extra)."""
    from polyfold.core.extras import require_extra

    if name not in PYBULLET_MESHES:
        raise InputError(f"mesh: expected one of {', '.join(PYBULLET_MESHES)}, got {name!r}")
    data = require_extra("pybullet_data", "shape", "pybullet", needed_for="pybullet's meshes")
    return load_mesh(Path(data.getDataPath()) / PYBULLET_MESHES[name], cls=name)


def pybullet_random_object(index: int) -> Mesh:
    """The ``index``-th (0-999) of pybullet_data's random_urdfs objects (its .obj mesh; needs
    the pybullet extra)."""
    from polyfold.core.errors import check_int
    from polyfold.core.extras import require_extra

    i = check_int("index", index, 0)
    data = require_extra("pybullet_data", "shape", "pybullet", needed_for="pybullet's meshes")
    path = Path(data.getDataPath()) / "random_urdfs" / f"{i:03d}" / f"{i:03d}.obj"
    if not path.is_file():
        raise InputError(f"index: no random_urdfs object {i} (expected 0-999)")
    return load_mesh(path, cls="random_urdf")


def mesh_sdf(vertices: np.ndarray, faces: np.ndarray, p: Tensor) -> Tensor:
    """Signed distances (fast winding numbers for the sign) of ``p (N, 3)``, as ``p``'s dtype."""
    import point_cloud_utils as pcu

    q = np.ascontiguousarray(p.detach().cpu().numpy().reshape(-1, 3), dtype=np.float64)
    n = len(q)
    if n < 2:  # point-cloud-utils returns a wrong scalar for a single query point
        q = np.concatenate([q, np.zeros((2 - n, 3))])
    v, f = np.ascontiguousarray(vertices), np.ascontiguousarray(faces)
    d, _, _ = pcu.signed_distance_to_mesh(q, v, f)
    return torch.from_numpy(np.asarray(d)[:n]).to(p)


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly on the surface (by area) and their face normals."""
    tri = vertices[faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if not np.isfinite(area).all() or area.sum() <= 0:
        raise InputError("mesh: it has no surface area to sample")
    r = np.random.default_rng(seed)
    idx = r.choice(len(faces), size=n, p=area / area.sum())
    u, v = r.random(n), r.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[idx]
    pts = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    nrm = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True).clip(1e-12)
    return pts, nrm
