"""Stick-figure previews: an animated SVG (no dependencies) or an animated GIF (matplotlib),
several motions side by side, each with its caption."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError
from polyfold.core.outputs import write_text
from polyfold.motion.skeleton import HUMANOID, Skeleton

__all__ = ["project", "svg_text", "write_gif", "write_svg"]

_PANEL = 240  # SVG pixels per panel
_COLOURS = {"left": "#1f77b4", "right": "#d62728", "mid": "#333333"}


def _colour(name: str) -> str:
    side = "left" if name.startswith("left_") else "right" if name.startswith("right_") else "mid"
    return _COLOURS[side]


def project(joints: np.ndarray, azimuth_deg: float = 30.0) -> np.ndarray:
    """Screen coordinates ``(T, J, 2)`` (right, up) of y-up joints seen from a camera turned
    ``azimuth_deg`` about the vertical from the +z side (the character's right at rest)."""
    a = np.radians(azimuth_deg)
    x = joints[..., 0] * np.cos(a) - joints[..., 2] * np.sin(a)
    return np.stack([x, joints[..., 1]], axis=-1)


def _check(motions: Sequence[np.ndarray], captions: Sequence[str], sk: Skeleton) -> None:
    if not motions or len(motions) != len(captions):
        raise InputError("render: expected one caption per motion and at least one motion")
    for m in motions:
        if m.ndim != 3 or m.shape[1:] != (sk.num_joints, 3) or m.shape[0] < 1:
            raise InputError(f"render: expected joints (T, {sk.num_joints}, 3), got {m.shape}")


def _layout(motions: Sequence[np.ndarray]) -> tuple[list[np.ndarray], float, float, float]:
    """Each motion projected and centred on its mean ground position; a shared scale."""
    out = []
    for m in motions:
        p = project(m)
        p[..., 0] -= p[..., 0].mean()
        out.append(p)
    span = max(float(np.ptp(p[..., 0])) for p in out)
    height = max(float(p[..., 1].max()) for p in out)
    low = min(0.0, min(float(p[..., 1].min()) for p in out))
    return out, max(span, 1.0) + 0.4, height - low + 0.3, low


def write_svg(
    path: str | Path,
    motions: Sequence[np.ndarray],
    captions: Sequence[str],
    fps: float = 20.0,
    skeleton: Skeleton = HUMANOID,
) -> Path:
    """Write :func:`svg_text` to ``path`` atomically."""
    return write_text(path, svg_text(motions, captions, fps, skeleton))


def svg_text(
    motions: Sequence[np.ndarray],
    captions: Sequence[str],
    fps: float = 20.0,
    skeleton: Skeleton = HUMANOID,
) -> str:
    """An animated (SMIL) SVG with one stick figure per motion ``(T, J, 3)``, looping; it can
    be inlined in an HTML report."""
    _check(motions, captions, skeleton)
    proj, width_m, height_m, low = _layout(motions)
    scale = _PANEL / max(width_m, height_m)
    h = _PANEL + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_PANEL * len(proj)}" height="{h}" '
        f'viewBox="0 0 {_PANEL * len(proj)} {h}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for k, (p, cap) in enumerate(zip(proj, captions, strict=True)):
        ox = _PANEL * k + _PANEL / 2
        sx = ox + p[..., 0] * scale
        sy = _PANEL - 10 - (p[..., 1] - low) * scale
        dur = f"{max(p.shape[0], 2) / fps:.3f}s"
        ground = _PANEL - 10 + low * scale
        parts.append(
            f'<line x1="{_PANEL * k}" x2="{_PANEL * (k + 1)}" y1="{ground:.1f}" '
            f'y2="{ground:.1f}" stroke="#bbb"/>'
        )
        text = cap.replace("&", "&amp;").replace("<", "&lt;")
        parts.append(f'<text x="{ox:.0f}" y="{h - 8}" text-anchor="middle">{text}</text>')
        for j, par in enumerate(skeleton.parents):
            if par < 0:
                continue
            attrs = {"x1": sx[:, par], "y1": sy[:, par], "x2": sx[:, j], "y2": sy[:, j]}
            start = " ".join(f'{a}="{v[0]:.1f}"' for a, v in attrs.items())
            line = [f'<line {start} stroke="{_colour(skeleton.names[j])}" stroke-width="3" '
                    'stroke-linecap="round">']  # fmt: skip
            for a, v in attrs.items():
                vals = ";".join(f"{x:.1f}" for x in v)
                line.append(
                    f'<animate attributeName="{a}" values="{vals}" dur="{dur}" '
                    'repeatCount="indefinite" calcMode="linear"/>'
                )
            parts.append("".join(line) + "</line>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_gif(
    path: str | Path,
    motions: Sequence[np.ndarray],
    captions: Sequence[str],
    fps: float = 20.0,
    skeleton: Skeleton = HUMANOID,
) -> Path:
    """An animated GIF (matplotlib + Pillow) with one stick figure per motion."""
    _check(motions, captions, skeleton)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    proj, width_m, height_m, low = _layout(motions)
    fig, axes = plt.subplots(1, len(proj), figsize=(2.6 * len(proj), 2.9), squeeze=False)
    lines = []
    for ax, p, cap in zip(axes[0], proj, captions, strict=True):
        ax.set_xlim(-width_m / 2, width_m / 2)
        ax.set_ylim(low - 0.1, low + height_m)
        ax.set_aspect("equal")
        ax.axhline(0.0, color="#bbb", lw=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(cap if len(cap) < 40 else cap[:37] + "...", fontsize=8)
        bones = [
            ax.plot([], [], color=_colour(skeleton.names[j]), lw=2.5)[0]
            for j, par in enumerate(skeleton.parents)
            if par >= 0
        ]
        lines.append((p, bones))
    frames = max(p.shape[0] for p in proj)

    def draw(t: int) -> list:
        out = []
        for p, bones in lines:
            f = p[min(t, p.shape[0] - 1)]
            pairs = [(j, par) for j, par in enumerate(skeleton.parents) if par >= 0]
            for line, (j, par) in zip(bones, pairs, strict=True):
                line.set_data([f[par, 0], f[j, 0]], [f[par, 1], f[j, 1]])
                out.append(line)
        return out

    anim = FuncAnimation(fig, draw, frames=frames, blit=False)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".gif", dir=path.parent)
    os.close(fd)
    try:
        anim.save(tmp, writer=PillowWriter(fps=max(1, round(fps))))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
