r"""DPM-Solver-v3 (Zheng et al. 2023) with its empirical model statistics (EMS).

In the half log-SNR ``ell = log(alpha/sigma)`` the probability-flow ODE is
``dx/dell = (d log alpha/dell) x - sigma eps``. With per-dimension coefficients ``l, s, b`` of
``ell`` (the EMS, :class:`EMS`) write ``N = sigma eps - l x`` and ``f = N/alpha``, and let
``L, S`` be the integrals of ``l, s`` from the step's start ``ell_s``. Then exactly

    x_t = (alpha_t/alpha_s) e^{-L_t} x_s - alpha_t e^{-L_t} int_{ell_s}^{ell_t} e^{L+S} (g + beta),

    g(ell) = e^{-S} f(ell) - beta(ell),   beta(ell) = int_{ell_s}^{ell} e^{-S} b.

The solver expands ``g`` (nearly constant when ``df/dell ~ s f + b``) in a polynomial through the
last model outputs (``g_j`` from ``f_j`` at their ``ell_j``) and integrates it exactly against
the weights ``J_k = int e^{L+S} u^k/k! dell`` (``u = (ell - ell_s)/h``). With ``l, s, b``
linear between the EMS knots (constant beyond), ``L`` and ``S`` are exact; ``J_k``, ``beta``
and ``int e^{L+S} beta`` are composite Simpson sums on panels of at most 0.025 in ``ell``
(float64, on the host; ~1e-10 relative). Multistep predictor of order
``p`` (orders ramp up from 1; ``lower_order_final`` as DPM-Solver++ here) and, as the paper,
a corrector: after the model call at ``x_t``, the step ``s -> t`` is redone with the new output
(order ``p + 1``), keeping ``N_t`` and replacing ``x_t`` (no extra call). The last step is not
corrected; a step to the data point is the final denoising step.

``f`` reads both members of the denoiser's pair, ``N = (1 - l) sigma eps - l alpha x0`` (equal to
``sigma eps - l x`` for a consistent pair): with the trivial EMS ``l = 1, s = b = 0`` the solver
is the data-prediction multistep solver (DPM-Solver++ with the exact integral of the
interpolating polynomial: DDIM at order 1, DPM-Solver++(3M) at order 3), and with
``l = 0, s = -1, b = 0`` the noise-prediction one (DPM-Solver), up to the quadrature error.

:func:`compute_ems` estimates the EMS from the model on data (the paper's optimal choices, on
``x_ell = alpha x0 + sigma z`` from data ``x0``, the model's marginal when it is exact):
``l = E[diag(d(sigma eps)/dx)]`` (exact diagonal for small ``d``, else Rademacher
``v * (v^T J)``), and ``(s, b)`` the least-squares fit of ``f' = df/dell`` along the ODE
(central finite differences of step ``fd_step`` in ``ell``, plus ``-l' x/alpha`` from the
fitted ``l``) by ``s f + b``: ``s = Cov(f', f)/Var(f)``, ``b = E f' - s E f``.
Not implemented: the paper's pseudo-order and half-corrector variants for guided sampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.samplers._core import Level, Run
from polyfold.core.samplers._expint import _lagrange
from polyfold.core.samplers.dpm_solver import _LOWER_ORDER_FINAL_STEPS
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State

__all__ = ["EMS", "compute_ems", "dpm_solver_v3"]

_PANEL = 0.025  # largest Simpson panel (in ell) of the step integrals


@dataclass(frozen=True)
class EMS:
    """Empirical model statistics on increasing half log-SNR knots ``ell`` (``(K,)``).

    ``l``, ``s``, ``b`` have shape ``(K, *event)``, ``event`` broadcastable against one example
    (``()`` for shared scalars); float64 on the host. Between knots they are linear (so their
    integrals ``L``, ``S`` are exact piecewise quadratics), beyond them constant.
    """

    ell: Tensor
    l: Tensor  # noqa: E741 - the paper's name
    s: Tensor
    b: Tensor

    def __post_init__(self) -> None:
        ell = self.ell
        if not isinstance(ell, Tensor) or ell.ndim != 1 or ell.numel() < 1:
            raise InputError("ems.ell: expected a 1-D tensor of knots")
        if ell.numel() > 1 and not bool((ell[1:] > ell[:-1]).all()):
            raise InputError("ems.ell: expected strictly increasing half log-SNR knots")
        for name in ("l", "s", "b"):
            v = getattr(self, name)
            if not isinstance(v, Tensor) or v.shape[:1] != ell.shape or v.shape != self.l.shape:
                raise InputError(f"ems.{name}: expected shape (K, *event) with K = {ell.numel()}")
        for name in ("ell", "l", "s", "b"):
            object.__setattr__(self, name, getattr(self, name).detach().to("cpu", F64))
        # cumulative trapezoid (exact for piecewise-linear l, s) from the first knot
        gaps = (self.ell[1:] - self.ell[:-1]).reshape(-1, *([1] * len(self.event_shape)))

        def cum(v: Tensor) -> Tensor:
            return torch.cat([torch.zeros_like(v[:1]), (0.5 * gaps * (v[1:] + v[:-1])).cumsum(0)])

        object.__setattr__(self, "_cum", (cum(self.l), cum(self.s)))

    @classmethod
    def trivial(cls, kind: Literal["x0", "eps"] = "x0", event_shape: Sequence[int] = ()) -> EMS:
        """``l = 1, s = b = 0`` (``"x0"``: DPM-Solver++) or ``l = 0, s = -1, b = 0``
        (``"eps"``: DPM-Solver, ``g = e^{ell_s} f = e^{ell_s - ell} eps``)."""
        shape = (1, *event_shape)
        zero, one = torch.zeros(shape, dtype=F64), torch.ones(shape, dtype=F64)
        ell = torch.zeros(1, dtype=F64)
        return cls(ell, one, zero, zero) if kind == "x0" else cls(ell, zero, -one, zero)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of ``l``, ``s``, ``b`` at one knot."""
        return tuple(self.l.shape[1:])

    def _locate(self, ells: Tensor) -> tuple[Tensor, Tensor]:
        """Knot index ``i`` (clamped) and offset ``ell - ell_i`` (clamped into the knot range)."""
        k = self.ell.numel()
        i = (torch.searchsorted(self.ell, ells, right=True) - 1).clamp(0, max(k - 2, 0))
        inside = ells.clamp(self.ell[0], self.ell[-1])
        return i, (inside - self.ell[i]).reshape(-1, *([1] * len(self.event_shape)))

    def values(self, ells: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(l, s, b)`` at the half log-SNRs ``ells`` (``(P,)``), each ``(P, *event)``."""
        if self.ell.numel() == 1:
            return tuple(v.expand(ells.numel(), *v.shape[1:]) for v in (self.l, self.s, self.b))  # type: ignore[return-value]
        i, off = self._locate(ells)
        gap = (self.ell[i + 1] - self.ell[i]).reshape(off.shape)
        return tuple(v[i] + (v[i + 1] - v[i]) * (off / gap) for v in (self.l, self.s, self.b))  # type: ignore[return-value]

    def integrals(self, ells: Tensor) -> tuple[Tensor, Tensor]:
        """``(L, S)``: the integrals of ``l``, ``s`` from the first knot to ``ells``, exact."""
        outside = (ells - ells.clamp(self.ell[0], self.ell[-1])).reshape(
            -1, *([1] * len(self.event_shape))
        )
        if self.ell.numel() == 1:
            return self.l[0] * outside, self.s[0] * outside
        i, off = self._locate(ells)
        gap = (self.ell[i + 1] - self.ell[i]).reshape(off.shape)
        out = []
        for v, c in zip((self.l, self.s), self._cum, strict=True):  # type: ignore[attr-defined]
            inner = c[i] + v[i] * off + (v[i + 1] - v[i]) * off**2 / (2 * gap)
            edge = torch.where(outside < 0, v[0], v[-1])
            out.append(inner + edge * outside)
        return out[0], out[1]

    def at(self, ell: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(l, s, b)`` at one half log-SNR."""
        vals = self.values(torch.tensor([ell], dtype=F64))
        return vals[0][0], vals[1][0], vals[2][0]


# -- step integrals: composite Simpson on panels of at most _PANEL, with exact L and S ---------
def _points(a: float, b: float) -> Tensor:
    """Panel ends and midpoints from ``a`` to ``b``: ``2m + 1`` points."""
    m = max(2, math.ceil(abs(b - a) / _PANEL))
    return torch.linspace(a, b, 2 * m + 1, dtype=F64)


def _simpson(vals: Tensor, a: float, b: float) -> Tensor:
    """``int_a^b`` of samples at :func:`_points` (composite Simpson)."""
    m = (vals.shape[0] - 1) // 2
    return (b - a) / (6 * m) * (vals[0:-1:2] + 4 * vals[1::2] + vals[2::2]).sum(0)


def _cumulative(vals: Tensor, a: float, b: float) -> Tensor:
    """``int_a^p`` at every point ``p`` of :func:`_points` (quadratic through each panel)."""
    hs = (b - a) / (vals.shape[0] - 1)
    first = hs / 12 * (5 * vals[0:-1:2] + 8 * vals[1::2] - vals[2::2])
    second = hs / 12 * (-vals[0:-1:2] + 8 * vals[1::2] + 5 * vals[2::2])
    pieces = torch.stack([first, second], dim=1).flatten(0, 1)
    return torch.cat([torch.zeros_like(vals[:1]), pieces.cumsum(0)])


@dataclass
class _Integrals:
    """Over a step ``ell_s -> ell_t`` (``L``, ``S`` relative to ``ell_s``)."""

    L: Tensor  # L_t - L_s
    S: Tensor  # S_t - S_s
    beta: Tensor  # int_{ell_s}^{ell_t} e^{-S} b
    bias: Tensor  # int e^{L+S} beta
    J: list[Tensor]  # int e^{L+S} u^k/k!, u = (ell - ell_s)/h


def _integrate(ems: EMS, ell_s: float, ell_t: float, n_poly: int) -> _Integrals:
    pts = _points(ell_s, ell_t)
    big_l, big_s = ems.integrals(torch.cat([torch.tensor([ell_s], dtype=F64), pts]))
    big_l, big_s = big_l[1:] - big_l[0], big_s[1:] - big_s[0]
    b = ems.values(pts)[2]
    growth = torch.exp(big_l + big_s)
    u = ((pts - ell_s) / (ell_t - ell_s)).reshape(-1, *([1] * len(ems.event_shape)))
    beta = _cumulative(torch.exp(-big_s) * b, ell_s, ell_t)
    return _Integrals(
        L=big_l[-1],
        S=big_s[-1],
        beta=beta[-1],
        bias=_simpson(growth * beta, ell_s, ell_t),
        J=[_simpson(growth * u**k / math.factorial(k), ell_s, ell_t) for k in range(n_poly)],
    )


def _back(ems: EMS, ell_s: float, ell_j: float) -> tuple[Tensor, Tensor]:
    """``S_j - S_s`` and ``int_{ell_s}^{ell_j} e^{-(S - S_s)} b`` for a history point."""
    pts = _points(ell_s, ell_j)
    big_s = ems.integrals(torch.cat([torch.tensor([ell_s], dtype=F64), pts]))[1]
    big_s = big_s[1:] - big_s[0]
    return big_s[-1], _simpson(torch.exp(-big_s) * ems.values(pts)[2], ell_s, ell_j)


def _step(ems: EMS, x_s: Tensor, s: Level, t: Level, nodes: list[tuple[Level, Tensor]]) -> Tensor:
    """``x_t`` from ``x_s`` with the polynomial through ``nodes`` (``(level, f)``, base first).

    ``x_t = a x_s + sum_j w_j f_j + c``: the coefficients depend on the levels and the EMS only
    and are integrated on the host, then applied in float64 on ``x``'s device.
    """
    h = t.ell - s.ell
    fwd = _integrate(ems, s.ell, t.ell, len(nodes))
    basis = _lagrange([(lv.ell - s.ell) / h for lv, _ in nodes])
    scale = t.alpha * torch.exp(-fwd.L)
    const = -fwd.bias
    out = ((t.alpha / s.alpha) * torch.exp(-fwd.L)).to(x_s.device) * x_s.to(F64)
    for j, ((lv, f), cj) in enumerate(zip(nodes, basis, strict=True)):
        w = sum(
            jk * (math.factorial(k) * c) for k, (jk, c) in enumerate(zip(fwd.J, cj, strict=True))
        )
        if j == 0:
            shift, beta = torch.zeros_like(fwd.S), torch.zeros_like(fwd.beta)
        elif lv.ell == t.ell:  # the corrector's new point
            shift, beta = fwd.S, fwd.beta
        else:
            shift, beta = _back(ems, s.ell, lv.ell)
        const = const + w * beta
        out = out - (scale * w * torch.exp(-shift)).to(x_s.device) * f
    return (out + (scale * const).to(x_s.device)).to(x_s.dtype)


def _f(ems: EMS, d: Denoised, lv: Level) -> Tensor:
    """``f = N/alpha = (1 - l)(sigma/alpha) eps - l x0`` in float64."""
    assert isinstance(d.x0, Tensor)
    assert isinstance(d.eps, Tensor)
    l = ems.at(lv.ell)[0].to(d.x0.device)  # noqa: E741
    return (1.0 - l) * (lv.sigma / lv.alpha) * d.eps.to(F64) - l * d.x0.to(F64)


# -- the sampler ---------------------------------------------------------------------------------
def dpm_solver_v3(
    denoiser: Denoiser,
    paths: GaussianPath,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    ems: EMS,
    order: int = 3,
    corrector: bool = True,
    lower_order_final: bool = True,
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """DPM-Solver-v3: multistep predictor of ``order`` (1-3) with the corrector, one call a step.

    Args:
        denoiser, paths, x, grid, mask: as every sampler (tensor states; one path).
        ems: the empirical model statistics (:func:`compute_ems`, or :meth:`EMS.trivial`).
        order: the predictor order (the corrector adds one).
        corrector: apply the corrector.
        lower_order_final: lower orders in the last steps of grids shorter than 15 steps.
    """
    if order not in (1, 2, 3):
        raise InputError(f"order: expected 1, 2 or 3, got {order!r}")
    if not isinstance(ems, EMS):
        raise InputError(f"ems: expected an EMS (see compute_ems), got {ems!r}")
    if isinstance(x, Mapping) or isinstance(paths, Mapping):
        raise InputError("dpm_solver_v3: expected a tensor state and one path")
    run = Run("dpm_solver_v3", denoiser, paths, x, grid, mask=mask, callback=callback)
    ev = ems.event_shape
    if len(ev) > x.ndim - 1 or any(
        e not in (1, n) for e, n in zip(ev[::-1], x.shape[::-1], strict=False)
    ):
        raise InputError(
            f"ems: event shape {ev} does not broadcast against x of shape {tuple(x.shape)}"
        )
    last = run.steps - 1 if run.ends_at_zero else run.steps
    if any(not math.isfinite(run.lv(i).ell) for i in range(last + 1)):
        raise InputError(
            "dpm_solver_v3: needs alpha > 0 and sigma > 0 on the grid (finite log-SNR)"
        )
    hist: list[tuple[Level, Tensor]] = []  # newest first
    prev: tuple[Tensor, list[tuple[Level, Tensor]]] | None = None  # start state, predictor nodes
    xt: Tensor = x
    for i in range(run.steps):
        d = run.denoise(xt, run.t[i])
        lv = run.lv(i)
        f = _f(ems, d, lv)
        if corrector and prev is not None:
            x_s, nodes = prev
            x_new = _keep(
                run, _step(ems, x_s, nodes[0][0], lv, [nodes[0], (lv, f), *nodes[1:]]), xt
            )
            # N_t is kept: x0 = (1 - l) x/alpha - f moves with x unless l = 1
            l_t = ems.at(lv.ell)[0].to(device=xt.device, dtype=xt.dtype)
            d = Denoised(d.x0 + (1.0 - l_t) * (x_new - xt) / lv.alpha, d.eps)
            xt = x_new
        if run.final(i):
            return run.result(run.denoise_to_zero(d, xt))
        hist = [(lv, f), *hist][:order]
        p = len(hist)
        if lower_order_final and run.steps < _LOWER_ORDER_FINAL_STEPS:
            p = min(p, run.steps - i)
        prev = (xt, hist[:p])
        xt = _keep(run, _step(ems, xt, lv, run.lv(i + 1), hist[:p]), xt)
        run.report(i, xt, d.x0)
    return run.result(xt)


def _keep(run: Run, new: Tensor, old: Tensor) -> Tensor:
    out = run.keep(new, old)
    assert isinstance(out, Tensor)
    return out


# -- empirical model statistics ------------------------------------------------------------------
def _ell_of(path: GaussianPath, t: float) -> float:
    return 0.5 * float(path.log_snr(torch.tensor(t, dtype=F64)))


def compute_ems(
    denoiser: Denoiser,
    path: GaussianPath,
    data: Tensor,
    *,
    n_knots: int = 100,
    t_start: float | None = None,
    t_end: float | None = None,
    generator: torch.Generator | None = None,
    fd_step: float = 1e-3,
    diagonal: Literal["auto", "exact", "rademacher"] = "auto",
) -> EMS:
    """Estimate the EMS ``l, s, b`` of ``denoiser`` on ``n_knots`` uniform half log-SNR knots.

    Args:
        denoiser: the model (differentiable in ``x`` for ``l``).
        path: its Gaussian path.
        data: samples ``(n, *event)`` of the data (a few hundred to a thousand; the model's
            dtype); the statistics are per dimension of ``event``.
        n_knots: the number of knots (at least 2).
        t_start, t_end: the time range covered (default ``[t_min, t_max]`` of the path).
        generator: for the noise and the Rademacher probes, drawn once and shared by every
            knot (common random numbers: statistics smooth in ``ell``).
        fd_step: the ``ell`` step of the central differences along the ODE.
        diagonal: the Jacobian diagonal for ``l``: exact (one backward pass per dimension;
            ``"auto"`` when ``d <= 64``) or ``"rademacher"`` (one per knot, unbiased).

    Cost: ``n_knots`` times one model call with ``1`` or ``d`` backward passes, then three
    model calls (without gradients).
    """
    if not isinstance(data, Tensor) or not data.is_floating_point() or data.ndim < 2:
        raise InputError("data: expected a floating tensor of samples (n, *event)")
    if isinstance(n_knots, bool) or not isinstance(n_knots, int) or n_knots < 2:
        raise InputError(f"n_knots: expected an integer >= 2, got {n_knots!r}")
    if diagonal not in ("auto", "exact", "rademacher"):
        raise InputError(f"diagonal: expected 'auto', 'exact' or 'rademacher', got {diagonal!r}")
    if not (isinstance(fd_step, int | float) and fd_step > 0):
        raise InputError(f"fd_step: expected a number > 0, got {fd_step!r}")
    lo = path.t_min if t_start is None else float(t_start)
    hi = path.t_max if t_end is None else float(t_end)
    ell_lo, ell_hi = _ell_of(path, hi), _ell_of(path, lo)
    if not (math.isfinite(ell_lo) and math.isfinite(ell_hi) and ell_lo < ell_hi):
        raise InputError(
            f"t_start, t_end: expected t_start < t_end with finite log-SNR, got {lo} and {hi}"
        )
    n, dims = data.shape[0], data[0].numel()
    exact = diagonal == "exact" or (diagonal == "auto" and dims <= 64)
    knots = torch.linspace(ell_lo, ell_hi, n_knots, dtype=F64)
    # common random numbers: the same noise (and probes) at every knot, so that the statistics
    # vary smoothly with ell (the solver's polynomial steps need a smooth g)
    z = torch.randn(data.shape, generator=generator, dtype=data.dtype).to(data.device)
    probe = (torch.randint(0, 2, data.shape, generator=generator) * 2 - 1).to(z)

    def call(xk: Tensor, t: float) -> Denoised:
        return denoiser(xk, torch.full((n,), t, dtype=data.dtype, device=data.device))

    # pass 1: l = E[diag(d(sigma eps)/dx)]
    l_list = []
    for ell in knots.tolist():
        t, a, s = _level(path, ell)
        with torch.enable_grad():
            xg = (a * data + s * z).detach().requires_grad_(True)
            eps = call(xg, t).eps
            assert isinstance(eps, Tensor)
            if exact:
                flat = eps.reshape(n, -1)
                cols = []
                for j in range(dims):
                    g = torch.autograd.grad(flat[:, j].sum(), xg, retain_graph=j < dims - 1)[0]
                    cols.append(g.reshape(n, -1)[:, j])
                diag = torch.stack(cols, dim=1).reshape(data.shape)
            else:
                diag = probe * torch.autograd.grad((eps * probe).sum(), xg)[0]
        l_list.append(s * diag.detach().to(F64).mean(0))
    l_all = torch.stack(l_list)
    l_prime = torch.gradient(l_all, spacing=(knots.to(l_all.device),), dim=0)[0]

    # pass 2: s, b from f = A - l X and f' = A' - l' X - l X' along the ODE
    # (A = (sigma/alpha) eps, X = (sigma/alpha) eps + x0: x/alpha for a consistent pair)
    s_list, b_list = [], []
    with torch.no_grad():
        for k, ell in enumerate(knots.tolist()):
            t, a, s = _level(path, ell)
            xk = a * data + s * z
            d = call(xk, t)
            assert isinstance(d.x0, Tensor)
            assert isinstance(d.eps, Tensor)
            tt = torch.tensor(t, dtype=F64)
            dt_dell = 1.0 / float(path.d_alpha(tt) / a - path.d_sigma(tt) / s)
            vel = dt_dell * (float(path.d_alpha(tt)) * d.x0 + float(path.d_sigma(tt)) * d.eps)
            sides = []
            for sign in (1.0, -1.0):
                te, ae, se = _level(path, ell + sign * fd_step)
                sides.append(_ax(call(xk + sign * fd_step * vel, te), ae, se))
            ax = _ax(d, a, s)
            da = (sides[0][0] - sides[1][0]) / (2 * fd_step)
            dx = (sides[0][1] - sides[1][1]) / (2 * fd_step)
            f = ax[0] - l_all[k] * ax[1]
            f1 = da - l_prime[k] * ax[1] - l_all[k] * dx
            fc, f1c = f - f.mean(0), f1 - f1.mean(0)
            var = fc.pow(2).mean(0)
            cov = (fc * f1c).mean(0)
            slope = torch.where(
                var > 1e-12 * (1 + f.pow(2).mean(0)), cov / var.clamp_min(1e-300), 0.0
            )
            s_list.append(slope)
            b_list.append(f1.mean(0) - slope * f.mean(0))
    return EMS(knots, l_all, torch.stack(s_list), torch.stack(b_list))


def _level(path: GaussianPath, ell: float) -> tuple[float, float, float]:
    """``(t, alpha, sigma)`` at half log-SNR ``ell``."""
    t = path.t_from_log_snr(torch.tensor(2.0 * ell, dtype=F64))
    return float(t), float(path.alpha(t)), float(path.sigma(t))


def _ax(d: Denoised, alpha: float, sigma: float) -> tuple[Tensor, Tensor]:
    """``A = (sigma/alpha) eps`` and ``X = A + x0`` in float64."""
    assert isinstance(d.x0, Tensor)
    assert isinstance(d.eps, Tensor)
    a = (sigma / alpha) * d.eps.detach().to(F64)
    return a, a + d.x0.detach().to(F64)
