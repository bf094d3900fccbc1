"""Decreasing time grids for the samplers, and the exposure-bias time shift.

A grid is a strictly decreasing float64 tensor of times ``t_0 > t_1 > ... > t_N`` (``N`` steps)
inside every path's ``[t_min, t_max]``. Its last point may instead be the path's *data point*
``t_zero = path.t_from_log_snr(+inf)``, where ``sigma = 0`` (``0`` for VP paths and
interpolants, ``-a/b`` for EDM, ``-inf`` for VE): the last step is then the final denoising step
``x <- alpha(t_zero) x0(x, t_{N-1})`` (one model call, the exact limit of every first-order
solver, and EDM's, DDIM's and DPM-Solver's last step), except for the Runge-Kutta solvers in
``variable="t"``, which integrate the flow velocity down to it. ``append_zero=True`` builds such
grids.

Grids are placed through the path's log-SNR ``lambda = log(alpha^2/sigma^2)`` and its inverse,
never a schedule-specific formula:

- :func:`uniform_t_grid`: uniform in ``t``;
- :func:`log_snr_grid`: uniform in ``lambda`` (DPM-Solver's ``logSNR`` spacing);
- :func:`karras_grid`: Karras et al.'s ``rho`` spacing of ``s = sigma/alpha = exp(-lambda/2)``,
  ``s_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``;
- :func:`quadratic_grid`: ``t = t_end + (t_start - t_end) u^2``, ``u`` uniform from 1 to 0
  (DDIM's ``quad`` spacing, dense near the data).

:class:`TimeShift` is the Time-Shift Sampler of Li et al. (ICLR 2024, "Alleviating Exposure Bias
in Diffusion Models through Sampling with Shifted Time Steps"): after each step down to a nominal
time ``t_next > cutoff``, the next model call and step start from the time ``t_s`` in a window of
``window + 1`` candidate steps around ``t_next`` whose noise variance best matches the current
sample's variance, per example.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_number
from polyfold.core.paths import GaussianPath

__all__ = [
    "TimeShift",
    "check_grid",
    "karras_grid",
    "log_snr_grid",
    "quadratic_grid",
    "uniform_t_grid",
    "zero_time",
]

_TOL = 1e-6


_ZERO_TIMES: dict[int, tuple[GaussianPath, float]] = {}


def zero_time(path: GaussianPath) -> float:
    """The data point ``t`` of ``path``, where ``sigma = 0``: ``t_from_log_snr(+inf)``
    (remembered per path object)."""
    hit = _ZERO_TIMES.get(id(path))
    if hit is not None and hit[0] is path:
        return hit[1]
    value = float(path.t_from_log_snr(torch.tensor(math.inf, dtype=F64)))
    if len(_ZERO_TIMES) >= 256:
        _ZERO_TIMES.clear()
    _ZERO_TIMES[id(path)] = (path, value)
    return value


def _paths(paths: GaussianPath | Mapping[str, GaussianPath]) -> list[tuple[str, GaussianPath]]:
    items = list(paths.items()) if isinstance(paths, Mapping) else [("path", paths)]
    for name, p in items:
        if not isinstance(p, GaussianPath):
            raise InputError(f"paths: expected a GaussianPath (or a dict of them), {name} is {p!r}")
    if not items:
        raise InputError("paths: expected at least one path")
    return items


def check_grid(
    grid: Tensor | Sequence[float], paths: GaussianPath | Mapping[str, GaussianPath]
) -> Tensor:
    """Validate a sampler grid; returns it as a 1-D float64 CPU tensor.

    Raises :class:`InputError` unless the grid has at least two points, is strictly decreasing,
    lies inside every path's ``[t_min, t_max]`` (a ``1e-6`` tolerance, clipped), except that its
    last point may be the data point :func:`zero_time` shared by every path.
    """
    try:
        # a list of Python floats goes straight to float64 (not through float32)
        g = grid if isinstance(grid, Tensor) else torch.as_tensor(grid, dtype=F64)
        g = g.detach().to(device="cpu", dtype=F64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"grid: expected a 1-D sequence of times, got {grid!r:.80}") from err
    if g.ndim != 1 or g.numel() < 2:
        raise InputError(f"grid: expected a 1-D tensor of at least 2 times, got {tuple(g.shape)}")
    ts: list[float] = g.tolist()
    if any(math.isnan(t) for t in ts) or any(math.isinf(t) for t in ts[:-1]):
        raise InputError("grid: expected finite times (only a final data point may be -inf)")
    if any(b >= a for a, b in itertools.pairwise(ts)):
        raise InputError(
            "grid: expected strictly decreasing times (t = 1 is noise, t = 0 is data), "
            f"got {ts[:8]}"
        )
    items = _paths(paths)
    zeros = {zero_time(p) for _, p in items}
    last_is_zero = len(zeros) == 1 and ts[-1] in zeros
    n_body = len(ts) - 1 if last_is_zero else len(ts)
    for name, p in items:
        lo, hi = p.t_min - _TOL * max(1.0, abs(p.t_min)), p.t_max + _TOL * max(1.0, p.t_max)
        if max(ts[:n_body]) > hi or min(ts[:n_body]) < lo:
            raise InputError(
                f"grid: times must lie in [t_min, t_max] = [{p.t_min}, {p.t_max}] of {name} "
                f"{p!r} (or end at its data point t = {zero_time(p)}), got range "
                f"[{min(ts)}, {max(ts)}]"
            )
        ts[:n_body] = [min(max(t, p.t_min), p.t_max) for t in ts[:n_body]]
    return torch.tensor(ts, dtype=F64)


def _ends(
    path: GaussianPath, n: int, t_start: float | None, t_end: float | None, append_zero: bool
) -> tuple[int, float, float]:
    if not isinstance(path, GaussianPath):
        raise InputError(f"path: expected a GaussianPath, got {path!r}")
    if not (isinstance(n, int) and n >= 1):
        raise InputError(f"n: expected a number of steps >= 1, got {n!r}")
    start = path.t_max if t_start is None else float(t_start)
    end = path.t_min if t_end is None else float(t_end)
    if not (path.t_min <= end < start <= path.t_max):
        raise InputError(
            f"t_start, t_end: expected t_min <= t_end < t_start <= t_max = "
            f"[{path.t_min}, {path.t_max}], got t_start={start}, t_end={end}"
        )
    points = n if append_zero else n + 1
    if append_zero and zero_time(path) >= end:
        raise InputError(f"append_zero: the data point of {path!r} is not below t_end={end}")
    return points, start, end


def _finish(t: Tensor, path: GaussianPath, start: float, end: float, append_zero: bool) -> Tensor:
    t = t.to(F64).clamp(end, start)
    t[0] = start
    if t.numel() > 1:
        t[-1] = end
    if append_zero:
        t = torch.cat([t, torch.tensor([zero_time(path)], dtype=F64)])
    return t


def _lam(path: GaussianPath, t: float, name: str) -> float:
    lam = float(path.log_snr(torch.tensor(t, dtype=F64)))
    if not math.isfinite(lam):
        raise InputError(
            f"{name}: the log-SNR of {path!r} is infinite at t = {t}; pass a {name} inside (0, 1)"
        )
    return lam


def uniform_t_grid(
    path: GaussianPath,
    n: int,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    append_zero: bool = False,
) -> Tensor:
    """``n`` steps uniform in ``t`` from ``t_start`` (default ``t_max``) to ``t_end`` (``t_min``).

    With ``append_zero`` the last of the ``n`` steps goes from ``t_end`` to the data point.
    """
    points, start, end = _ends(path, n, t_start, t_end, append_zero)
    return _finish(torch.linspace(start, end, points, dtype=F64), path, start, end, append_zero)


def log_snr_grid(
    path: GaussianPath,
    n: int,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    append_zero: bool = False,
) -> Tensor:
    """``n`` steps uniform in log-SNR from ``t_start`` to ``t_end`` (finite log-SNR at both)."""
    points, start, end = _ends(path, n, t_start, t_end, append_zero)
    lam = torch.linspace(_lam(path, start, "t_start"), _lam(path, end, "t_end"), points, dtype=F64)
    return _finish(path.t_from_log_snr(lam), path, start, end, append_zero)


def karras_grid(
    path: GaussianPath,
    n: int,
    *,
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    append_zero: bool = False,
) -> Tensor:
    """Karras et al.'s ``rho`` grid of ``s = sigma/alpha`` mapped to ``t`` through the log-SNR.

    ``sigma_min``/``sigma_max`` are in ``s`` units (EDM's sigma); by default ``s(t_min)`` and
    ``s(t_max)``. ``append_zero`` makes the last of the ``n`` steps go to ``s = 0``, as EDM.
    """
    if not (isinstance(rho, int | float) and rho > 0):
        raise InputError(f"rho: expected a number > 0, got {rho!r}")

    def t_of(s: float, name: str) -> float:
        check_number(name, s, strict=True)
        return float(path.t_from_log_snr(torch.tensor(-2.0 * math.log(s), dtype=F64)))

    t_start = None if sigma_max is None else t_of(sigma_max, "sigma_max")
    t_end = None if sigma_min is None else t_of(sigma_min, "sigma_min")
    points, start, end = _ends(path, n, t_start, t_end, append_zero)
    s_max = math.exp(-0.5 * _lam(path, start, "sigma_max"))
    s_min = math.exp(-0.5 * _lam(path, end, "sigma_min"))
    u = torch.linspace(0.0, 1.0, points, dtype=F64)
    s = (s_max ** (1 / rho) + u * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return _finish(path.t_from_log_snr(-2.0 * torch.log(s)), path, start, end, append_zero)


def quadratic_grid(
    path: GaussianPath,
    n: int,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    append_zero: bool = False,
) -> Tensor:
    """``t = t_end + (t_start - t_end) u^2`` with ``u`` uniform from 1 to 0 (dense near data)."""
    points, start, end = _ends(path, n, t_start, t_end, append_zero)
    u = torch.linspace(1.0, 0.0, points, dtype=F64)
    return _finish(end + (start - end) * u**2, path, start, end, append_zero)


@dataclass(frozen=True)
class TimeShift:
    """The Time-Shift Sampler's rule (Li et al., ICLR 2024), used by :func:`ddim`/:func:`ddpm`.

    After a step lands on the nominal time ``t_next`` with ``t_next > cutoff``, the candidates
    ``tau_j = t_next + j * step``, ``j = -window//2 .. window//2`` (kept inside ``[t_min, t_max]``
    and above the following grid time) are scored per example by
    ``| Var(x) - (sigma(tau)^2 + data_var * alpha(tau)^2) |``, with ``Var(x)`` the (unbiased)
    variance of the example's valid entries; the next model call and step start from the best
    ``tau`` instead of ``t_next``. The paper (and its code) matches ``Var(x)`` to
    ``1 - abar(tau) = sigma^2``, i.e. ``data_var = 0``; ``step`` is one training step of the
    discrete model (``1/n`` for :class:`~polyfold.core.paths.DiscreteDDPM`, default ``1/1000``).
    ``cutoff`` is a time: the paper's cutoff step ``c`` of an ``n``-step model is ``(c + 1)/n``.
    """

    window: int
    cutoff: float
    step: float | None = None
    data_var: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.window, int) and self.window >= 0):
            raise InputError(f"window: expected an integer >= 0, got {self.window!r}")
        if not (isinstance(self.cutoff, int | float) and math.isfinite(self.cutoff)):
            raise InputError(f"cutoff: expected a time in [0, 1], got {self.cutoff!r}")
        if self.step is not None and not (isinstance(self.step, int | float) and self.step > 0):
            raise InputError(f"step: expected a number > 0, got {self.step!r}")
        if not (isinstance(self.data_var, int | float) and self.data_var >= 0):
            raise InputError(f"data_var: expected a number >= 0, got {self.data_var!r}")

    def candidates(self, path: GaussianPath, t_next: float, t_after: float) -> Tensor:
        """The candidate times around ``t_next`` (float64), always including ``t_next``."""
        step = self.step if self.step is not None else 1.0 / getattr(path, "n", 1000)
        half = self.window // 2
        tau = t_next + step * torch.arange(-half, half + 1, dtype=F64)
        keep = (tau >= path.t_min) & (tau <= path.t_max) & (tau > t_after)
        keep[half] = True
        return tau[keep]

    def select(self, variance: Tensor, path: GaussianPath, candidates: Tensor) -> Tensor:
        """Per example, the candidate whose noise variance is closest to ``variance`` ``(B,)``."""
        target = path.sigma(candidates) ** 2 + self.data_var * path.alpha(candidates) ** 2
        dist = (variance.to(F64)[:, None] - target.to(variance.device)[None, :]).abs()
        return candidates.to(variance.device)[dist.argmin(dim=1)]
