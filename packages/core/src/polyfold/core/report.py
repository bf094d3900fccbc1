"""Small self-contained HTML reports, as every package's quickstart writes them.

A :class:`Report` collects headings, paragraphs, tables, images and preformatted text and writes
one HTML file with no external assets (images are referenced by relative path).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["Report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; }
.ok { color: #1a7f37; } .failed { color: #cf222e; }
"""


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
