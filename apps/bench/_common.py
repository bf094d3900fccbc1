"""What every benchmark script shares: arguments, timing, the stdout table and the JSON file."""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def parse_args(
    description: str, argv: Sequence[str] | None = None, switches: dict[str, str] | None = None
) -> argparse.Namespace:
    """The two flags every benchmark takes, ``--quick`` and ``--out FILE``, plus a benchmark's
    own on/off ``switches`` (``{"--flag": "help"}``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, a few seconds to a minute"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    for flag, text in (switches or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    return parser.parse_args(argv)


def time_call(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds (CUDA is synchronised around each call)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned text table (floats to 4 significant digits)."""
    if not rows:
        print("(no rows)")
        return
    cols = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def environment() -> dict[str, Any]:
    """Where a result was measured."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
    }


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(
    path: Path | None, rows: Sequence[dict[str, Any]], summary: dict[str, Any], **meta: Any
) -> None:
    """Write ``{"rows", "summary", "environment", ...meta}`` to ``path`` when one was given; a
    non-finite float (a metric not computed or not defined) is written as ``null``."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"rows": list(rows), "summary": summary, "environment": environment(), **meta}
    text = json.dumps(_finite_or_none(payload), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {path}")
