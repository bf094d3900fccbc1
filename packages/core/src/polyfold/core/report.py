"""Small self-contained HTML reports, as every package's quickstart writes them.

A :class:`Report` collects headings, paragraphs, tables, images, preformatted text and small
inline SVG charts (scatter plots, line plots with shaded bands, overlaid histograms) and writes
one HTML file with no external assets (images are referenced by relative path, or carried inline
as data URIs: :func:`png_bytes`, :func:`data_uri`, :meth:`Report.media` for audio players).
"""

from __future__ import annotations

import base64
import html
import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["Report", "data_uri", "png_bytes"]


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of ``pixels``: ``uint8`` ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB), row 0 on top."""
    p = np.ascontiguousarray(pixels)
    if p.dtype != np.uint8 or p.ndim not in (2, 3) or (p.ndim == 3 and p.shape[2] != 3):
        raise ValueError(f"png_bytes: expected uint8 (H, W) or (H, W, 3), got {p.dtype} {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"png_bytes: empty image {p.shape}")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", p.shape[1], p.shape[0], 8, 0 if p.ndim == 2 else 2, 0, 0, 0)
    rows = b"".join(b"\x00" + row.tobytes() for row in p)  # filter type 0 on every row
    return b"".join(
        (b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(rows, 9)),
         chunk(b"IEND", b""))
    )  # fmt: skip


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...``: a file a report carries inline."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; }
.ok { color: #1a7f37; } .failed { color: #cf222e; }
"""


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_W, _H, _PAD, _LEFT = 360, 260, 28, 64


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    """Affine map (slope, offset) from [lo, hi] onto [a, b]; a degenerate range: the middle."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return 0.0, (a + b) / 2
    slope = (b - a) / (hi - lo)
    return slope, a - slope * lo


def _box(n_legend: int) -> tuple[float, float, float, float]:
    """The plot area ``(left, top, right, bottom)``: a left margin wide enough for axis labels
    such as ``-1.23e+04``, and the title and the legend each on their own lines above it."""
    return _LEFT, 24.0 + 13.0 * n_legend, _W - _PAD / 2, _H - _PAD


def _svg(title: str, body: str, legend: Sequence[str]) -> str:
    left, top, right, bottom = _box(len(legend))
    items = "".join(
        f'<text x="{right}" y="{30 + 13 * i}" text-anchor="end" font-size="11" '
        f'fill="{_COLOURS[i % len(_COLOURS)]}">{html.escape(name)}</text>'
        for i, name in enumerate(legend)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{html.escape(title)}">'
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        f'fill="none" stroke="#ccc"/>{body}{items}'
        f'<text x="4" y="14" font-size="12">{html.escape(title)}</text></svg>'
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


class Report:
    """An HTML report built section by section; text is escaped, links and images are relative."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> Report:
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str) -> Report:
        self._parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def preformatted(self, text: str) -> Report:
        self._parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def link(self, href: str, text: str) -> Report:
        self._parts.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')
        return self

    def image(self, src: str, caption: str = "") -> Report:
        alt = html.escape(caption)
        fig = f'<figure><img src="{html.escape(src)}" alt="{alt}">'
        if caption:
            fig += f"<figcaption>{alt}</figcaption>"
        self._parts.append(fig + "</figure>")
        return self

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Report:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def scatter(
        self, title: str, series: Mapping[str, Sequence[tuple[float, float]]], *, size: float = 1.5
    ) -> Report:
        """A 2-D scatter plot of named point sets, one colour each, on shared axes."""
        points = [p for pts in series.values() for p in pts]
        xs, ys = [p[0] for p in points] or [0.0], [p[1] for p in points] or [0.0]
        left, top, right, bottom = _box(len(series))
        ax, bx = _scale(min(xs), max(xs), left + 4, right - 4)
        ay, by = _scale(min(ys), max(ys), bottom - 4, top + 4)
        dots = "".join(
            f'<circle cx="{ax * x + bx:.1f}" cy="{ay * y + by:.1f}" r="{size}" '
            f'fill="{_COLOURS[i % len(_COLOURS)]}" fill-opacity="0.5"/>'
            for i, pts in enumerate(series.values())
            for x, y in pts
        )
        self._parts.append(_svg(title, dots, list(series)))
        return self

    def lines(
        self,
        title: str,
        series: Mapping[str, Sequence[tuple[float, float]]],
        *,
        bands: Mapping[str, Sequence[tuple[float, float, float]]] | None = None,
    ) -> Report:
        """Named lines of ``(x, y)`` points on shared axes; a non-finite ``y`` breaks its line.

        ``bands`` shades named ``(x, low, high)`` ranges (e.g. a forecast's 10%-90% quantiles)
        under the lines, coloured after the lines and listed after them in the legend.
        """
        bands = bands or {}
        pts = [p for line in series.values() for p in line if math.isfinite(p[1])]
        pts += [(x, y) for band in bands.values() for x, lo, hi in band for y in (lo, hi)]
        xs, ys = [p[0] for p in pts] or [0.0], [p[1] for p in pts] or [0.0]
        left, top, right, bottom = _box(len(series) + len(bands))
        ax, bx = _scale(min(xs), max(xs), left + 4, right - 4)
        ay, by = _scale(min(ys), max(ys), bottom - 4, top + 4)

        def xy(x: float, y: float) -> str:
            return f"{ax * x + bx:.1f},{ay * y + by:.1f}"

        body = []
        for i, band in enumerate(bands.values(), start=len(series)):
            outline = [xy(x, hi) for x, _, hi in band] + [xy(x, lo) for x, lo, _ in band[::-1]]
            body.append(
                f'<polygon points="{" ".join(outline)}" '
                f'fill="{_COLOURS[i % len(_COLOURS)]}" fill-opacity="0.25"/>'
            )
        for i, line in enumerate(series.values()):
            runs: list[list[str]] = [[]]
            for x, y in line:
                if math.isfinite(y):
                    runs[-1].append(xy(x, y))
                elif runs[-1]:
                    runs.append([])
            body += [
                f'<polyline points="{" ".join(run)}" fill="none" '
                f'stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="1.5"/>'
                for run in runs
                if run
            ]
        axis = (
            f'<text x="{left - 4}" y="{bottom}" font-size="10" text-anchor="end">'
            f"{min(ys):.3g}</text>"
            f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">'
            f"{max(ys):.3g}</text>"
        )
        self._parts.append(_svg(title, "".join(body) + axis, [*series, *bands]))
        return self

    def histogram(
        self, title: str, series: Mapping[str, Sequence[float]], bins: int = 20
    ) -> Report:
        """Overlaid density histograms of named samples on shared bins, one outline colour each."""
        values = [v for vals in series.values() for v in vals if math.isfinite(v)]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        width = (hi - lo) / bins if hi > lo else 1.0
        densities = []
        for vals in series.values():
            counts = [0] * bins
            finite = [v for v in vals if math.isfinite(v)]
            for v in finite:
                counts[min(int((v - lo) / width), bins - 1)] += 1
            densities.append([c / max(len(finite), 1) for c in counts])
        left, top, right, bottom = _box(len(series))
        ax, bx = _scale(0, bins, left, right)
        ay, by = _scale(0, max((max(d) for d in densities), default=1.0), bottom, top + 4)
        paths = []
        for i, dens in enumerate(densities):
            pts = [f"{bx:.1f},{by:.1f}"]
            for k, d in enumerate(dens):
                pts += [
                    f"{ax * k + bx:.1f},{ay * d + by:.1f}",
                    f"{ax * (k + 1) + bx:.1f},{ay * d + by:.1f}",
                ]
            pts.append(f"{ax * bins + bx:.1f},{by:.1f}")
            paths.append(
                f'<polyline points="{" ".join(pts)}" fill="none" '
                f'stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="1.5"/>'
            )
        axis = (
            f'<text x="{left}" y="{_H - 8}" font-size="10">{lo:.3g}</text>'
            f'<text x="{right}" y="{_H - 8}" font-size="10" text-anchor="end">{hi:.3g}</text>'
        )
        self._parts.append(_svg(title, "".join(paths) + axis, list(series)))
        return self

    def media(self, caption: str, *, wav: bytes | None = None, png: bytes | None = None) -> Report:
        """A captioned figure carrying an audio player (``wav`` file bytes) and/or an image
        (``png`` bytes) inline."""
        parts = [f"<figure><figcaption>{html.escape(caption)}</figcaption>"]
        if wav is not None:
            parts.append(f'<audio controls src="{data_uri(wav, "audio/wav")}"></audio><br>')
        if png is not None:
            parts.append(f'<img src="{data_uri(png, "image/png")}" alt="{html.escape(caption)}">')
        self._parts.append("".join(parts) + "</figure>")
        return self

    def raw(self, fragment: str) -> Report:
        """Append an HTML fragment the caller built and escaped itself."""
        self._parts.append(fragment)
        return self

    def render(self) -> str:
        title = html.escape(self.title)
        body = "\n".join(self._parts)
        return (
            f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_STYLE}</style></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path
