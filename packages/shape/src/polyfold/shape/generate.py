"""Loading a flow model (a model file or the shipped one) and sampling M-SDFs and meshes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.shape.flow import ShapeFlow
from polyfold.shape.msdf import MSDF, evaluate_volume, to_mesh

__all__ = ["SHIPPED", "export_mesh", "load_flow", "msdf_mesh", "sample_msdfs"]

#: the shipped model files (weights/<name>.safetensors + .json), see its card in the README
SHIPPED = Path(__file__).parent / "weights" / "procshapes-flow"


def load_flow(path: str | os.PathLike[str] | None = None) -> tuple[ShapeFlow, dict[str, object]]:
    """A :class:`ShapeFlow` and its card from a model file (default: the shipped model)."""
    from polyfold.core.export import load_model

    loaded = load_model(SHIPPED if path is None else path)
    if not isinstance(loaded.model, ShapeFlow):
        raise InputError(f"--model {path}: not a polyfold-shape flow model")
    return loaded.model, loaded.card


def sample_msdfs(
    model: ShapeFlow,
    classes: list[str],
    *,
    seed: int = 0,
    sampler: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
) -> list[MSDF]:
    """One sampled M-SDF per entry of ``classes`` (same seed, same output)."""
    y = model.labels(classes)
    g = torch.Generator().manual_seed(seed)
    x = model.sample(y, generator=g, sampler=sampler, steps=steps, guidance=guidance)
    return [model.decode(xi[None], c)[0] for xi, c in zip(x, classes, strict=True)]


def msdf_mesh(m: MSDF, res: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """The mesh of an M-SDF: sparse volume evaluation at ``res^3``, then marching cubes."""
    return to_mesh(evaluate_volume(m, res))


def export_mesh(vertices: np.ndarray, faces: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a mesh (format from the suffix: .glb, .obj, .ply, .stl, .off) atomically."""
    import trimesh

    from polyfold.core.outputs import write_bytes

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("glb", "obj", "ply", "stl", "off"):
        raise InputError(f"--out {path}: expected a .glb, .obj, .ply, .stl or .off file")
    data = trimesh.Trimesh(vertices, faces, process=False).export(file_type=kind)
    if not isinstance(data, bytes | str):
        raise InputError(f"--out {path}: trimesh could not export a {kind} file")
    return write_bytes(path, data if isinstance(data, bytes) else data.encode())
