"""``polyfold-timeseries``: TSDiff forecasting (train, forecast, refine, evaluate), PaD-TS
generation, quickstart.

    polyfold-timeseries train --dataset airline --holdout 2 --steps 2000 --out runs/tsdiff
    polyfold-timeseries forecast runs/tsdiff data.csv --out runs/forecast
    polyfold-timeseries refine runs/tsdiff data.csv --base snaive --out runs/refined
    polyfold-timeseries evaluate runs/tsdiff --dataset airline --windows 2
    polyfold-timeseries generate --dataset eustocks --steps 2000 --out runs/padts
    polyfold-timeseries quickstart --out runs/timeseries

Input series: a CSV (a timestamp column and one value column per series) or gluonts JSON lines
(``{"start", "target"}`` per line; pass ``--freq``). Outputs are never overwritten without
``--force``; ``train`` and ``generate`` checkpoint their run and continue it with ``--resume``.
Also reachable as ``polyfold timeseries``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError, check_number
from polyfold.core.outputs import (
    Force,
    check_output_file,
    prepare_output_dir,
    write_report,
    write_text,
)
from polyfold.core.progress import (
    RUN_FOLDER,
    Progress,
    Quiet,
    Resume,
    check_steps_left,
    prepare_training_out,
    resuming_line,
    saved_model_config,
)

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-timeseries", "TSDiff (predict, refine, synthesize) and PaD-TS generation on gluonts."
)

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: what each reported metric means; every table and JSON file says it
DIRECTIONS = {
    "CRPS": "lower is better (mean weighted quantile loss, scale-free)",
    "MASE": "lower is better (1 = the in-sample seasonal-naive error)",
    "sMAPE": "lower is better (symmetric percentage error, 0..2)",
    "ND": "lower is better (absolute error / absolute target)",
    "fdds": "lower is better (0 = same cross-channel correlations; data floor: real vs real)",
    "vds": "lower is better (0 = same value distribution; data floor: real vs real)",
}


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise InputError(f"{option}: expected an integer >= 1, got {value}")
    return value


def _positive_float(value: float, option: str) -> float:
    return check_number(option, value, strict=True)


def _as_options(err: InputError, options: dict[str, str]) -> InputError:
    """The model's error with its argument name replaced by the CLI option (``scale`` ->
    ``--scale``)."""
    text = str(err)
    for arg, option in options.items():
        if text.startswith(f"{arg}:"):
            return InputError(option + text[len(arg) :])
    return err


def _series(
    data: Path | None, dataset: str | None, freq: str | None, model_freq: str | None = None
) -> Any:
    """The input series; with ``model_freq`` (a trained model's), a different frequency is an
    error rather than a silent reinterpretation."""
    from polyfold.timeseries.data import check_freq, load_dataset, read_series, same_freq

    if (data is None) == (dataset is None):
        raise InputError("DATA / --dataset: give exactly one of a data file or --dataset NAME")
    if freq is not None:
        freq = check_freq(freq)
    if dataset is not None:
        d = load_dataset(dataset)
        if freq is not None and not same_freq(freq, d.freq):
            raise InputError(f"--freq: dataset {dataset!r} has frequency {d.freq!r}, got {freq!r}")
        source = f"--dataset {dataset}"
    else:
        assert data is not None
        is_json = data.suffix.lower() in (".json", ".jsonl")
        d = read_series(data, freq or (model_freq if is_json else None), allow_nan=True)
        source = str(data)
    if model_freq is not None and not same_freq(d.freq, model_freq):
        raise InputError(
            f"{source}: the series have frequency {d.freq!r} but the model was trained on "
            f"{model_freq!r} data; use a model trained at this frequency"
        )
    return d


def _source_id(data: Path | None, dataset: str | None) -> str:
    """What the training data was, recorded with the model (``evaluate`` checks overlap)."""
    return f"dataset:{dataset}" if dataset is not None else f"file:{Path(str(data)).resolve()}"


def _load_model(model_dir: Path) -> Any:
    from polyfold.timeseries.tsdiff import TSDiff

    return TSDiff.load(model_dir)


def _sampler_reports_steps() -> bool:
    """Whether core's DDPM sampler takes a step ``callback`` (then progress is per step)."""
    from polyfold.core.samplers import ddpm

    return "callback" in inspect.signature(ddpm).parameters


def _horizon_stamps(data: Any, index: int, length: int, horizon: int) -> list[str]:
    """The timestamps of the ``horizon`` periods after a series of ``length`` points."""
    start = data.starts[index] + length
    return [str(start + k) for k in range(horizon)]


def _write_forecasts(out: Path, data: Any, samples: list[np.ndarray], title: str) -> None:
    from polyfold.core.report import Report
    from polyfold.timeseries.plots import plot_forecast

    horizon = samples[0].shape[1]
    q_lines = ["item_id,timestamp," + ",".join(f"q{q}" for q in QUANTILES) + ",mean"]
    s_lines = ["item_id,sample," + ",".join(f"h{i}" for i in range(horizon))]
    report = Report(title)
    report.paragraph(
        f"{len(data.item_ids)} series, {samples[0].shape[0]} samples each, horizon {horizon} "
        f"periods of frequency {data.freq!r}; the band is the 10%-90% quantile range."
    )
    for i, (item, y, s) in enumerate(zip(data.item_ids, data.values, samples, strict=True)):
        qs = np.quantile(s, QUANTILES, axis=0)
        stamps = _horizon_stamps(data, i, len(y), horizon)
        for k in range(horizon):
            q_lines.append(
                f"{item},{stamps[k]},"
                + ",".join(f"{v:.6g}" for v in qs[:, k])
                + f",{s[:, k].mean():.6g}"
            )
        for j, row in enumerate(s):
            s_lines.append(f"{item},{j}," + ",".join(f"{v:.6g}" for v in row))
        shown = min(len(y), 4 * horizon)
        plot_forecast(
            report,
            str(item),
            y[-shown:],
            s,
            first=str(data.starts[i] + (len(y) - shown)),
            last=stamps[-1],
        )
    write_text(out / "quantiles.csv", "\n".join(q_lines) + "\n")
    write_text(out / "samples.csv", "\n".join(s_lines) + "\n")
    write_report(report, out / "report.html")


def _read_samples(path: Path, data: Any, horizon: int) -> list[np.ndarray]:
    """Base samples from a ``samples.csv`` as written by ``forecast``."""
    import pandas as pd

    from polyfold.core.errors import reading

    if not path.is_file():
        raise InputError(f"--base {path}: file not found")
    with reading(path, "--base"):
        df = pd.read_csv(path)
    cols = [f"h{i}" for i in range(horizon)]
    if "item_id" not in df.columns or any(c not in df.columns for c in cols):
        raise InputError(f"--base {path}: expected columns item_id, sample, h0..h{horizon - 1}")
    out = []
    for item in data.item_ids:
        rows = df[df["item_id"].astype(str) == str(item)]
        if rows.empty:
            raise InputError(f"--base {path}: no samples for item {item!r}")
        values = rows[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
        if not np.isfinite(values).all():
            raise InputError(f"--base {path}: item {item!r} has non-numeric or missing samples")
        out.append(values)
    return out


@app.command()
def train(
    data: Annotated[Path | None, typer.Argument(help="CSV or JSON lines training series.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the model.")] = Path("tsdiff"),
    dataset: Annotated[str | None, typer.Option(help="An embedded dataset instead.")] = None,
    freq: Annotated[str | None, typer.Option(help="Frequency (e.g. h, 30min, M).")] = None,
    prediction_length: Annotated[int | None, typer.Option(help="Horizon.")] = None,
    context_length: Annotated[int | None, typer.Option(help="Context (3 horizons).")] = None,
    holdout: Annotated[
        int, typer.Option(help="Horizons at the end of each series kept out of training.")
    ] = 0,
    steps: Annotated[int | None, typer.Option(help="Training steps [default: 2000].")] = None,
    hidden: Annotated[int, typer.Option(help="Backbone width.")] = 64,
    blocks: Annotated[int, typer.Option(help="Residual S4 blocks.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every N steps [default: steps / 10].")
    ] = None,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train TSDiff (unconditional diffusion over context + horizon windows).

    The run (checkpoints, metrics.csv) is kept in OUT/run; after an interruption, the same
    command with --resume continues it (with the saved model settings; --steps may raise the
    target).
    """
    _single_thread()
    from polyfold.timeseries.tsdiff import TSDiff, TSDiffConfig

    d = _series(data, dataset, freq)
    if holdout < 0:
        raise InputError(f"--holdout: expected an integer >= 0, got {holdout}")
    for value, option in (
        (prediction_length, "--prediction-length"),
        (context_length, "--context-length"),
        (steps, "--steps"),
        (hidden, "--hidden"),
        (blocks, "--blocks"),
        (checkpoint_every, "--checkpoint-every"),
    ):
        if value is not None:
            _positive(value, option)
    resumed = prepare_training_out(out, resume=resume, force=force)
    if resumed is not None:
        typer.echo(resuming_line(resumed, None, out / RUN_FOLDER), err=True)
        cfg = TSDiffConfig(**saved_model_config(out / RUN_FOLDER))
        cfg.steps = cfg.steps if steps is None else steps
        check_steps_left(out, resumed, cfg.steps)
    else:
        h = d.prediction_length if prediction_length is None else prediction_length
        cfg = TSDiffConfig(
            context_length=3 * h if context_length is None else context_length,
            prediction_length=h,
            freq=d.freq,
            steps=2000 if steps is None else steps,
            hidden=hidden,
            n_blocks=blocks,
            seed=seed,
        )
    h = cfg.prediction_length
    series = []
    for i, y in zip(d.item_ids, d.values, strict=True):
        if np.isnan(y).any():
            raise InputError(f"{data or dataset}: series {i!r} has NaN; training needs full series")
        kept = y[: len(y) - holdout * h]
        if len(kept) < cfg.context_length + h:
            raise InputError(
                f"--holdout {holdout}: series {i!r} keeps {len(kept)} of {len(y)} points, fewer "
                f"than one training window ({cfg.context_length + h})"
            )
        series.append(kept)
    cfg.extra = {
        **cfg.extra,
        "train_source": _source_id(data, dataset),
        "train_lengths": {str(i): len(y) for i, y in zip(d.item_ids, series, strict=True)},
    }
    every = checkpoint_every if checkpoint_every is not None else max(1, cfg.steps // 10)
    model = TSDiff(cfg).fit(
        series,
        out_dir=out / "run",
        quiet=quiet,
        data_card=dataset,
        checkpoint_every=every,
        resume=resumed is not None,
    )
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
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Self-guided forecasts after each series: quantiles.csv (per timestamp), samples.csv and
    report.html. A diverging run (too large --scale) is an error, not a file of huge values."""
    _single_thread()
    import torch

    model = _load_model(model_dir)
    d = _series(data, dataset, freq, model.config.freq)
    if guidance not in (None, "mse", "quantile"):
        raise InputError(f"--guidance: expected 'mse' or 'quantile', got {guidance!r}")
    if scale is not None:
        check_number("--scale", scale)
    n = _positive(samples, "--samples")
    prepare_output_dir(out, force=force)
    g = torch.Generator().manual_seed(seed)
    per_step = _sampler_reports_steps()
    per_item = model.config.diffusion_steps if per_step else 1
    out_s = []
    with Progress(len(d.values) * per_item, "forecast", quiet=quiet) as bar:
        for y in d.values:
            cb = bar.step_callback() if per_step else None
            try:
                out_s.append(
                    model.predict(y, n, guidance=guidance, scale=scale, generator=g, callback=cb)
                )
            except InputError as err:
                raise _as_options(err, {"scale": "--scale"}) from None
            bar.update(len(out_s) * per_item)
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
    season: Annotated[
        int | None,
        typer.Option(help="Season of 'snaive' [default: from the frequency, e.g. h -> 24]."),
    ] = None,
    method: Annotated[str, typer.Option(help="energy (Langevin) or ml (gradient).")] = "energy",
    steps: Annotated[int, typer.Option(help="Refinement steps.")] = 20,
    step_size: Annotated[float, typer.Option(help="Step size (> 0).")] = 1e-2,
    samples: Annotated[int, typer.Option(help="Samples per series.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Refine a base forecaster's samples with TSDiff's implicit density."""
    _single_thread()
    import torch

    model = _load_model(model_dir)
    d = _series(data, dataset, freq, model.config.freq)
    h = model.config.prediction_length
    n = _positive(samples, "--samples")
    if method not in ("energy", "ml"):
        raise InputError(f"--method: expected 'energy' or 'ml', got {method!r}")
    _positive(steps, "--steps")
    _positive_float(step_size, "--step-size")
    if base == "snaive":
        m = d.season_length if season is None else _positive(season, "--season")
        bases = []
        for item, y in zip(d.item_ids, d.values, strict=True):
            if len(y) < m:
                raise InputError(f"--season {m}: series {item!r} is shorter than the season")
            idx = len(y) - m + (np.arange(h) % m)
            bases.append(np.tile(y[idx], (n, 1)))
    else:
        bases = _read_samples(Path(base), d, h)
    prepare_output_dir(out, force=force)
    g = torch.Generator().manual_seed(seed)
    outs = []
    with Progress(len(d.values), "refine", quiet=quiet) as bar:
        for y, b in zip(d.values, bases, strict=True):
            try:
                outs.append(
                    model.refine(y, b, method=method, steps=steps, step_size=step_size, generator=g)  # type: ignore[arg-type]
                )
            except InputError as err:
                raise _as_options(err, {"step_size": "--step-size"}) from None
            bar.advance()
    _write_forecasts(out, d, outs, f"TSDiff-refined forecasts ({method})")
    typer.echo(f"wrote {out / 'samples.csv'}, {out / 'quantiles.csv'}, {out / 'report.html'}")


def _check_not_trained_on(
    model: Any, data: Path | None, dataset: str | None, d: Any, k: int
) -> None:
    """Refuse test windows that fall inside the points the model was trained on."""
    extra = model.config.extra or {}
    if extra.get("train_source") != _source_id(data, dataset):
        return
    lengths = extra.get("train_lengths", {})
    h = d.prediction_length
    for item, y in zip(d.item_ids, d.values, strict=True):
        seen = lengths.get(str(item))
        first_scored = len(y) - k * h
        if seen is not None and first_scored < seen:
            raise InputError(
                f"--windows {k}: would score points {first_scored + 1}..{len(y)} of {item!r}, "
                f"but the model trained on its first {seen} points; train with "
                f"--holdout {k} (or more) to keep the test windows out, or evaluate other data"
            )


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Folder written by `train`.")],
    data: Annotated[Path | None, typer.Argument(help="CSV or JSON lines series.")] = None,
    dataset: Annotated[str | None, typer.Option(help="An embedded dataset instead.")] = None,
    freq: Annotated[str | None, typer.Option(help="Frequency of JSON lines data.")] = None,
    windows: Annotated[int, typer.Option(help="Rolling test windows at the end.")] = 1,
    season: Annotated[
        int | None,
        typer.Option(
            help="Season of the seasonal-naive reference and of MASE [default: from the "
            "frequency: 30min -> 48, h -> 24, D -> 7, W -> 52, M -> 12, Q -> 4]."
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="Samples per forecast.")] = 100,
    out: Annotated[Path | None, typer.Option("--out", help="Write JSON here.")] = None,
    force: Force = False,
) -> None:
    """CRPS, MASE, sMAPE and ND of TSDiff vs the seasonal-naive reference on the last windows
    (windows the model trained on are refused; see `train --holdout`)."""
    _single_thread()
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    from polyfold.timeseries.tsdiff.gluonts_api import TSDiffPredictor
    from polyfold.timeseries.tsdiff.gluonts_api import evaluate as gl_eval

    model = _load_model(model_dir)
    d = _series(data, dataset, freq, model.config.freq)
    d.prediction_length = model.config.prediction_length
    k = _positive(windows, "--windows")
    m = d.season_length if season is None else _positive(season, "--season")
    n = _positive(samples, "--samples")
    _check_not_trained_on(model, data, dataset, d, k)
    _, test = d.split(k)
    if out is not None:
        check_output_file(out, force=force)
    snaive = SeasonalNaivePredictor(prediction_length=d.prediction_length, season_length=m)
    res = {
        "tsdiff": gl_eval(
            TSDiffPredictor(model, num_samples=n), test, d.freq, num_samples=n, seasonality=m
        ),
        "seasonal_naive": gl_eval(snaive, test, d.freq, seasonality=m),
    }
    metrics = ("CRPS", "MASE", "sMAPE", "ND")
    lines = [
        f"{len(test)} test windows of {d.prediction_length} periods; reference: seasonal naive "
        f"with season {m}",
        f"{'metric':8s}{'tsdiff':>12s}{'seasonal naive':>16s}  direction",
    ]
    for name in metrics:
        lines.append(
            f"{name:8s}{res['tsdiff'][name]:12.4f}{res['seasonal_naive'][name]:16.4f}  "
            f"{DIRECTIONS[name]}"
        )
    typer.echo("\n".join(lines))
    if out is not None:
        record = {
            **res,
            "settings": {"windows": k, "season": m, "samples": n, "freq": d.freq},
            "directions": {name: DIRECTIONS[name] for name in metrics},
        }
        write_text(out, json.dumps(record, indent=2) + "\n")


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
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every N steps [default: steps / 10].")
    ] = None,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train PaD-TS on windows of a table and generate ``n`` windows in the table's units and
    column names (synthetic.csv + report.html); the run is kept in OUT/run (--resume)."""
    _single_thread()
    from polyfold.timeseries.data import load_table, read_table, windows

    _positive(n, "--n")
    _positive(steps, "--steps")
    _positive(seq_len, "--seq-len")
    check_number("--alpha", alpha)
    every = _positive(
        checkpoint_every if checkpoint_every is not None else max(1, steps // 10),
        "--checkpoint-every",
    )
    if (data is None) == (dataset is None):
        raise InputError("DATA / --dataset: give exactly one of a CSV or --dataset NAME")
    if dataset == "sines":
        from polyfold.timeseries.sines import sines

        w = sines(2000, seq_len, 5, generator=seed)
        columns = [f"sine{c}" for c in range(w.shape[2])]
    else:
        table, columns = load_table(dataset) if dataset is not None else read_table(Path(str(data)))
        w = windows(table, seq_len, scale="none")
    resumed = prepare_training_out(out, resume=resume, force=force)
    if resumed is not None:
        typer.echo(resuming_line(resumed, None, out / RUN_FOLDER), err=True)
    _fake, scores = _padts_run(
        w,
        columns,
        steps=steps,
        alpha=alpha,
        n=n,
        seed=seed,
        quiet=quiet,
        out=out,
        data_card=dataset,
        checkpoint_every=every,
        resume=resume,
    )
    typer.echo(json.dumps(scores, indent=2))
    typer.echo(f"wrote {out / 'synthetic.csv'} and {out / 'report.html'}")


def _min_max(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both window sets min-max scaled per channel by the real windows' range (PaD-TS's metric
    scale), so that the scores do not depend on the data's units."""
    lo, hi = real.min(axis=(0, 1)), real.max(axis=(0, 1))
    span = np.where(hi > lo, hi - lo, 1.0)
    return (real - lo) / span, (fake - lo) / span


def _padts_run(
    w: np.ndarray,
    columns: list[str],
    *,
    steps: int,
    alpha: float,
    n: int,
    seed: int,
    quiet: bool,
    out: Path,
    data_card: str | None,
    checkpoint_every: int,
    resume: bool,
) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
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
    model = train_padts(
        w,
        cfg,
        quiet=quiet,
        out_dir=out / "run",
        resume=resume,
        checkpoint_every=checkpoint_every,
    )
    model.save(out / "model")
    fake = model.sample(n, generator=torch.Generator().manual_seed(seed)).numpy()
    m = min(len(w), len(fake))
    real_s, fake_s = _min_max(w, fake)
    pick = np.random.default_rng(seed).permutation(len(w))
    half_a, half_b = real_s[pick[: len(w) // 2]][:m], real_s[pick[len(w) // 2 :]][:m]
    scores: dict[str, dict[str, float]] = {}
    if w.shape[2] > 1:
        scores["fdds"] = {"value": fdds(real_s[:m], fake_s[:m]), "floor": fdds(half_a, half_b)}
    scores["vds"] = {"value": vds(real_s[:m], fake_s[:m]), "floor": vds(half_a, half_b)}
    lines = ["window,step," + ",".join(columns)]
    for i, win in enumerate(fake):
        for t, row in enumerate(win):
            lines.append(f"{i},{t}," + ",".join(f"{v:.6g}" for v in row))
    write_text(out / "synthetic.csv", "\n".join(lines) + "\n")
    rep = Report("PaD-TS generation")
    rep.paragraph(
        f"{len(fake)} generated windows of {w.shape[1]} steps, {w.shape[2]} channels, in the "
        f"data's units; scores on windows min-max scaled by the real range."
    )
    rep.table(
        ["metric", "synthetic vs real", "data floor (real vs real)", "direction"],
        [[k, f"{v['value']:.4g}", f"{v['floor']:.4g}", DIRECTIONS[k]] for k, v in scores.items()],
    )
    for c in range(min(w.shape[2], 4)):
        plot_series(
            rep,
            f"{columns[c]}: a real and a synthetic window",
            {"real": w[0, :, c], "synthetic": fake[0, :, c]},
            x_label="step in window",
        )
        rep.heading(f"{columns[c]}: value distribution", level=3)
        rep.histogram(
            "",
            {
                "real": w[:m, :, c].ravel().tolist()[:5000],
                "synthetic": fake[:m, :, c].ravel().tolist()[:5000],
            },
        )
    write_report(rep, out / "report.html")
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
    quiet: Quiet = False,
) -> None:
    """A short TSDiff forecast and PaD-TS generation run with plots in a report."""
    from polyfold.timeseries.quickstart import quickstart as run

    path = run(out, quiet=quiet)
    typer.echo(f"wrote {path}")


def main() -> None:
    """Console entry point."""
    run_app(app)
