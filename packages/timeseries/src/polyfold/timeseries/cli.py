"""``polyfold-timeseries``: TSDiff forecasting (train, forecast, refine, evaluate), PaD-TS
generation, quickstart.

    polyfold-timeseries train --dataset airline --steps 2000 --out runs/tsdiff
    polyfold-timeseries forecast runs/tsdiff data.csv --out runs/forecast
    polyfold-timeseries refine runs/tsdiff data.csv --base snaive --out runs/refined
    polyfold-timeseries evaluate runs/tsdiff --dataset airline --windows 2
    polyfold-timeseries generate --dataset eustocks --steps 2000 --out runs/padts
    polyfold-timeseries quickstart --out runs/timeseries

Input series: a CSV (a timestamp column and one value column per series) or gluonts JSON lines
(``{"start", "target"}`` per line; pass ``--freq``). Also reachable as ``polyfold timeseries``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-timeseries", "TSDiff (predict, refine, synthesize) and PaD-TS generation on gluonts."
)

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _series(data: Path | None, dataset: str | None, freq: str | None) -> Any:
    from polyfold.timeseries.data import check_freq, load_dataset, read_series

    if (data is None) == (dataset is None):
        raise InputError("DATA / --dataset: give exactly one of a data file or --dataset NAME")
    if freq is not None:
        check_freq(freq)
    if dataset is not None:
        d = load_dataset(dataset)
        if freq is not None and check_freq(freq) != d.freq:
            raise InputError(f"--freq: dataset {dataset!r} has frequency {d.freq!r}, got {freq!r}")
        return d
    assert data is not None
    return read_series(data, freq, allow_nan=True)


def _load_model(model_dir: Path) -> Any:
    from polyfold.timeseries.tsdiff import TSDiff

    return TSDiff.load(model_dir)


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise InputError(f"{option}: expected an integer >= 1, got {value}")
    return value


def _write_forecasts(out: Path, data: Any, samples: list[np.ndarray], title: str) -> None:
    from polyfold.core.report import Report
    from polyfold.timeseries.plots import plot_forecast

    out.mkdir(parents=True, exist_ok=True)
    q_lines = ["item_id,step," + ",".join(f"q{q}" for q in QUANTILES) + ",mean"]
    s_lines = ["item_id,sample," + ",".join(f"h{i}" for i in range(samples[0].shape[1]))]
    report = Report(title)
    for item, y, s in zip(data.item_ids, data.values, samples, strict=True):
        qs = np.quantile(s, QUANTILES, axis=0)
        for k in range(s.shape[1]):
            q_lines.append(
                f"{item},{k}," + ",".join(f"{v:.6g}" for v in qs[:, k]) + f",{s[:, k].mean():.6g}"
            )
        for j, row in enumerate(s):
            s_lines.append(f"{item},{j}," + ",".join(f"{v:.6g}" for v in row))
        plot_forecast(report, str(item), y[-4 * s.shape[1] :], s)
    (out / "quantiles.csv").write_text("\n".join(q_lines) + "\n", encoding="utf-8")
    (out / "samples.csv").write_text("\n".join(s_lines) + "\n", encoding="utf-8")
    report.write(out / "report.html")


def _read_samples(path: Path, data: Any, horizon: int) -> list[np.ndarray]:
    """Base samples from a ``samples.csv`` as written by ``forecast``."""
    import pandas as pd

    if not path.is_file():
        raise InputError(f"--base {path}: file not found")
    df = pd.read_csv(path)
    cols = [f"h{i}" for i in range(horizon)]
    if "item_id" not in df.columns or any(c not in df.columns for c in cols):
        raise InputError(f"--base {path}: expected columns item_id, sample, h0..h{horizon - 1}")
    out = []
    for item in data.item_ids:
        rows = df[df["item_id"].astype(str) == str(item)]
        if rows.empty:
            raise InputError(f"--base {path}: no samples for item {item!r}")
        out.append(rows[cols].to_numpy(dtype=np.float32))
    return out


@app.command()
def train(
    data: Annotated[Path | None, typer.Argument(help="CSV or JSON lines training series.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the model.")] = Path("tsdiff"),
    dataset: Annotated[str | None, typer.Option(help="An embedded dataset instead.")] = None,
    freq: Annotated[str | None, typer.Option(help="Frequency (e.g. h, 30min, M).")] = None,
    prediction_length: Annotated[int | None, typer.Option(help="Horizon.")] = None,
    context_length: Annotated[int | None, typer.Option(help="Context (3 horizons).")] = None,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 2000,
    hidden: Annotated[int, typer.Option(help="Backbone width.")] = 64,
    blocks: Annotated[int, typer.Option(help="Residual S4 blocks.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train TSDiff (unconditional diffusion over context + horizon windows)."""
    _single_thread()
    from polyfold.timeseries.tsdiff import TSDiff, TSDiffConfig

    d = _series(data, dataset, freq)
    h = prediction_length or d.prediction_length
    cfg = TSDiffConfig(
        context_length=context_length or 3 * _positive(h, "--prediction-length"),
        prediction_length=h,
        freq=d.freq,
        steps=_positive(steps, "--steps"),
        hidden=hidden,
        n_blocks=blocks,
        seed=seed,
    )
    for i, y in zip(d.item_ids, d.values, strict=True):
        if np.isnan(y).any():
            raise InputError(f"{data or dataset}: series {i!r} has NaN; training needs full series")
    run = out / "run"
    model = TSDiff(cfg).fit(d.values, out_dir=run, quiet=quiet, data_card=dataset)
    model.save(out)
    typer.echo(
        f"trained {model.trained_steps} steps, loss {model.metrics['train_loss']:.4f}; saved {out}"
    )


@app.command()
def forecast(
    model_dir: Annotated[Path, typer.Argument(help="Folder written by `train`.")],
    data: Annotated[Path | None, typer.Argument(help="CSV or JSON lines history.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("forecast"),
    dataset: Annotated[str | None, typer.Option(help="An embedded dataset instead.")] = None,
    freq: Annotated[str | None, typer.Option(help="Frequency of JSON lines data.")] = None,
    samples: Annotated[int, typer.Option(help="Samples per series.")] = 100,
    guidance: Annotated[str | None, typer.Option(help="mse or quantile.")] = None,
    scale: Annotated[float | None, typer.Option(help="Guidance scale.")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Self-guided forecasts after each series: quantiles.csv, samples.csv and report.html."""
    _single_thread()
    import torch

    model = _load_model(model_dir)
    d = _series(data, dataset, freq or model.config.freq)
    if guidance not in (None, "mse", "quantile"):
        raise InputError(f"--guidance: expected 'mse' or 'quantile', got {guidance!r}")
    g = torch.Generator().manual_seed(seed)
    n = _positive(samples, "--samples")
    out_s = [model.predict(y, n, guidance=guidance, scale=scale, generator=g) for y in d.values]
    _write_forecasts(out, d, out_s, "TSDiff forecasts")
    typer.echo(f"wrote {out / 'quantiles.csv'}, {out / 'samples.csv'}, {out / 'report.html'}")


@app.command()
def refine(
    model_dir: Annotated[Path, typer.Argument(help="Folder written by `train`.")],
    data: Annotated[Path | None, typer.Argument(help="CSV or JSON lines history.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("refined"),
    dataset: Annotated[str | None, typer.Option(help="An embedded dataset instead.")] = None,
    freq: Annotated[str | None, typer.Option(help="Frequency of JSON lines data.")] = None,
    base: Annotated[
        str, typer.Option(help="'snaive' or a samples.csv from `forecast`.")
    ] = "snaive",
    season: Annotated[int | None, typer.Option(help="Season length of 'snaive'.")] = None,
    method: Annotated[str, typer.Option(help="energy (Langevin) or ml (gradient).")] = "energy",
    steps: Annotated[int, typer.Option(help="Refinement steps.")] = 20,
    step_size: Annotated[float, typer.Option(help="Step size.")] = 1e-2,
    samples: Annotated[int, typer.Option(help="Samples per series.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Refine a base forecaster's samples with TSDiff's implicit density."""
    _single_thread()
    import torch

    model = _load_model(model_dir)
    d = _series(data, dataset, freq or model.config.freq)
    h = model.config.prediction_length
    n = _positive(samples, "--samples")
    if base == "snaive":
        m = season or getattr(d, "season_length", 1) or 1
        bases = []
        for item, y in zip(d.item_ids, d.values, strict=True):
            if len(y) < m:
                raise InputError(f"series {item!r}: shorter than the season {m}")
            idx = len(y) - m + (np.arange(h) % m)
            bases.append(np.tile(y[idx], (n, 1)))
    else:
        bases = _read_samples(Path(base), d, h)
    g = torch.Generator().manual_seed(seed)
    outs = [
        model.refine(y, b, method=method, steps=steps, step_size=step_size, generator=g)  # type: ignore[arg-type]
        for y, b in zip(d.values, bases, strict=True)
    ]
    _write_forecasts(out, d, outs, f"TSDiff-refined forecasts ({method})")
    typer.echo(f"wrote {out / 'samples.csv'}, {out / 'quantiles.csv'}, {out / 'report.html'}")


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Folder written by `train`.")],
    data: Annotated[Path | None, typer.Argument(help="CSV or JSON lines series.")] = None,
    dataset: Annotated[str | None, typer.Option(help="An embedded dataset instead.")] = None,
    freq: Annotated[str | None, typer.Option(help="Frequency of JSON lines data.")] = None,
    windows: Annotated[int, typer.Option(help="Rolling test windows at the end.")] = 1,
    samples: Annotated[int, typer.Option(help="Samples per forecast.")] = 100,
    out: Annotated[Path | None, typer.Option("--out", help="Write JSON here.")] = None,
) -> None:
    """CRPS (gluonts' mean_wQuantileLoss) of TSDiff vs seasonal naive on the last windows."""
    _single_thread()
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    from polyfold.timeseries.tsdiff.gluonts_api import TSDiffPredictor
    from polyfold.timeseries.tsdiff.gluonts_api import evaluate as gl_eval

    model = _load_model(model_dir)
    d = _series(data, dataset, freq or model.config.freq)
    d.prediction_length = model.config.prediction_length
    _, test = d.split(_positive(windows, "--windows"))
    n = _positive(samples, "--samples")
    res = {
        "tsdiff": gl_eval(TSDiffPredictor(model, num_samples=n), test, d.freq, num_samples=n),
        "seasonal_naive": gl_eval(
            SeasonalNaivePredictor(
                prediction_length=d.prediction_length, season_length=d.season_length
            ),
            test,
            d.freq,
        ),
    }
    summary = {k: {m: v[m] for m in ("CRPS", "MASE", "sMAPE", "ND")} for k, v in res.items()}
    text = json.dumps(summary, indent=2)
    typer.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2), encoding="utf-8")


@app.command()
def generate(
    data: Annotated[Path | None, typer.Argument(help="CSV with one column per channel.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("padts"),
    dataset: Annotated[str | None, typer.Option(help="eustocks, elecdemand or sines.")] = None,
    seq_len: Annotated[int, typer.Option(help="Window length.")] = 24,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 2000,
    alpha: Annotated[float, typer.Option(help="Population-loss weight (0: off).")] = 0.02,
    n: Annotated[int, typer.Option(help="Windows to generate.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train PaD-TS on min-max scaled windows and generate ``n`` windows (CSV + report)."""
    _single_thread()
    import torch

    from polyfold.timeseries.data import load_multivariate, windows

    if dataset == "sines":
        from polyfold.timeseries.sines import sines

        w = sines(2000, seq_len, 5, generator=seed)
    elif dataset is not None:
        if data is not None:
            raise InputError("DATA / --dataset: give one of them")
        w = windows(load_multivariate(dataset), seq_len)
    elif data is not None:
        w = windows(_read_table(data), seq_len)
    else:
        raise InputError("DATA / --dataset: give a CSV or --dataset NAME")
    _fake, scores = _padts_run(
        w,
        steps=_positive(steps, "--steps"),
        alpha=alpha,
        n=n,
        seed=seed,
        quiet=quiet,
        out=out,
        data_card=dataset,
    )
    del torch
    typer.echo(json.dumps(scores, indent=2))
    typer.echo(f"wrote {out / 'synthetic.csv'} and {out / 'report.html'}")


def _read_table(path: Path) -> np.ndarray:
    import pandas as pd

    if not path.is_file():
        raise InputError(f"{path}: file not found")
    df = pd.read_csv(path).select_dtypes("number")
    if df.shape[1] < 1:
        raise InputError(f"{path}: expected numeric columns")
    arr = df.to_numpy(dtype=np.float32)
    if np.isnan(arr).any():
        raise InputError(f"{path}: contains NaN; generation needs complete tables")
    return arr


def _padts_run(
    w: np.ndarray,
    *,
    steps: int,
    alpha: float,
    n: int,
    seed: int,
    quiet: bool,
    out: Path,
    data_card: str | None,
) -> tuple[np.ndarray, dict[str, float]]:
    import torch

    from polyfold.core.report import Report
    from polyfold.timeseries.metrics import fdds, vds
    from polyfold.timeseries.padts import PaDTSConfig, train_padts
    from polyfold.timeseries.plots import plot_series

    cfg = PaDTSConfig(
        seq_len=w.shape[1],
        n_features=w.shape[2],
        steps=steps,
        alpha=alpha,
        seed=seed,
        batch_size=min(64, len(w)),
        warmup_steps=min(100, steps // 10),
        data_card=data_card,
    )
    model = train_padts(w, cfg, quiet=quiet)
    model.save(out / "model")
    fake = model.sample(_positive(n, "--n"), generator=torch.Generator().manual_seed(seed)).numpy()
    m = min(len(w), len(fake))
    scores = {"fdds": fdds(w[:m], fake[:m])} if w.shape[2] > 1 else {}
    scores["vds"] = vds(w[:m], fake[:m])
    out.mkdir(parents=True, exist_ok=True)
    lines = ["window,step," + ",".join(f"c{c}" for c in range(fake.shape[2]))]
    for i, win in enumerate(fake):
        for t, row in enumerate(win):
            lines.append(f"{i},{t}," + ",".join(f"{v:.6g}" for v in row))
    (out / "synthetic.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep = Report("PaD-TS generation")
    rep.table(["metric", "value"], [[k, f"{v:.4g}"] for k, v in scores.items()])
    for c in range(min(w.shape[2], 4)):
        plot_series(
            rep, f"channel {c}: real vs synthetic", {"real": w[0, :, c], "synthetic": fake[0, :, c]}
        )
        rep.histogram(
            f"channel {c} values",
            {
                "real": w[:m, :, c].ravel().tolist()[:5000],
                "synthetic": fake[:m, :, c].ravel().tolist()[:5000],
            },
        )
    rep.write(out / "report.html")
    return fake, scores


@app.command()
def datasets() -> None:
    """List the embedded datasets."""
    from polyfold.timeseries.data import DATASETS, MULTIVARIATE

    for name, spec in DATASETS.items():
        typer.echo(
            f"{name:12s} forecasting  freq={spec.freq:6s} h={spec.prediction_length:<4d} "
            f"{spec.title}"
        )
    for name, (title, _, _) in MULTIVARIATE.items():
        typer.echo(f"{name:12s} generation   {title}")
    typer.echo(f"{'sines':12s} generation   TimeGAN's sine generator (5 channels)")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path(
        "timeseries-quickstart"
    ),
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """A short TSDiff forecast and PaD-TS generation run with plots in a report."""
    from polyfold.timeseries.quickstart import quickstart as run

    path = run(out, quiet=quiet)
    typer.echo(f"wrote {path}")


def main() -> None:
    """Console entry point."""
    run_app(app)
