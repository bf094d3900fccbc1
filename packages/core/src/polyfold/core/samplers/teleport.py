r"""Analytical teleportation (Wang & Vastola, "The Unreasonable Effectiveness of Gaussian Score
Approximation for Diffusion Models"): skip the first part of the probability-flow trajectory in
closed form, then hand over to any sampler by name.

For data ``x0 ~ N(mu, S)``, ``S = U diag(lam) U^T``, and ``x_t = alpha_t x0 + sigma_t eps``:

- the denoiser is ``E[x0 | x_t] = mu + U diag(alpha_t lam / (alpha_t^2 lam + sigma_t^2)) U^T
  (x_t - alpha_t mu)``;
- the probability-flow ODE is linear and solved exactly from ``s`` to ``t`` by
  ``x_t = alpha_t mu + U diag(sqrt((alpha_t^2 lam + sigma_t^2) / (alpha_s^2 lam + sigma_s^2)))
  U^T (x_s - alpha_s mu)`` (each eigen-direction scales by the ratio of marginal deviations).

:class:`GaussianScore` fits ``mu, S`` to data; :class:`MixtureScore` is the coarse-grained
(k-means) Gaussian mixture, whose flow is integrated with a core sampler on its own closed-form
denoiser (no model calls). :func:`choose_skip` picks the hand-over time from data: on a
calibration batch carried along the approximation's flow, it accumulates the gap between the
model's and the approximation's data predictions into the state error it causes,
``sigma_t int (x0_model - x0_approx) d(alpha/sigma)`` (the data-prediction form of the ODE), and
skips as long as that error stays below ``tol`` times the state's scale. :func:`teleport` runs
the flow to the grid's first time and the named sampler from there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.samplers.grids import check_grid, log_snr_grid, uniform_t_grid, zero_time
from polyfold.core.samplers.registry import get_sampler
from polyfold.core.samplers.result import SampleResult
from polyfold.core.state import Mask, keep_padding

__all__ = [
    "Approximation",
    "GaussianScore",
    "MixtureScore",
    "SkipChoice",
    "choose_skip",
    "handover_grid",
    "teleport",
]


def _as_data(data: Tensor, name: str) -> Tensor:
    if not isinstance(data, Tensor) or not data.is_floating_point() or data.ndim < 2:
        raise InputError(f"{name}: expected a (N, ...) floating tensor of examples")
    if data.shape[0] < 2 or not bool(torch.isfinite(data).all()):
        raise InputError(f"{name}: expected at least 2 finite examples, got {data.shape[0]}")
    return data.reshape(data.shape[0], -1).to(F64)


def _level(path: GaussianPath, t: float) -> tuple[float, float]:
    tt = torch.tensor([t], dtype=F64)
    return float(path.alpha(tt)), float(path.sigma(tt))


class Approximation(Protocol):
    """What :func:`teleport` and :func:`choose_skip` need of an analytical score."""

    event_shape: tuple[int, ...]

    def x0(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """The closed-form data prediction ``E[x0 | x]`` at noise level ``(alpha, sigma)``."""
        ...

    def flow(self, x: Tensor, path: GaussianPath, t_from: float, t_to: float) -> Tensor:
        """The probability-flow ODE of the approximation from ``t_from`` down to ``t_to``."""
        ...


class _Analytic:
    """Shared by the approximations: shape checks and the closed-form model for samplers."""

    event_shape: tuple[int, ...]

    def x0(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        raise NotImplementedError

    def _flat(self, x: Tensor, name: str = "x") -> Tensor:
        if not isinstance(x, Tensor) or tuple(x.shape[1:]) != self.event_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"{name}: expected shape (B, {self.event_shape}), got {got}")
        return x.reshape(x.shape[0], -1).to(F64)

    def denoiser(self, path: GaussianPath) -> Denoiser:
        """The approximation as a :class:`~polyfold.core.denoiser.Denoiser` on ``path``."""

        def model(x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
            a, s = _level(path, float(t.reshape(-1)[0]))
            return self.x0(x, a, s)

        return as_denoiser(model, path, prediction="x0")


@dataclass(frozen=True, eq=False)
class GaussianScore(_Analytic):
    """The Gaussian ``N(mean, U diag(evals) U^T)`` of one example's flattened entries.

    Build it with :meth:`fit`; ``mean (D,)``, ``evals (D,)`` and ``evecs (D, D)`` are float64.
    """

    mean: Tensor
    evals: Tensor
    evecs: Tensor
    event_shape: tuple[int, ...]

    @classmethod
    def fit(cls, data: Tensor, *, shrinkage: float = 0.0) -> GaussianScore:
        """Mean and covariance of ``data (N, ...)``; ``shrinkage`` in ``[0, 1]`` mixes the
        covariance with its mean diagonal (for ``N`` below the dimension)."""
        flat = _as_data(data, "data")
        if not 0.0 <= shrinkage <= 1.0:
            raise InputError(f"shrinkage: expected a number in [0, 1], got {shrinkage!r}")
        mean = flat.mean(0)
        cov = torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1])
        cov = (1 - shrinkage) * cov + shrinkage * cov.diagonal().mean() * torch.eye(len(mean))
        evals, evecs = torch.linalg.eigh(cov)
        return cls(mean, evals.clamp_min(0.0), evecs, tuple(data.shape[1:]))

    @classmethod
    def from_moments(
        cls, mean: Tensor, cov: Tensor, event_shape: Sequence[int] | None = None
    ) -> GaussianScore:
        """The Gaussian of a known ``mean (D,)`` and symmetric ``cov (D, D)``."""
        mu = torch.as_tensor(mean, dtype=F64).reshape(-1)
        c = torch.as_tensor(cov, dtype=F64)
        if c.shape != (len(mu), len(mu)) or not torch.allclose(c, c.mT):
            raise InputError(f"cov: expected a symmetric ({len(mu)}, {len(mu)}) matrix")
        shape = (len(mu),) if event_shape is None else tuple(event_shape)
        if math.prod(shape) != len(mu):
            raise InputError(f"event_shape: expected {len(mu)} entries in all, got {shape}")
        evals, evecs = torch.linalg.eigh(c)
        return cls(mu, evals.clamp_min(0.0), evecs, shape)

    def x0(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        z = (self._flat(x) - alpha * self.mean) @ self.evecs
        gain = alpha * self.evals / (alpha**2 * self.evals + sigma**2)
        out = self.mean + (z * gain) @ self.evecs.T
        return out.reshape(x.shape).to(x.dtype)

    def log_marginal(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """``(B, P)``: ``log N(x; alpha mu, alpha^2 S + sigma^2 I)`` of each example at ``P``
        noise levels ``alpha, sigma (P,)`` (up to the constant ``-D/2 log 2 pi``)."""
        xz = self._flat(x) @ self.evecs  # (B, D)
        mz = self.mean @ self.evecs  # (D,)
        z = xz[:, None, :] - alpha[None, :, None] * mz  # (B, P, D)
        var = alpha[:, None] ** 2 * self.evals + sigma[:, None] ** 2  # (P, D)
        return -0.5 * (z**2 / var + var.log()).sum(-1)

    def flow(self, x: Tensor, path: GaussianPath, t_from: float, t_to: float) -> Tensor:
        (a_s, s_s), (a_t, s_t) = _level(path, t_from), _level(path, t_to)
        z = (self._flat(x) - a_s * self.mean) @ self.evecs
        scale = ((a_t**2 * self.evals + s_t**2) / (a_s**2 * self.evals + s_s**2)).sqrt()
        out = a_t * self.mean + (z * scale) @ self.evecs.T
        return out.reshape(x.shape).to(x.dtype)


@dataclass(frozen=True, eq=False)
class MixtureScore(_Analytic):
    """A coarse Gaussian mixture of the data: ``weights (K,)``, ``means (K, D)``, covariances
    ``evecs (K, D, D) diag(evals (K, D)) evecs^T``. Its flow is ``steps`` steps of
    ``sampler`` (by name) on its own closed-form denoiser, uniform in log-SNR.
    """

    weights: Tensor
    means: Tensor
    evals: Tensor
    evecs: Tensor
    event_shape: tuple[int, ...]
    steps: int = 32
    sampler: str = "dpm_solver_pp"

    @classmethod
    def fit(
        cls,
        data: Tensor,
        k: int,
        *,
        iters: int = 25,
        shrinkage: float = 0.1,
        generator: torch.Generator | None = None,
        steps: int = 32,
        sampler: str = "dpm_solver_pp",
    ) -> MixtureScore:
        """``k`` clusters of ``data (N, ...)`` by k-means (``iters`` Lloyd rounds from a
        k-means++ start), each with its weight, mean and covariance (``shrinkage`` towards its
        mean diagonal, so small clusters stay well posed)."""
        flat = _as_data(data, "data")
        n = flat.shape[0]
        if not (isinstance(k, int) and 1 <= k <= n // 2):
            raise InputError(f"k: expected a number of clusters in [1, N/2 = {n // 2}], got {k!r}")
        get_sampler(sampler, "gaussian")
        centers = flat[torch.randint(n, (1,), generator=generator)]
        for _ in range(1, k):
            d2 = torch.cdist(flat, centers).amin(1) ** 2
            pick = torch.multinomial((d2 + 1e-30).to(torch.float32), 1, generator=generator)
            centers = torch.cat([centers, flat[pick]])
        for _ in range(iters):
            assign = torch.cdist(flat, centers).argmin(1)
            for j in range(k):
                if bool((assign == j).any()):
                    centers[j] = flat[assign == j].mean(0)
        assign = torch.cdist(flat, centers).argmin(1)
        weights, evals, evecs = [], [], []
        for j in range(k):
            members = flat[assign == j]
            weights.append(len(members) / n)
            cov = torch.cov(members.T) if len(members) > 1 else torch.zeros(flat.shape[1:] * 2)
            cov = cov.reshape(flat.shape[1], flat.shape[1])
            diag = cov.diagonal().mean().clamp_min(1e-12)
            cov = (1 - shrinkage) * cov + shrinkage * diag * torch.eye(flat.shape[1], dtype=F64)
            e, v = torch.linalg.eigh(cov)
            evals.append(e.clamp_min(0.0))
            evecs.append(v)
        w = torch.tensor(weights, dtype=F64)
        keep = w > 0
        return cls(
            w[keep] / w[keep].sum(),
            centers[keep],
            torch.stack(evals)[keep],
            torch.stack(evecs)[keep],
            tuple(data.shape[1:]),
            steps,
            sampler,
        )

    def x0(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        diff = self._flat(x)[:, None, :] - alpha * self.means  # (B, K, D)
        z = torch.einsum("bkd,kde->bke", diff, self.evecs)
        var = alpha**2 * self.evals + sigma**2  # (K, D)
        logp = self.weights.log() - 0.5 * (z**2 / var + var.log()).sum(-1)
        resp = torch.softmax(logp, dim=1)  # (B, K)
        post = torch.einsum("bke,kde->bkd", z * alpha * self.evals / var, self.evecs)
        out = ((self.means + post) * resp[..., None]).sum(1)
        return out.reshape(x.shape).to(x.dtype)

    def flow(self, x: Tensor, path: GaussianPath, t_from: float, t_to: float) -> Tensor:
        if t_from == t_to:
            return x
        lam = path.log_snr(torch.tensor([t_from, t_to], dtype=F64))
        if math.isfinite(float(lam[0])):
            grid = log_snr_grid(path, self.steps, t_start=t_from, t_end=t_to)
        else:  # alpha = 0 at the start: uniform in t
            grid = uniform_t_grid(path, self.steps, t_start=t_from, t_end=t_to)
        out: Tensor = get_sampler(self.sampler)(self.denoiser(path), path, x, grid).x
        return out


def handover_grid(grid: Tensor | Sequence[float], t_first: float) -> Tensor:
    """The grid's points mapped affinely from ``[t_last, grid[0]]`` onto ``[t_last, t_first]``
    (its spacing kept, its first time moved to ``t_first``): where a sampler takes over."""
    g = torch.as_tensor(grid, dtype=F64)
    last, first = float(g[-1]), float(g[0])
    if not last < t_first <= first:
        raise InputError(f"t_first: expected a time in ({last}, {first}], got {t_first!r}")
    if t_first == first:
        return g.clone()
    return last + (g - last) * ((t_first - last) / (first - last))


@dataclass(frozen=True)
class SkipChoice:
    """The hand-over time :func:`choose_skip` found.

    Attributes:
        t_skip: the time to teleport to (the first time of the sampler's grid).
        fraction: ``(t_start - t_skip) / (t_start - t_min)``, the part of the time range skipped.
        times: the candidate times, from ``t_start`` down.
        errors: the estimated relative state error of teleporting to each candidate.
        nfe: the model calls the calibration made (one per candidate).
    """

    t_skip: float
    fraction: float
    times: list[float]
    errors: list[float]
    nfe: int

    def at(self, tol: float) -> float:
        """The hand-over time for another tolerance (the same calibration, no model call)."""
        if not (isinstance(tol, int | float) and tol > 0):
            raise InputError(f"tol: expected a number > 0, got {tol!r}")
        return self.times[_last_below(self.errors, tol)]


def _start(path: GaussianPath, t_start: float | None) -> float:
    """``t_start`` (default ``t_max``), a rounding above ``t_max`` clipped as grids are."""
    if t_start is None:
        return path.t_max
    start = float(t_start)
    return path.t_max if path.t_max < start <= path.t_max + 1e-6 else start


def _check_path(paths: Any, name: str) -> GaussianPath:
    if not isinstance(paths, GaussianPath):
        raise InputError(f"{name}: expected one GaussianPath (a tensor state), got {paths!r}")
    return paths


def choose_skip(
    denoiser: Denoiser,
    path: GaussianPath,
    approx: Approximation,
    x: Tensor,
    *,
    tol: float = 0.02,
    t_start: float | None = None,
    t_end: float | None = None,
    points: int = 32,
) -> SkipChoice:
    """The latest time the approximation carries the calibration batch ``x`` (noise at
    ``t_start``, default ``path.t_max``) to with an estimated relative state error below
    ``tol``, among ``points`` candidates uniform in ``t`` down to ``t_end`` (default a fifth
    of the time range above ``t_min``; the error is accumulated as the module doc says)."""
    _check_path(path, "path")
    if not (isinstance(tol, int | float) and tol > 0):
        raise InputError(f"tol: expected a number > 0, got {tol!r}")
    if not (isinstance(points, int) and points >= 2):
        raise InputError(f"points: expected a number of candidates >= 2, got {points!r}")
    start = _start(path, t_start)
    end = path.t_min + 0.2 * (path.t_max - path.t_min) if t_end is None else float(t_end)
    if not path.t_min <= end < start <= path.t_max:
        raise InputError(
            f"t_start, t_end: expected t_min <= t_end < t_start <= t_max, got {start}, {end}"
        )
    times = torch.linspace(start, end, points, dtype=F64).tolist()
    scale = float(_mean_variance(approx))
    errors: list[float] = []
    acc = torch.zeros(x.shape[0], math.prod(approx.event_shape), dtype=F64)
    prev: tuple[float, Tensor] | None = None
    xt = x
    for i, t in enumerate(times):
        if i:
            xt = approx.flow(xt, path, times[i - 1], t)
        a, s = _level(path, t)
        model = denoiser(xt, torch.full((x.shape[0],), t, dtype=x.dtype)).x0
        assert isinstance(model, Tensor)
        gap = (model.to(F64) - approx.x0(xt, a, s).to(F64)).reshape(x.shape[0], -1)
        r = a / s
        if prev is not None:
            acc += 0.5 * (r - prev[0]) * (gap + prev[1])
        prev = (r, gap)
        err = s * float(acc.pow(2).mean().sqrt()) / math.sqrt(a * a * scale + s * s)
        errors.append(err)
    t_skip = times[_last_below(errors, tol)]
    return SkipChoice(t_skip, (start - t_skip) / (start - path.t_min), times, errors, len(times))


def _last_below(errors: list[float], tol: float) -> int:
    """The last candidate of the first run of errors below ``tol`` (0 if none)."""
    last = 0
    for i, err in enumerate(errors):
        if err > tol:
            break
        last = i
    return last


def _mean_variance(approx: Approximation) -> Tensor:
    evals = getattr(approx, "evals", None)
    if not isinstance(evals, Tensor):
        return torch.tensor(1.0)
    weights = getattr(approx, "weights", None)
    if isinstance(weights, Tensor):
        return (weights[:, None] * evals).sum(0).mean()
    return evals.mean()


def teleport(
    denoiser: Denoiser,
    paths: GaussianPath,
    x: Tensor,
    grid: Tensor | Sequence[float],
    *,
    approx: Approximation,
    t_start: float | None = None,
    sampler: str = "unipc",
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: Any = None,
    callback: Any = None,
    **options: Any,
) -> SampleResult:
    """Teleport ``x`` (the state at ``t_start``, default ``paths.t_max``) along the
    approximation's closed-form flow to ``grid[0]``, then run ``sampler`` (by name, with its
    ``options``) on ``grid``. With ``grid[0] == t_start`` this is the sampler alone.

    Build the grid from the hand-over time, e.g. ``log_snr_grid(path, n, t_start=t_skip)``
    with ``t_skip`` from :func:`choose_skip`: the sampler's ``n`` calls then cover the rest.
    """
    path = _check_path(paths, "paths")
    spec = get_sampler(sampler, "gaussian")
    g = check_grid(grid, path)
    start = _start(path, t_start)
    t0 = float(g[0])
    if t0 > start or start > path.t_max:
        raise InputError(
            f"grid: expected its first time {t0} at or below t_start = {start} <= t_max"
        )
    if t0 <= zero_time(path):
        raise InputError("grid: its first time must lie above the data point")
    moved: Any = x if t0 == start else approx.flow(x, path, start, t0)
    if mask is not None:
        moved = keep_padding(moved, x, mask)
    common = {"generator": generator, "mask": mask, "noise": noise, "callback": callback}
    out: SampleResult = spec(
        denoiser, path, moved, g, **{k: v for k, v in common.items() if v is not None}, **options
    )
    return out
