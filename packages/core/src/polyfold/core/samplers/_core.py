"""Machinery every sampler shares: validation, noise levels, counted model calls, masks.

A :class:`Run` holds one sampler call: the validated grid, the noise level of every key's path at
every grid point (:class:`Level`, float64 Python numbers), the denoiser with its call count, the
mask and the generator. Updates are linear combinations with Python-float coefficients done by
:func:`lincomb` (the fused :func:`~polyfold.core.ops.multistep.multistep_update` on GPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, NonFiniteError
from polyfold.core.ops._dispatch import use_triton
from polyfold.core.ops.multistep import MAX_TERMS, Scalar, multistep_update
from polyfold.core.paths import GaussianPath, Paths
from polyfold.core.samplers.grids import check_grid, zero_time
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State, keep_padding, randn_like
from polyfold.core.state import map_state as smap
from polyfold.core.state import tree_map as tmap

__all__ = ["Level", "NoiseFn", "Paths", "Run", "lincomb", "smap", "tmap"]

#: ``noise(x, generator)``: standard normal noise shaped like the state ``x`` (e.g. symmetric
#: adjacency noise for graphs); the default draws i.i.d. entries.
NoiseFn = Callable[[State, "torch.Generator | None"], State]


@dataclass(frozen=True, slots=True)
class Level:
    """Noise level of one path at one time: ``alpha``, ``sigma``, the half log-SNR
    ``ell = log(alpha / sigma)`` (``+inf`` at the data point, ``-inf`` where ``alpha = 0``) and
    the time derivatives ``d_alpha``, ``d_sigma``."""

    t: float
    alpha: float
    sigma: float
    ell: float
    d_alpha: float
    d_sigma: float


def levels(
    path: GaussianPath, ts: Tensor, *, zero_last: bool = False, derivs: bool = True
) -> list[Level]:
    """:class:`Level` of ``path`` at each time of ``ts`` (float64); ``zero_last``: the last
    time is the data point (``sigma = 0`` exactly); without ``derivs`` the derivatives are NaN."""
    n = len(ts)
    alpha: list[float] = path.alpha(ts).tolist()
    ell = [0.5 * lam for lam in path.log_snr(ts).tolist()]
    # sigma/alpha = exp(-ell) on every Gaussian path; where alpha = 0 ask the path
    sigma = [a * math.exp(-e) if a > 0 else math.nan for a, e in zip(alpha, ell, strict=True)]
    if any(a <= 0 for a in alpha):
        exact: list[float] = path.sigma(ts).tolist()
        sigma = [s if a > 0 else x for s, a, x in zip(sigma, alpha, exact, strict=True)]
    nan = [math.nan] * n
    cols = [
        ts.tolist(),
        alpha,
        sigma,
        ell,
        path.d_alpha(ts).tolist() if derivs else nan,
        path.d_sigma(ts).tolist() if derivs else nan,
    ]
    out = [Level(*row) for row in zip(*cols, strict=True)]
    if zero_last:
        last = out[-1]
        out[-1] = Level(last.t, last.alpha, 0.0, math.inf, last.d_alpha, last.d_sigma)
    return out


def _coefs(lv: Level) -> tuple[float, ...]:
    """``(alpha, sigma[, d_alpha, d_sigma])`` for a denoiser's ``at_levels``."""
    if math.isnan(lv.d_alpha):
        return (lv.alpha, lv.sigma)
    return (lv.alpha, lv.sigma, lv.d_alpha, lv.d_sigma)


def lincomb(x: Tensor, a: float, coeffs: Sequence[Scalar], terms: Sequence[Tensor]) -> Tensor:
    """A new tensor ``a x + sum_i coeffs[i] terms[i]`` (zero numbers skipped).

    Coefficients are Python numbers or 0-d tensors (never read back to the host). Where the
    Triton kernel of :func:`~polyfold.core.ops.multistep.multistep_update` runs (CUDA), and for
    half-precision states (float32 accumulation), the update is that fused op; elsewhere an
    ``axpy`` chain (``k + 1`` passes, cheaper than the op's plain-PyTorch reference on CPU).
    """
    pairs = [
        (c, d) for c, d in zip(coeffs, terms, strict=True) if isinstance(c, Tensor) or c != 0.0
    ]
    fused = x.dtype in (torch.float16, torch.bfloat16) or (
        x.is_cuda and use_triton(x, *(d for _, d in pairs))
    )
    if fused:
        out = x.clone()
        for i in range(0, max(len(pairs), 1), MAX_TERMS):
            chunk = pairs[i : i + MAX_TERMS]
            multistep_update(
                out, a if i == 0 else 1.0, [c for c, _ in chunk], [d for _, d in chunk]
            )
        return out
    out = torch.mul(x, a)
    for c, d in pairs:
        if isinstance(c, Tensor):
            out.addcmul_(d, c)
        else:
            out.add_(d, alpha=c)
    return out


def _leaves(x: State) -> list[tuple[str, Tensor]]:
    if isinstance(x, Mapping):
        if not x:
            raise InputError("x: expected a non-empty dict of tensors")
        return list(x.items())
    return [("x", x)]


def all_finite(x: State) -> Tensor:
    """A 0-d bool tensor (no host sync): every entry of every leaf of ``x`` is finite."""
    flags = [torch.isfinite(xi.detach()).all() for _, xi in _leaves(x)]
    return flags[0] if len(flags) == 1 else torch.stack(flags).all()


def _layout(x: Any) -> list[tuple[str, str, tuple[int, ...], Any]] | str:
    """A state's structure (dict or tensor), keys, shapes and dtypes, for comparisons."""
    leaves = list(x.items()) if isinstance(x, Mapping) else [("tensor", x)]
    if not all(isinstance(v, Tensor) for _, v in leaves):
        return f"a {type(x).__name__} that is not a state"
    return [(type(x).__name__, k, tuple(v.shape), v.dtype) for k, v in leaves]


class Run:
    """One sampler call: validated inputs, noise levels on the grid, counted model calls.

    Args:
        name: the sampler, for messages.
        denoiser: the :class:`~polyfold.core.denoiser.Denoiser`.
        paths: one path, or a dict with one path per key of a dict state.
        x: the initial state at ``grid[0]``.
        grid: decreasing times (see :mod:`polyfold.core.samplers.grids`).
        mask: validity mask(s); padded entries are kept untouched.
        generator: for every random draw.
        noise: a :data:`NoiseFn` drawing the sampler's Gaussian noise (default i.i.d.).
        stochastic: the sampler draws noise from the reverse SDE (refuses non-Gaussian paths).
        one_log_snr: the sampler integrates in ``sigma/alpha`` and needs every key to share one
            log-SNR schedule.
        derivs: the sampler reads ``d_alpha``, ``d_sigma`` of the levels (NaN otherwise).
        callback: a :data:`~polyfold.core.samplers.result.StepCallback`, called by
            :meth:`report` once per step.
    """

    def __init__(
        self,
        name: str,
        denoiser: Denoiser,
        paths: Paths,
        x: State,
        grid: Tensor | Sequence[float],
        *,
        mask: Mask = None,
        generator: torch.Generator | None = None,
        noise: NoiseFn | None = None,
        stochastic: bool = False,
        one_log_snr: bool = False,
        derivs: bool = False,
        callback: StepCallback | None = None,
    ) -> None:
        self.name, self.derivs = name, derivs
        if not callable(denoiser):
            raise InputError(f"{name}: denoiser must be callable (x, t) -> Denoised")
        if callback is not None and not callable(callback):
            raise InputError(f"{name}: callback must be callable (step, t, x, x0)")
        self.callback = callback
        if noise is not None and not callable(noise):
            raise InputError(f"{name}: noise must be callable (x, generator) -> state")
        self.noise_fn = noise
        leaves = _leaves(x)
        for key, xi in leaves:
            if not isinstance(xi, Tensor) or not xi.is_floating_point() or xi.ndim < 1:
                raise InputError(f"{name}: x[{key}] must be a batch-first floating tensor")
        self.batch = leaves[0][1].shape[0]
        if any(xi.shape[0] != self.batch for _, xi in leaves):
            raise InputError(f"{name}: every key of x must have the same batch size")
        if isinstance(x, Mapping):
            if isinstance(paths, Mapping) and set(paths) != set(x):
                raise InputError(f"paths: keys {sorted(paths)} differ from x's {sorted(x)}")
            self.paths: Any = (
                {k: paths[k] for k in x} if isinstance(paths, Mapping) else dict.fromkeys(x, paths)
            )
            path_list = list(self.paths.values())
        else:
            if isinstance(paths, Mapping):
                raise InputError("paths: a dict of paths needs a dict state x")
            self.paths = paths
            path_list = [paths]
        for p in path_list:
            if not isinstance(p, GaussianPath):
                raise InputError(f"paths: expected GaussianPath objects, got {p!r}")
            if stochastic and not p.gaussian:
                raise InputError(f"{name}: {p!r} has no Gaussian SDE; use a deterministic sampler")
        self.ref_path: GaussianPath = path_list[0]
        # finiteness of the start and of the state after each step: 0-d flags, read once at the end
        self._finite: list[Tensor] = [all_finite(x)]
        self.grid = check_grid(grid, self.paths)
        self.t = self.grid.tolist()
        self.steps = len(self.t) - 1
        self._index = {t: i for i, t in enumerate(self.t)}
        self.ends_at_zero = self.t[-1] == zero_time(self.ref_path) and all(
            self.t[-1] == zero_time(p) for p in path_list
        )
        self.levels: Any = self._levels_of(self.grid, zero_last=self.ends_at_zero)
        self._trees = [tmap(lambda lvs, i=i: lvs[i], self.levels) for i in range(len(self.t))]
        if one_log_snr and len({id(p) for p in path_list}) > 1:
            ref = [lv.ell for lv in self.level_list(0)]
            for key, lvs in self.levels.items():
                if any(
                    abs(lv.ell - r) > 1e-9 * max(1.0, abs(r))
                    for lv, r in zip(lvs, ref, strict=True)
                    if math.isfinite(r)
                ):
                    raise InputError(
                        f"{name}: key {key!r} has a different log-SNR schedule from the first "
                        "key; this sampler integrates in sigma/alpha and needs one schedule"
                    )
        self.denoiser, self.mask, self.generator = denoiser, mask, generator
        self._at_levels = getattr(denoiser, "at_levels", None)
        if mask is not None:
            keep_padding(x, x, mask)  # validates the mask against the state
        self.device = leaves[0][1].device
        self.t_dtype = F64 if any(xi.dtype == F64 for _, xi in leaves) else torch.float32
        self.nfe = 0

    # -- levels ---------------------------------------------------------------------------
    def lv(self, i: int) -> Any:
        """The :class:`Level` tree (one per key) at grid point ``i``."""
        return self._trees[i]

    def level_list(self, i: int) -> list[Level]:
        """Every key's level at grid point ``i``, as a list."""
        lv = self.lv(i)
        return list(lv.values()) if isinstance(lv, dict) else [lv]

    def _levels_of(self, ts: Tensor, zero_last: bool = False) -> Any:
        """Per key, the :class:`Level` list at ``ts`` (each distinct path evaluated once)."""
        done: dict[int, list[Level]] = {}

        def one(p: GaussianPath) -> list[Level]:
            if id(p) not in done:
                done[id(p)] = levels(p, ts, zero_last=zero_last, derivs=self.derivs)
            return done[id(p)]

        return tmap(one, self.paths)

    def at_many(self, ts: Sequence[float]) -> list[Any]:
        """The :class:`Level` trees at off-grid times ``ts`` (stages), in one evaluation."""
        if not ts:
            return []
        per_key = self._levels_of(torch.tensor(list(ts), dtype=F64))
        return [tmap(lambda lvs, i=i: lvs[i], per_key) for i in range(len(ts))]

    def at(self, t: float) -> Any:
        """The :class:`Level` tree at an off-grid time ``t`` (a stage of a step)."""
        return self.at_many([t])[0]

    def t_of_ells(self, ells: Sequence[float]) -> list[float]:
        """The times at which the reference path has half log-SNRs ``ells``."""
        if not ells:
            return []
        lam = torch.tensor([2.0 * e for e in ells], dtype=F64)
        out: list[float] = self.ref_path.t_from_log_snr(lam).tolist()
        return out

    def t_of_ell(self, ell: float) -> float:
        """The time at which the reference path (the first key's) has half log-SNR ``ell``."""
        return float(self.ref_path.t_from_log_snr(torch.tensor(2.0 * ell, dtype=F64)))

    def level_paths(self) -> list[GaussianPath]:
        """Every key's path, in key order."""
        return list(self.paths.values()) if isinstance(self.paths, dict) else [self.paths]

    def ref(self, lv: Any) -> Level:
        """The reference path's level in a level tree."""
        out: Level = next(iter(lv.values())) if isinstance(lv, dict) else lv
        return out

    def final(self, i: int) -> bool:
        """Whether step ``i`` ends at the data point (the final denoising step)."""
        return self.ends_at_zero and i == self.steps - 1

    # -- model calls, noise, masks ---------------------------------------------------------
    def denoise(self, x: State, t: float | Tensor, lv: Any = None) -> Denoised:
        """One counted denoiser call at time ``t`` (a number, or ``(B,)`` per example).

        For a number, the level tree ``lv`` at ``t`` (looked up on the grid when not given) goes
        to denoisers with an ``at_levels`` method, which then skip evaluating the paths.
        """
        if isinstance(t, Tensor):
            tt = t.to(device=self.device, dtype=self.t_dtype)
            out = self.denoiser(x, tt)
        else:
            tt = torch.full((self.batch,), t, dtype=self.t_dtype, device=self.device)
            if lv is None and t in self._index:
                lv = self.lv(self._index[t])
            if self._at_levels is None or lv is None:
                out = self.denoiser(x, tt)
            else:
                out = self._at_levels(x, tt, tmap(_coefs, lv))
        self.nfe += 1
        if not isinstance(out, Denoised):
            raise InputError(
                f"{self.name}: the denoiser must return a Denoised(x0, eps), got "
                f"{type(out).__name__}; wrap a network with polyfold.core.denoiser.as_denoiser"
            )
        return out

    def noise(self, x: State) -> State:
        """Standard normal noise shaped like ``x``, from the run's generator (and noise fn)."""
        if self.noise_fn is None:
            out: State = randn_like(x, generator=self.generator)
            return out
        out = self.noise_fn(x, self.generator)
        if _layout(out) != _layout(x):
            raise InputError(f"{self.name}: noise returned {_layout(out)}; expected {_layout(x)}")
        return out

    def keep(self, new: State, old: State) -> State:
        """``new`` on valid entries, ``old`` on padding."""
        return new if self.mask is None else keep_padding(new, old, self.mask)

    def report(self, i: int, x: State, x0: State | None) -> State:
        """Step ``i`` moved the state to ``x`` at ``grid[i + 1]``: callback; return ``x``."""
        self._finite.append(all_finite(x))
        if self.callback is not None:
            self.callback(i, self.t[i + 1], x, x0)
        return x

    def denoise_to_zero(self, d: Denoised, x: State) -> State:
        """The final denoising step to the data point: ``alpha(t_zero) x0`` (reported)."""
        out = self.keep(smap(lambda x0, lv: x0 * lv.alpha, d.x0, self.lv(self.steps)), x)
        return self.report(self.steps - 1, out, d.x0)

    def result(self, x: State, times: Tensor | None = None) -> SampleResult:
        """The run's :class:`SampleResult`; raises :class:`NonFiniteError` naming the sampler,
        the first step whose state was not finite and the path, instead of returning NaN."""
        flags = torch.stack([f.to(self.device) for f in [*self._finite, all_finite(x)]])
        if not bool(flags.all()):
            self._raise_non_finite(int((~flags).nonzero()[0]))
        return SampleResult(x=x, nfe=self.nfe, grid=self.grid, times=times)

    def _raise_non_finite(self, first: int) -> None:
        where = f"{self.name} on {self.paths!r}"
        if first == 0:
            raise NonFiniteError(f"{where}: the starting state x holds NaN or infinite values")
        step = min(first, self.steps)
        raise NonFiniteError(
            f"{where}: the state holds NaN or infinite values from step {step} of {self.steps} "
            f"(t = {self.t[step - 1]:.6g} -> {self.t[step]:.6g}) on; check the model's "
            "outputs at these times and that the grid lies inside the times it was trained on"
        )
