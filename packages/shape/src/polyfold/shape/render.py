"""Mesh renders for reports: a row of views of each mesh, as a PNG data URI (matplotlib, Agg)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

__all__ = ["render_views"]

VIEWS = ((20, -60), (20, 30), (70, -90))


def render_views(
    meshes: Sequence[tuple[np.ndarray, np.ndarray]],
    titles: Sequence[str],
    *,
    views: Sequence[tuple[float, float]] = VIEWS,
    max_faces: int = 20_000,
) -> str:
    """One row per mesh (y up), one column per ``(elevation, azimuth)`` view; a data URI.
    Meshes over ``max_faces`` faces are drawn with a random subset of them (keep them small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(meshes))
    fig = plt.figure(figsize=(2.4 * len(views), 2.4 * rows), dpi=80)
    for r, ((v, f), title) in enumerate(zip(meshes, titles, strict=True)):
        if len(f) > max_faces:
            f = f[np.random.default_rng(0).choice(len(f), max_faces, replace=False)]
        for c, (elev, azim) in enumerate(views):
            ax = fig.add_subplot(rows, len(views), r * len(views) + c + 1, projection="3d")
            if len(f):
                ax.plot_trisurf(
                    v[:, 0], v[:, 2], v[:, 1], triangles=f, color="#8fb3d9", linewidth=0
                )
            ax.view_init(elev, azim)
            for lim in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
                lim(-0.5, 0.5)
            ax.set_axis_off()
            if c == 0:
                ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
