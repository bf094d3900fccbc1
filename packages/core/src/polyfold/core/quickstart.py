"""The quickstart convention: every polyfold package runs its main job on embedded data.

A package registers a function in the entry-point group ``polyfold.quickstart``::

    [project.entry-points."polyfold.quickstart"]
    tabular = "polyfold.tabular.quickstart:quickstart"

with the signature ``quickstart(out: Path, *, quiet: bool = False) -> Path``: it writes its
outputs under ``out`` (an existing, package-private folder) and returns the path of its HTML
report. ``polyfold quickstart`` runs every registered function through :func:`run_quickstarts`,
each in its own folder; a failure is recorded and the others still run. :func:`write_index`
links every report from ``index.html`` and records the outcome in ``summary.json``.
"""

from __future__ import annotations

import html
import importlib.metadata as metadata
import json
import math
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from polyfold.core import samplers as samplers_
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.metrics import sliced_wasserstein
from polyfold.core.paths import VPCosine
from polyfold.core.report import Report
from polyfold.core.system import system_info
from polyfold.core.testing import GaussianMixture

__all__ = [
    "ENTRY_POINT_GROUP",
    "Outcome",
    "QuickstartFn",
    "discover",
    "prepare_out_dir",
    "quickstart",
    "quickstart_run",
    "run_quickstarts",
    "write_index",
]

ENTRY_POINT_GROUP = "polyfold.quickstart"
SUMMARY_FILE = "summary.json"
_SUMMARY_TOOL = "polyfold quickstart"


class QuickstartFn(Protocol):
    def __call__(self, out: Path, *, quiet: bool = False) -> Path: ...


@dataclass(frozen=True)
class Outcome:
    """How one package's quickstart ended."""

    name: str
    ok: bool
    seconds: float
    report: str | None  # relative to the quickstart root
    error: str | None


def discover() -> dict[str, Callable[[], QuickstartFn]]:
    """Registered quickstarts by package name, each a loader (nothing is imported yet)."""
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep.load for ep in sorted(eps, key=lambda ep: ep.name)}


def prepare_out_dir(out: Path) -> None:
    """Create ``out``; refuse a file, or a non-empty folder that no quickstart wrote."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_ours(out / SUMMARY_FILE):
        raise InputError(
            f"--out {out}: folder is not empty and holds no earlier quickstart "
            f"({SUMMARY_FILE} missing); choose an empty or new folder so nothing is overwritten"
        )
    out.mkdir(parents=True, exist_ok=True)


@contextmanager
def quickstart_run(
    name: str, out: Path, *, quiet: bool = False, marker: str
) -> Iterator[Callable[[str], None]]:
    """The frame of a package's quickstart: ``out`` created (a file, or a non-empty folder
    without the package's ``marker`` file from an earlier run, is refused so nothing a user wrote
    is overwritten), one torch thread for the duration, and an ``echo(msg)`` printing
    ``[name] msg`` unless ``quiet``."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise InputError(
            f"--out {out}: folder is not empty and holds no earlier {name} quickstart "
            f"({marker} missing); choose an empty or new folder so nothing is overwritten"
        )
    out.mkdir(parents=True, exist_ok=True)

    def echo(msg: str) -> None:
        if not quiet:
            print(f"[{name}] {msg}", flush=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield echo
    finally:
        torch.set_num_threads(threads)


def _is_ours(summary: Path) -> bool:
    try:
        return bool(json.loads(summary.read_text(encoding="utf-8")).get("tool") == _SUMMARY_TOOL)
    except (OSError, ValueError, AttributeError):
        return False


def run_quickstarts(
    out: Path,
    loaders: Mapping[str, Callable[[], QuickstartFn]],
    *,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
) -> list[Outcome]:
    """Run each quickstart in ``out/<name>/``; a failing one is recorded, the rest still run.

    Each quickstart gets an absolute folder; a relative report path it returns is taken relative
    to that folder.
    """
    prepare_out_dir(out)
    out = out.resolve()
    outcomes = []
    for name, load in loaders.items():
        pkg_out = out / name
        pkg_out.mkdir(parents=True, exist_ok=True)
        if not quiet:
            echo(f"[{name}] running quickstart -> {pkg_out}")
        start = time.perf_counter()
        try:
            report = Path(load()(pkg_out, quiet=quiet))
            if not report.is_absolute():
                report = pkg_out / report
            if not report.is_file():
                raise RuntimeError(f"quickstart returned {report}, which is not a file")
            rel = report.resolve().relative_to(out).as_posix()
            outcome = Outcome(name, True, time.perf_counter() - start, rel, None)
        except Exception as err:  # one package's failure must not stop the others
            (pkg_out / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            message = f"{type(err).__name__}: {err}"
            outcome = Outcome(name, False, time.perf_counter() - start, None, message)
        outcomes.append(outcome)
        status = "ok" if outcome.ok else f"FAILED ({outcome.error})"
        echo(f"[{name}] {status} in {outcome.seconds:.1f} s")
    write_index(out, outcomes)
    return outcomes


def write_index(out: Path, outcomes: list[Outcome]) -> Path:
    """Write ``index.html`` linking every report, and ``summary.json``."""
    rows = []
    for o in outcomes:
        if o.ok and o.report:
            link = f'<a href="{html.escape(o.report)}">{html.escape(o.report)}</a>'
            status = '<span class="ok">ok</span>'
        else:
            link = f'<a href="{html.escape(o.name)}/error.txt">{html.escape(o.name)}/error.txt</a>'
            status = f'<span class="failed">failed: {html.escape(o.error or "")}</span>'
        rows.append(
            f"<tr><td>{html.escape(o.name)}</td><td>{status}</td>"
            f'<td class="num">{o.seconds:.1f}</td><td>{link}</td></tr>'
        )
    failed = sum(not o.ok for o in outcomes)
    page = Report("polyfold quickstart")
    page.paragraph(f"{len(outcomes)} package(s) run, {failed} failed.")
    page.raw(
        "<table><thead><tr><th>package</th><th>status</th><th>seconds</th><th>report</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    index = page.write(out / "index.html")
    summary: dict[str, Any] = {
        "tool": _SUMMARY_TOOL,
        "packages": [asdict(o) for o in outcomes],
        "failed": failed,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return index


def _sampler_demo(report: Report, n: int = 4000) -> list[dict[str, Any]]:
    """Sample an 8-mode ring mixture with its exact denoiser: distance to the truth per NFE."""
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    gmm = GaussianMixture(4.0 * torch.stack([angles.cos(), angles.sin()], dim=1), stds=0.4)
    path = VPCosine()
    truth = gmm.sample(n, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    noise = path.prior_sample((n, 2), generator=torch.Generator().manual_seed(2))
    samplers: dict[str, Callable[..., samplers_.SampleResult]] = {
        "DDIM": samplers_.ddim,
        "DPM-Solver++(2M)": samplers_.dpm_solver_pp,
        "UniPC-bh2": samplers_.unipc,
    }
    rows: list[dict[str, Any]] = []
    shown = {"exact samples": truth}
    for name, sampler in samplers.items():
        for steps in (5, 10, 20):
            denoiser = as_denoiser(gmm.model(path, "eps"), path, prediction="eps")
            grid = samplers_.log_snr_grid(path, steps, append_zero=True)
            start = time.perf_counter()
            result = sampler(denoiser, path, noise.clone(), grid)
            seconds = time.perf_counter() - start
            assert isinstance(result.x, torch.Tensor)
            sw2 = sliced_wasserstein(result.x, truth)
            rows.append({"sampler": name, "nfe": result.nfe, "sw2": sw2, "seconds": seconds})
            if steps == 10 and name != "UniPC-bh2":
                shown[f"{name}, {result.nfe} NFE"] = result.x
    floors = [
        sliced_wasserstein(gmm.sample(n, generator=torch.Generator().manual_seed(s)), truth)
        for s in range(3, 8)
    ]
    report.heading("Samplers on an 8-mode Gaussian mixture")
    report.paragraph(
        f"{n} samples per run from the same initial noise, VP cosine path, the mixture's exact "
        "eps-prediction as the model, a grid uniform in log-SNR. sw2: sliced Wasserstein-2 "
        f"distance to {n} exact samples; five other exact samples of this size are "
        f"{min(floors):.3f} to {max(floors):.3f} from them (the floor of this estimate)."
    )
    report.table(
        ["sampler", "NFE", "sw2", "seconds"],
        [(r["sampler"], r["nfe"], r["sw2"], r["seconds"]) for r in rows],
    )
    for name, x in shown.items():
        report.scatter(name, {name: [(float(a), float(b)) for a, b in x[:1000].tolist()]})
    return rows


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """polyfold-core's quickstart: the environment, and the core samplers on an exact model."""
    info = system_info()
    (out / "environment.json").write_text(
        json.dumps(info.as_dict(), indent=2) + "\n", encoding="utf-8"
    )
    report = Report("polyfold-core quickstart")
    report.heading("Environment")
    report.table(
        ["item", "value"],
        [
            ("polyfold", info.polyfold_version),
            ("python", info.python),
            ("platform", info.platform),
            ("torch", info.torch),
            ("devices", "; ".join(info.devices)),
            ("triton", f"{info.triton} (usable: {'yes' if info.triton_usable else 'no'})"),
            ("packages", ", ".join(f"{p.name} {p.version}" for p in info.packages)),
        ],
    )
    report.link("environment.json", "environment.json (machine-readable)")
    rows = _sampler_demo(report)
    (out / "samplers.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n", "utf-8")
    return report.write(out / "report.html")
