"""Samplers benchmark section: TSDiff forecasts (polyfold-timeseries) at NFE 4-10, plain vs USF.

polyfold-timeseries ships no checkpoint, so a small TSDiff is trained here first, with the
timeseries benchmark's forecasting setup on ``co2`` (context ``3 h``, standard scaling, quantile
self-guidance; ``TRAIN_STEPS`` steps). The last ``WINDOWS`` horizons are held out and forecast
with ``SAMPLES`` samples each through the package's own predictor
(:class:`~polyfold.timeseries.tsdiff.gluonts_api.TSDiffPredictor` with its ``sampler`` hook),
at each NFE: ``ddpm`` (the package's ancestral sampler, at NFE steps), the plain ODE samplers
``unipc``, ``dpm_solver_pp``, ``deis``, ``ddim`` (and ``heun`` at about half the steps) on the
path's uniform grid with the data point appended, and USF schedules searched for this model and
NFE (:func:`~polyfold.core.samplers.usf.search_schedule`, DC-Solver's per-step compensation
ratios searched with them): ``usf+dc`` on that grid, and ``teleport+usf+dc``, which starts by
analytical teleportation with a Gaussian fitted to the scaled training windows, handed over at
the time :func:`~polyfold.core.samplers.teleport.choose_skip` picks on the guided calibration
batch (``TOL``; the hand-over searched too; the Gaussian ignores the observation guidance, so
the skip is as long as the guided model agrees with it; on ``co2`` it picks no skip, so no
``teleport+usf+dc`` row is made), both on calibration forecasts: the last
``CONTEXTS`` horizons of the training series (never the test period), ``SAMPLES`` prior draws
each (seed 31; held-out draws seed 33), self-guided as the test forecasts are. The best plain
ODE sampler is the one with the lowest calibration error. Scores: CRPS (gluonts'
``mean_wQuantileLoss``, what the package's own bench reports) and ``ref_error``, the RMS
distance of the guided windows to a ``REF_STEPS``-step DPM-Solver++ solve of the same guided
ODE from the same noise (ODE samplers only; ``ddpm`` is stochastic), in the scaled units of the
whole window (context and lag channels included). A ``reference`` row scores that solve itself,
with ``reference_self_error``, its distance to a solve of twice the steps on the calibration
batch.

Known weak spot (``--quick``, NFE 4): the best plain sampler is Heun (2 steps, 3 calls), whose
calibration error the search, started from UniPC on the uniform grid, does not reach; USF's CRPS
and ``ref_error`` are then worse than Heun's. From NFE 6 it is better.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from polyfold.core.samplers import get_sampler, uniform_t_grid
from polyfold.core.samplers.teleport import GaussianScore, choose_skip, handover_grid
from polyfold.core.samplers.usf import search_schedule, usf

DATASET = "co2"
WINDOWS = 6
TRAIN_STEPS = 600
HIDDEN = 48
SAMPLES = 32
CONTEXTS = 4
NFES = [4, 6, 8, 10]
ROUNDS = 2
REF_STEPS = 100
TOL = 0.02  # teleportation's hand-over tolerance, as the mixture section's
ODE = ("unipc", "dpm_solver_pp", "deis", "ddim", "heun")


def configure_ts(quick: bool) -> None:
    """``--quick``: 150 training steps (hidden 32), NFE 4 and 6, 16 samples, 2 calibration
    contexts, one round; a full run: 600 steps (hidden 48), NFE 4, 6, 8, 10, 32 samples, 4
    contexts, two rounds."""
    global TRAIN_STEPS, HIDDEN, SAMPLES, CONTEXTS, NFES, ROUNDS
    TRAIN_STEPS, HIDDEN, SAMPLES, CONTEXTS, NFES, ROUNDS = (
        (150, 32, 16, 2, [4, 6], 1) if quick else (600, 48, 32, 4, [4, 6, 8, 10], 2)
    )


def _rms(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean().sqrt())


def _steps(name: str, nfe: int) -> int:
    return (nfe + 1) // 2 if name == "heun" else nfe


def plain_result(name: str, nfe: int, den: Any, path: Any, x: Tensor, g: Any = None) -> Any:
    """Core sampler ``name`` on the path's uniform grid for ``nfe`` calls (``heun``: steps)."""
    grid = uniform_t_grid(path, _steps(name, nfe), append_zero=True)
    extra = {"generator": g} if name == "ddpm" else {}
    with torch.no_grad():
        return get_sampler(name, kind="gaussian")(den, path, x, grid, **extra)


def plain(name: str, nfe: int) -> Callable[..., Tensor]:
    """``(den, path, x, generator, callback) -> windows`` of :func:`plain_result`."""

    def run(den: Any, path: Any, x: Tensor, g: Any = None, callback: Any = None) -> Tensor:
        out = plain_result(name, nfe, den, path, x, g).x
        assert isinstance(out, Tensor)
        return out

    return run


class References:
    """``REF_STEPS``-step DPM-Solver++ solves, cached by their noise; as a TSDiff ``sampler``
    hook it returns the reference itself."""

    def __init__(self) -> None:
        self.cache: dict[float, Tensor] = {}

    def __call__(self, den: Any, path: Any, x: Tensor, g: Any = None, cb: Any = None) -> Tensor:
        key = float(x.double().sum())
        if key not in self.cache:
            self.cache[key] = plain("dpm_solver_pp", REF_STEPS)(den, path, x)
        return self.cache[key]


class Recorded:
    """A TSDiff ``sampler`` hook that also records, per forecast, the RMS distance to the
    reference from the same noise."""

    def __init__(self, run: Callable[..., Tensor], refs: References) -> None:
        self.run, self.refs = run, refs
        self.errors: list[float] = []

    def __call__(self, den: Any, path: Any, x: Tensor, g: Any = None, cb: Any = None) -> Tensor:
        out = self.run(den, path, x, g)
        self.errors.append(_rms(out, self.refs(den, path, x)))
        return out

    @property
    def error(self) -> float:
        """RMS over the forecasts (the windows are of equal size)."""
        return math.sqrt(sum(e * e for e in self.errors) / len(self.errors))


def _calibration(model: Any, series: Any, seed: int) -> tuple[Any, Tensor]:
    """The guided denoiser of ``CONTEXTS`` training-period forecasts, ``SAMPLES`` each (each
    with the package's quantile levels), and prior noise for them."""
    h, obs, seen = model.config.prediction_length, [], []
    for j in range(CONTEXTS):
        y, o, _ = model.observation_window(series[: len(series) - j * h])
        obs.append(y.expand(SAMPLES, -1, -1))
        seen.append(o.expand(SAMPLES, -1, -1))
    levels = ((torch.arange(SAMPLES) + 0.5) / SAMPLES).repeat(CONTEXTS)
    den = model.guided_denoiser(torch.cat(obs), torch.cat(seen), levels=levels)
    shape = (CONTEXTS * SAMPLES, model.config.length, model.config.channels)
    return den, model.path.prior_sample(shape, generator=torch.Generator().manual_seed(seed))


def _train_windows(train: Any, cfg: Any) -> Tensor:
    """The scaled training windows the model was fitted on (teleportation's Gaussian)."""
    from polyfold.timeseries.tsdiff.features import training_windows

    lags = list(cfg.lags or [])
    series = [e["target"] for e in train]
    return training_windows(series, lags, cfg.context_length, cfg.prediction_length, cfg.scaling)


def _usf_row(name: str, found: Any, approx: Any, refs: References, score: Any) -> dict[str, Any]:
    """A searched schedule's row: CRPS on the test windows and ``ref_error``."""
    sched = found.schedule

    def run_usf(den: Any, p: Any, x: Tensor, g: Any = None) -> Tensor:
        out = usf(den, p, x, sched.grid, schedule=sched, approx=approx).x
        assert isinstance(out, Tensor)
        return out

    rec = Recorded(run_usf, refs)
    return {
        "sampler": name,
        "nfe": sched.nfe,
        "calib_error": found.error,
        "heldout_error": found.heldout_error,
        "search_seconds": found.seconds,
        "crps": score(rec),
        "ref_error": rec.error,
        "handover": sched.times[0],
    }


def tsdiff_rows() -> list[dict[str, Any]]:
    """One row per sampler and NFE (CRPS on the test windows, ``ref_error``), the USF rows
    with their search time, and the ``ddpm`` row at the package's own 100 steps."""
    from polyfold.timeseries.data import load_dataset
    from polyfold.timeseries.tsdiff import TSDiff, TSDiffConfig
    from polyfold.timeseries.tsdiff.gluonts_api import TSDiffPredictor, crps

    d = load_dataset(DATASET)
    h = d.prediction_length
    train, test = d.split(WINDOWS)
    cfg = TSDiffConfig(
        context_length=3 * h,
        prediction_length=h,
        freq=d.freq,
        steps=TRAIN_STEPS,
        hidden=HIDDEN,
        n_blocks=2,
        batch_size=32,
        guidance="quantile",
        scaling="standard",
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = TSDiff(cfg).fit([e["target"] for e in train], out_dir=tmp)
    print(f"# domain timeseries: trained in {time.perf_counter() - started:.0f}s", flush=True)
    series = train[0]["target"]
    cal_den, cal = _calibration(model, series, 31)
    _, gate = _calibration(model, series, 33)
    path = model.path
    approx = GaussianScore.fit(_train_windows(train, cfg))
    with torch.no_grad():
        choice = choose_skip(cal_den, path, approx, cal, tol=TOL, t_start=path.t_max)
    cal_ref = plain("dpm_solver_pp", REF_STEPS)(cal_den, path, cal)
    self_error = _rms(cal_ref, plain("dpm_solver_pp", 2 * REF_STEPS)(cal_den, path, cal))
    refs = References()

    def score(sampler: Any) -> float:
        pred = TSDiffPredictor(model, num_samples=SAMPLES, sampler=sampler)
        with warnings.catch_warnings():  # gluonts' and pandas' deprecation chatter
            warnings.simplefilter("ignore")
            return crps(pred, test, d.freq, num_samples=SAMPLES)

    base = {"domain": "timeseries", "dataset": DATASET, "n": WINDOWS * SAMPLES}
    steps = cfg.diffusion_steps
    rows = [{**base, "sampler": "ddpm", "nfe": steps, "calls": steps, "crps": score(None)}]
    for nfe in NFES:
        new = [{"sampler": "ddpm", "nfe": nfe, "crps": score(plain("ddpm", nfe))}]
        for name in ODE:
            rec = Recorded(plain(name, nfe), refs)
            res = plain_result(name, nfe, cal_den, path, cal)
            row = {"sampler": name, "nfe": res.nfe, "calib_error": _rms(res.x, cal_ref)}
            row.update(crps=score(rec), ref_error=rec.error)
            new.append(row)
        best = min((r for r in new if "calib_error" in r), key=lambda r: r["calib_error"])
        best["best_plain"] = True
        grid = uniform_t_grid(path, nfe, append_zero=True)
        tries: list[tuple[str, Any, Any]] = [("usf+dc", None, grid)]
        if choice.t_skip < float(grid[0]):
            tries.append(("teleport+usf+dc", approx, handover_grid(grid, choice.t_skip)))
        for name, a, g0 in tries:
            extra = {} if a is None else {"approx": a, "t_start": float(grid[0])}
            with torch.no_grad():
                found = search_schedule(
                    cal_den, path, cal, nfe, grid=g0, rounds=ROUNDS, holdout=gate,
                    compensation=True, **extra,
                )  # fmt: skip
            new.append(_usf_row(name, found, a, refs, score))
            new[-1]["skip_fraction"] = choice.fraction if a is not None else 0.0
        rows += [{**base, **r, "calls": nfe} for r in new]
        print(f"# domain timeseries, NFE {nfe}: searched in {found.seconds:.0f}s", flush=True)
    ref = {"sampler": "reference", "nfe": REF_STEPS, "calls": REF_STEPS, "ref_error": 0.0}
    ref["crps"] = score(refs)
    rows.append({**base, **ref, "reference_self_error": self_error})
    return rows
