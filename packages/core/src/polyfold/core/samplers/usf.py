r"""USF (Liu et al., "A Unified Sampling Framework for Solver Searching of Diffusion Probabilistic
Models"): an exponential-integrator sampler with a free choice per step, and a search for it.

A :class:`SolverSchedule` fixes, for one path and NFE, the time points and, per step, the
solver order (1 to 3, through UniPC's multistep predictor on the last outputs), the prediction
type it integrates (``"x0"`` or ``"eps"``) and whether UniC corrects the step's end state.
:func:`usf` runs it (one model call per step, UniPC's coefficients per step). A last step to
the data point has no expansion in log-SNR; its order ``k`` there chooses between the denoised
``x0`` (``k = 1``, every sampler's final step) and Adams-Bashforth of order ``k`` in
``sigma/alpha`` on the last ``k`` noise predictions, from the corrected state. The Taylor
expansion always starts at the step's start point here (USF's free start is not offered). A
schedule may also start by analytical teleportation (``teleport_from``): the state at that time
is carried in closed form by the data's Gaussian approximation
(:mod:`~polyfold.core.samplers.teleport`, no model call) to the schedule's first time, so every
call goes to the rest of the trajectory.

:func:`search_schedule` finds a schedule for a model and NFE from a small calibration batch by
coordinate descent on the end-point error against a fine reference solve, from the best of
the given grid and its points respaced (same end points, uniform in ``(sigma/alpha)^(1/rho)``
for a few ``rho``, or in log-SNR), UniPC-2, UniPC-3 or bh1 on it: per step the order,
prediction, corrector, UniPC variant (and, optionally, DC-Solver's compensation ratio, which
the schedule's ``ratios`` apply as :func:`~polyfold.core.samplers.unipc.unipc` does), then
each time point moved within its neighbours' gap (several step sizes, repeated while it
improves; with an approximation, the first time, i.e. the teleport hand-over, as well), for a
few rounds. Every candidate is evaluated by running it (USF's S^3
instead trains a performance predictor to rank candidates; that predictor is not implemented
here). Schedules are saved as small JSON files (:meth:`SolverSchedule.save`, several NFEs per
name) and loaded by name or file with :func:`load_schedule`, which refuses an NFE that was not
searched and a file searched on another path.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, NonFiniteError
from polyfold.core.paths import GaussianPath
from polyfold.core.samplers._compensate import compensate
from polyfold.core.samplers._core import Run, lincomb, smap
from polyfold.core.samplers._expint import _lagrange
from polyfold.core.samplers.grids import check_grid, uniform_t_grid, zero_time
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.samplers.unipc import _finite_prefix, _key
from polyfold.core.state import Mask, State, keep_padding

if TYPE_CHECKING:
    from polyfold.core.samplers.teleport import Approximation

__all__ = [
    "SearchResult",
    "SolverSchedule",
    "load_schedule",
    "reference_end",
    "schedule_error",
    "search_schedule",
    "usf",
]

_KINDS = ("x0", "eps")
_VARIANTS = ("bh1", "bh2")


@dataclass(frozen=True)
class SolverSchedule:
    """USF's choices for one path and NFE: ``times`` (``nfe + 1`` decreasing), and per step
    ``orders``, ``predictions`` and ``correctors`` (a step to the data point: its order only,
    see the module doc); ``path`` is the path's ``repr``;
    ``teleport_from``: the time the state starts at when the schedule first teleports to
    ``times[0]`` (``None``: it starts at ``times[0]``); ``ratios``: DC-Solver's compensation
    ratio of each step (:mod:`~polyfold.core.samplers.compensation`; ``None`` or ones: none);
    ``variants``: UniPC's ``B(h)`` of each step, ``"bh1"`` or ``"bh2"`` (``None``: all bh2)."""

    path: str
    times: tuple[float, ...]
    orders: tuple[int, ...]
    predictions: tuple[str, ...]
    correctors: tuple[bool, ...]
    teleport_from: float | None = None
    ratios: tuple[float, ...] | None = None
    variants: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.times) - 1
        if n < 1 or any(b >= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise InputError("schedule.times: expected at least 2 strictly decreasing times")
        if self.variants is not None and (
            len(self.variants) != n or any(v not in _VARIANTS for v in self.variants)
        ):
            raise InputError(
                f"schedule.variants: expected {n} of 'bh1', 'bh2', got {self.variants}"
            )
        for name in ("orders", "predictions", "correctors"):
            if len(getattr(self, name)) != n:
                raise InputError(f"schedule.{name}: expected {n} entries (one per step)")
        if any(o not in (1, 2, 3) for o in self.orders):
            raise InputError(f"schedule.orders: expected 1, 2 or 3, got {self.orders}")
        if any(p not in _KINDS for p in self.predictions):
            raise InputError(
                f"schedule.predictions: expected 'x0' or 'eps', got {self.predictions}"
            )
        if self.ratios is not None and (
            len(self.ratios) != n or not all(math.isfinite(r) and r > 0 for r in self.ratios)
        ):
            raise InputError(f"schedule.ratios: expected {n} finite numbers > 0, got {self.ratios}")
        if self.teleport_from is not None and not self.teleport_from >= self.times[0]:
            raise InputError(
                f"schedule.teleport_from: expected a time >= times[0] = {self.times[0]}, "
                f"got {self.teleport_from}"
            )

    @property
    def nfe(self) -> int:
        """Model calls (steps) of the schedule."""
        return len(self.times) - 1

    @property
    def grid(self) -> Tensor:
        """The time grid to pass to :func:`usf`."""
        return torch.tensor(self.times, dtype=F64)

    @classmethod
    def default(cls, path: GaussianPath, grid: Tensor | Sequence[float]) -> SolverSchedule:
        """UniPC-2 with its corrector on ``grid`` (orders ramping up and down), data prediction."""
        g = check_grid(grid, path).tolist()
        n = len(g) - 1
        orders = tuple(max(1, min(2, i + 1, n - i)) for i in range(n))
        return cls(repr(path), tuple(g), orders, ("x0",) * n, (True,) * n)

    def save(self, name: str, directory: str | Path = "schedules") -> Path:
        """Add this schedule to ``<directory>/<name>.json`` (one file, several NFEs)."""
        file = Path(directory) / f"{name}.json"
        data: dict[str, Any] = {"path": self.path, "schedules": {}}
        if file.exists():
            data = json.loads(file.read_text(encoding="utf-8"))
            if data.get("path") != self.path:
                raise InputError(f"{file}: holds schedules for {data.get('path')}, not {self.path}")
        entry = {k: v for k, v in asdict(self).items() if k != "path"}
        data["schedules"][str(self.nfe)] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in entry.items()
        }
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return file


def load_schedule(
    source: str | Path, *, nfe: int, path: GaussianPath, directory: str | Path = "schedules"
) -> SolverSchedule:
    """The schedule for ``nfe`` steps on ``path`` from a JSON file, or by name from
    ``<directory>/<name>.json``."""
    file = Path(source)
    if not file.suffix:
        file = Path(directory) / f"{source}.json"
    if not file.is_file():
        raise InputError(f"schedule: no file {file} (save one with SolverSchedule.save)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        table = data["schedules"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"{file}: not a schedule file ({err})") from err
    if data.get("path") != repr(path):
        raise InputError(f"{file}: searched for path {data.get('path')}, not {path!r}")
    if str(nfe) not in table:
        have = ", ".join(sorted(table, key=int)) or "none"
        raise InputError(f"{file}: no schedule for NFE {nfe} (searched NFEs: {have})")
    entry = table[str(nfe)]
    return SolverSchedule(
        repr(path),
        tuple(float(t) for t in entry["times"]),
        tuple(int(o) for o in entry["orders"]),
        tuple(str(p) for p in entry["predictions"]),
        tuple(bool(c) for c in entry["correctors"]),
        None if entry.get("teleport_from") is None else float(entry["teleport_from"]),
        None if entry.get("ratios") is None else tuple(float(r) for r in entry["ratios"]),
        None if entry.get("variants") is None else tuple(str(v) for v in entry["variants"]),
    )


def usf(
    denoiser: Denoiser,
    paths: GaussianPath,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    schedule: SolverSchedule,
    approx: Approximation | None = None,
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Run a :class:`SolverSchedule` (``grid`` must be ``schedule.grid``; one call per step).
    A schedule with ``teleport_from`` takes ``x`` at that time and the data's ``approx``
    (e.g. :class:`~polyfold.core.samplers.teleport.GaussianScore`), whose closed-form flow
    carries it to ``grid[0]`` without a model call."""
    if not isinstance(schedule, SolverSchedule):
        raise InputError("schedule: expected a SolverSchedule (see search_schedule)")
    if schedule.path != repr(paths):
        raise InputError(f"schedule: searched for path {schedule.path}, not {paths!r}")
    if (approx is None) != (schedule.teleport_from is None):
        raise InputError(
            "approx: expected the data's approximation exactly when the schedule teleports "
            f"(schedule.teleport_from = {schedule.teleport_from})"
        )
    if approx is not None and schedule.teleport_from not in (None, schedule.times[0]):
        if not isinstance(x, Tensor) or not isinstance(paths, GaussianPath):
            raise InputError("x: teleportation needs a tensor state on one GaussianPath")
        assert schedule.teleport_from is not None
        moved = approx.flow(x, paths, schedule.teleport_from, schedule.times[0])
        x = moved if mask is None else keep_padding(moved, x, mask)
    run = Run("usf", denoiser, paths, x, grid, mask=mask, callback=callback)
    if run.t != [float(t) for t in schedule.times]:
        raise InputError(
            f"grid: a searched schedule fixes its times; pass schedule.grid ({schedule.nfe} steps)"
        )
    history: list[tuple[int, Any]] = []  # (grid index, {"x0": .., "eps": ..}), newest first
    last: tuple[State, list[int], str, str] | None = None
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        if run.final(i) and schedule.orders[i] == 1:
            return run.result(run.denoise_to_zero(d, x))
        if last is not None:
            x_prev, idx, kind, variant = last
            if _finite_prefix(run, idx, i) == len(idx) + 1:
                outs = [_out(h, kind) for _, h in history[: len(idx)]] + [_out(d, kind)]
                fn = partial(_key, kind, variant, True, idx, i)
                x = run.keep(smap(fn, x_prev, run.levels, *outs), x)
        if run.final(i):
            return run.result(_to_zero(run, schedule.orders[i], history, d, x))
        history = [(i, {"x0": d.x0, "eps": d.eps}), *history][:3]
        if schedule.ratios is not None:  # DC: the newest outputs compensated, as UniPC's
            used = history[: max(2, schedule.orders[i])]
            history[0] = (
                i,
                {k: compensate(run, _kind(used, k), schedule.ratios, i) for k in _KINDS},
            )
        kind = schedule.predictions[i]
        idx = [j for j, _ in history[: schedule.orders[i]]]
        idx = idx[: max(1, _finite_prefix(run, idx))]
        variant = "bh2" if schedule.variants is None else schedule.variants[i]
        fn = partial(_key, kind, variant, False, idx, i + 1)
        last = (x, idx, kind, variant) if schedule.correctors[i] else None
        outs = [_out(h, kind) for _, h in history[: len(idx)]]
        x = run.keep(smap(fn, x, run.levels, *outs), x)
        run.report(i, x, d.x0)
    return run.result(x)


def _to_zero(run: Run, order: int, history: list[tuple[int, Any]], d: Any, x: State) -> State:
    """The final step of ``order`` >= 2 to the data point: Adams-Bashforth in ``s = sigma/alpha``
    on the noise prediction, ``x/alpha`` minus the integral from 0 to ``s_i`` of the polynomial
    through the last ``order`` outputs ``eps_j`` at ``s_j`` (order 1 is the denoised ``x0``)."""
    idx = [run.steps - 1, *(j for j, _ in history[: order - 1])]
    idx = idx[: max(1, _finite_prefix(run, idx))]
    outs = [d.eps, *(h["eps"] for _, h in history[: len(idx) - 1])]
    fn = partial(_ab_to_zero, idx, run.steps)
    return run.report(run.steps - 1, run.keep(smap(fn, x, run.levels, *outs), x), d.x0)


def _ab_to_zero(idx: list[int], zero: int, x: Tensor, lvs: list[Any], *eps: Tensor) -> Tensor:
    """``alpha_0 (x / alpha_i - sum_j w_j eps_j)``, ``w_j = s_i int_0^1 L_j(u) du`` for the
    Lagrange basis on the nodes ``u_j = s_j / s_i`` (one node: ``w = s_i``, the denoised x0)."""
    s_i = math.exp(-lvs[idx[0]].ell)
    nodes = [math.exp(-lvs[j].ell) / s_i for j in idx]
    w = [s_i * sum(c / (k + 1) for k, c in enumerate(cj)) for cj in _lagrange(nodes)]
    a0 = lvs[zero].alpha
    return lincomb(x, a0 / lvs[idx[0]].alpha, [-a0 * wj for wj in w], eps)


def _out(d: Any, kind: str) -> State:
    out: State = d[kind] if isinstance(d, dict) else d.x0 if kind == "x0" else d.eps
    return out


def _kind(history: list[tuple[int, Any]], kind: str) -> list[tuple[int, State]]:
    return [(j, h[kind]) for j, h in history]


@dataclass(frozen=True)
class SearchResult:
    """The best schedule :func:`search_schedule` found, its calibration error (and held-out
    error, ``nan`` without a held-out batch), the plain default's and the search's wall time."""

    schedule: SolverSchedule
    error: float
    default_error: float
    seconds: float
    evaluations: int
    heldout_error: float = math.nan


class _Judge:
    """Keeps the best schedule: a candidate wins when it lowers the calibration error and, with
    a held-out batch, does not raise the held-out error (so the search cannot overfit)."""

    def __init__(
        self, batches: list[tuple[Tensor, Tensor]], run: Any, first: SolverSchedule
    ) -> None:
        self.batches, self.run, self.count = batches, run, 0
        self.best = first
        self.errors = [self._error(first, k) for k in range(len(batches))]

    def _error(self, s: SolverSchedule, k: int) -> float:
        self.count += 1
        x, ref = self.batches[k]
        try:
            out = self.run(s, x)
        except NonFiniteError:  # a diverging candidate just loses
            return math.inf
        return float((out.to(F64) - ref).pow(2).mean().sqrt())

    def offer(self, cand: SolverSchedule) -> bool:
        errs = [self._error(cand, 0)]
        if errs[0] >= self.errors[0]:
            return False
        for k in range(1, len(self.batches)):
            errs.append(self._error(cand, k))
            if errs[k] > self.errors[k]:
                return False
        self.best, self.errors = cand, errs
        return True


def search_schedule(
    denoiser: Denoiser,
    path: GaussianPath,
    x: Tensor,
    nfe: int,
    *,
    grid: Tensor | Sequence[float] | None = None,
    rounds: int = 2,
    sub: int = 16,
    approx: Approximation | None = None,
    t_start: float | None = None,
    compensation: bool = False,
    holdout: Tensor | None = None,
) -> SearchResult:
    """Search a schedule of ``nfe`` steps for ``denoiser`` on ``path`` with the calibration
    noise ``x`` (at ``t_start``, default ``grid[0]``; default grid: uniform in ``t`` to the data
    point), ``rounds`` of coordinate descent against a reference with ``sub`` fine steps per
    interval. With ``approx`` the schedule teleports from ``t_start`` and its first time (the
    hand-over, initially ``grid[0]``) is searched too; with ``compensation`` each step's DC
    ratio as well (from one). With ``holdout`` (more calibration noise) a change is kept only
    if it does not raise the error there either."""
    from polyfold.core.samplers.compensation import _reference

    if not (isinstance(nfe, int) and nfe >= 2):
        raise InputError(f"nfe: expected a number of steps >= 2, got {nfe!r}")
    if not (isinstance(rounds, int) and rounds >= 0):
        raise InputError(f"rounds: expected a number of rounds >= 0, got {rounds!r}")
    started = time.perf_counter()
    g0 = uniform_t_grid(path, nfe, append_zero=True) if grid is None else check_grid(grid, path)
    if len(g0) != nfe + 1:
        raise InputError(f"grid: expected {nfe + 1} times for nfe={nfe}, got {len(g0)}")
    top = float(g0[0]) if t_start is None else float(t_start)
    top = float(g0[0]) if abs(top - float(g0[0])) <= 1e-6 else top  # grids clip to t_max
    if top < float(g0[0]) or (top > float(g0[0]) and approx is None):
        raise InputError(
            f"t_start: expected grid[0] = {float(g0[0])}, or a later time with approx, got {top}"
        )
    full = g0 if top == float(g0[0]) else torch.cat([torch.tensor([top], dtype=F64), g0])
    batches = [
        (b, _reference(denoiser, path, b, full, sub)[-1].to(F64))
        for b in (x, holdout)
        if b is not None
    ]

    def run(s: SolverSchedule, xb: Tensor) -> Tensor:
        out = usf(denoiser, path, xb, s.grid, schedule=s, approx=approx).x
        assert isinstance(out, Tensor)
        return out

    first = SolverSchedule.default(path, g0)
    if approx is not None:
        first = replace(first, teleport_from=top)
    if compensation:
        first = replace(first, ratios=(1.0,) * nfe)
    first = replace(first, variants=("bh2",) * nfe)
    judge = _Judge(batches, run, first)
    default_err = judge.errors[0]
    if rounds:  # UniPC-3 and the bh1 variant as other starting points
        third = tuple(max(1, min(3, i + 1, nfe - i)) for i in range(nfe))
        for start in ({"orders": third}, {"variants": ("bh1",) * nfe}):
            judge.offer(replace(judge.best, **start))
        for rho in _RHOS:  # the same end points, other spacings
            judge.offer(replace(judge.best, times=_respaced(judge.best.times, path, rho)))
    to_zero = float(g0[-1]) == zero_time(path)  # the last step's only choice: its order
    for _ in range(rounds):
        for i in range(nfe):
            for field, values in (
                ("orders", (1, 2, 3)),
                ("predictions", _KINDS),
                ("correctors", (True, False)),
                ("variants", _VARIANTS),
            ):
                if to_zero and i == nfe - 1 and field != "orders":
                    continue
                for v in values:
                    cur = list(getattr(judge.best, field))
                    if cur[i] != v:
                        cur[i] = v
                        changes: dict[str, Any] = {field: tuple(cur)}
                        judge.offer(replace(judge.best, **changes))
            for factor in (0.85, 0.95, 1.05, 1.15) if compensation else ():
                rs = list(judge.best.ratios or ())
                rs[i] *= factor
                judge.offer(replace(judge.best, ratios=tuple(rs)))
        for j in range(0 if approx is not None else 1, nfe):
            _move_time(judge, j, top, path.t_min)
    return SearchResult(
        judge.best,
        judge.errors[0],
        default_err,
        time.perf_counter() - started,
        judge.count,
        judge.errors[1] if holdout is not None else math.nan,
    )


_RHOS = (1.0, 2.0, 3.0, 7.0, math.inf)


def _respaced(times: tuple[float, ...], path: GaussianPath, rho: float) -> tuple[float, ...]:
    """``times`` with its first and last finite-noise points kept and the points between at
    uniform steps of ``s^(1/rho)``, ``s = sigma/alpha`` (Karras et al.'s grid; ``rho = inf``:
    uniform in log-SNR); a final data point stays."""
    noisy = times[:-1] if times[-1] == zero_time(path) else times
    lam = path.log_snr(torch.tensor(noisy, dtype=F64))
    inner = len(noisy)
    if inner < 3 or not bool(torch.isfinite(lam).all()):
        return times
    u = torch.linspace(0.0, 1.0, inner, dtype=F64)
    if math.isinf(rho):
        new = lam[0] + u * (lam[inner - 1] - lam[0])
    else:
        a, b = (torch.exp(-lam[[0, inner - 1]] / (2 * rho))).tolist()
        new = -2 * rho * torch.log(a + u * (b - a))
    mid = path.t_from_log_snr(new[1:-1]).tolist()
    out = (times[0], *mid, *times[inner - 1 :])
    if any(y >= x for x, y in itertools.pairwise(out)):
        return times
    return out


_FRACTIONS = (-0.5, -0.25, -0.1, -0.04, 0.04, 0.1, 0.25, 0.5)


def _move_time(judge: _Judge, j: int, top: float, t_min: float) -> None:
    """Time point ``j`` moved by fractions of the gap to a neighbour (``top`` bounds the first
    point), repeated while it improves (at most 8 times)."""
    for _ in range(8):
        improved = False
        for frac in _FRACTIONS:
            ts = list(judge.best.times)
            upper = top if j == 0 else ts[j - 1]
            new = ts[j] + frac * (upper - ts[j] if frac > 0 else ts[j] - ts[j + 1])
            if not ts[j + 1] < new <= upper or new < t_min or (j > 0 and new >= upper):
                continue
            ts[j] = new
            improved = judge.offer(replace(judge.best, times=tuple(ts))) or improved
        if not improved:
            break


def reference_end(
    denoiser: Denoiser, path: GaussianPath, x: Tensor, grid: Tensor | Sequence[float], sub: int = 16
) -> Tensor:
    """The end point (float64) of a fine UniPC-3 solve from ``x`` at ``grid[0]`` through the
    grid's times, ``sub`` steps per interval: what :func:`search_schedule` and
    :func:`schedule_error` measure schedules against."""
    from polyfold.core.samplers.compensation import _reference

    if not (isinstance(sub, int) and sub >= 2):
        raise InputError(f"sub: expected fine steps per interval >= 2, got {sub!r}")
    return _reference(denoiser, path, x, check_grid(grid, path), sub)[-1].to(F64)


def schedule_error(
    denoiser: Denoiser,
    path: GaussianPath,
    x: Tensor,
    schedule: SolverSchedule,
    *,
    approx: Approximation | None = None,
    sub: int = 16,
    reference: Tensor | None = None,
) -> float:
    """The RMS end-point error of ``schedule`` on the noise ``x`` (at its first time, or at
    ``teleport_from``) against a fine solve with ``sub`` steps per interval (or the given
    ``reference`` end points of ``x``, shared by schedules with the same start and end): a
    held-out calibration batch ranks schedules searched in different ways without the
    evaluation noise."""
    top = schedule.times[0] if schedule.teleport_from is None else schedule.teleport_from
    times = schedule.times if top == schedule.times[0] else (top, *schedule.times)
    if reference is not None and tuple(reference.shape) != tuple(x.shape):
        raise InputError(f"reference: expected the end points of x, shape {tuple(x.shape)}")
    ref = reference_end(denoiser, path, x, times, sub) if reference is None else reference.to(F64)
    out = usf(denoiser, path, x, schedule.grid, schedule=schedule, approx=approx).x
    assert isinstance(out, Tensor)
    return float((out.to(F64) - ref).pow(2).mean().sqrt())
