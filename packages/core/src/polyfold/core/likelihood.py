r"""Log-likelihood through the probability-flow ODE (Song et al. 2021; FFJORD's estimator).

The probability-flow ODE of a Gaussian path, written as the flow velocity of the denoiser's pair,
``dx/dt = v(x, t) = d_alpha(t) x0(x, t) + d_sigma(t) eps(x, t)``, transports the marginals
``p_t``, and along a solution ``d log p_t(x_t)/dt = -div v(x_t, t)``. Integrating ``x`` and the
divergence together from ``t_start`` (``~0``, the data) to ``t_end`` (``~1``, the prior) gives

    log p_{t_start}(x) = log p_prior(x_{t_end}) + int_{t_start}^{t_end} div v(x_t, t) dt.

- Divergence: ``"exact"``, the trace of the Jacobian by one backward pass per dimension (small
  ``d``), or ``"hutchinson"``, ``div v ~ z^T (dv/dx) z`` with ``n_probes`` Rademacher or Gaussian
  probes ``z`` (``E[z z^T] = I``), drawn once per solve from ``generator`` and held fixed along
  the trajectory (FFJORD): unbiased, and the ODE stays smooth for adaptive steps.
- Integration in float64 (the model sees ``model_dtype``): fixed-step ``"euler"``, ``"heun"``,
  ``"rk4"`` (``steps`` uniform steps in ``t``) or adaptive ``"rk45"`` (Dormand-Prince 5(4), one
  step size for the batch, error norm the largest per-example RMS of
  ``err / (atol + rtol max(|y|, |y_new|))`` over ``x`` and the log-density).
- Prior: by default ``N(0, sigma(t_end)^2 I)`` per key, the path's prior (exact where
  ``alpha(t_end) = 0``; it neglects ``alpha(t_end)^2 Var(x0)`` otherwise); any ``(B,)`` log
  density ``prior(x_end)`` may be given instead.
- Masks: padded entries stay fixed, and the divergence, the prior and the dimension count
  ``d`` cover the valid entries only.
- Units: ``logp`` in nats; :func:`bits_per_dim` ``= -logp / (d ln 2)``. For discrete data
  dequantised uniformly into bins of width ``bin_width`` (:func:`uniform_dequantize`), the
  discrete log-likelihood is bounded below by ``logp + d log(bin_width)``: bits/dim
  ``-logp/(d ln 2) - log2(bin_width)`` (score_sde's offset of 7 for 256 levels in [-1, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath, Paths
from polyfold.core.samplers.ode import EULER, HEUN, RK4, Tableau
from polyfold.core.state import Mask, State, expand_mask

__all__ = [
    "LikelihoodResult",
    "bits_per_dim",
    "log_likelihood",
    "uniform_dequantize",
]

Divergence = Literal["exact", "hutchinson"]
Probe = Literal["rademacher", "gaussian"]
Solver = Literal["euler", "heun", "rk4", "rk45"]
_FIXED: dict[str, Tableau] = {"euler": EULER, "heun": HEUN, "rk4": RK4}

# Dormand-Prince 5(4): nodes, stages, 5th-order weights (FSAL: the 7th stage is the next k1),
# and the 5th minus 4th-order weights for the error estimate.
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_E = (
    71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40,
)  # fmt: skip


@dataclass(frozen=True)
class LikelihoodResult:
    """Output of :func:`log_likelihood` (per example, float64).

    Attributes:
        logp: ``log p(x)`` in nats, ``prior_logp + delta_logp`` (``(B,)``).
        bpd: bits per dimension, :func:`bits_per_dim` of ``logp`` (with ``bin_width``).
        prior_logp: ``log p_prior(x_end)``.
        delta_logp: ``int div v dt``.
        dims: the number of valid entries per example.
        x_end: the state at ``t_end`` (float64).
        nfe: denoiser calls.
        steps: accepted integration steps.
    """

    logp: Tensor
    bpd: Tensor
    prior_logp: Tensor
    delta_logp: Tensor
    dims: Tensor
    x_end: State
    nfe: int
    steps: int


def bits_per_dim(logp: Tensor, dims: Tensor | float, *, bin_width: float | None = None) -> Tensor:
    """``-logp / (d ln 2)``, minus ``log2(bin_width)`` for data dequantised into such bins."""
    bpd = -logp / (torch.as_tensor(dims, dtype=F64) * math.log(2.0))
    if bin_width is None:
        return bpd
    if not (isinstance(bin_width, int | float) and bin_width > 0):
        raise InputError(f"bin_width: expected a number > 0, got {bin_width!r}")
    return bpd - math.log2(bin_width)


def uniform_dequantize(
    x: Tensor, bin_width: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """``x + bin_width (u - 1/2)``, ``u ~ U[0, 1)``: discrete values (bin centres) dequantised."""
    if not (isinstance(bin_width, int | float) and bin_width > 0):
        raise InputError(f"bin_width: expected a number > 0, got {bin_width!r}")
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + bin_width * (u - 0.5)


# -- the augmented ODE ---------------------------------------------------------------------------
class _Flow:
    """Velocity and divergence of the probability-flow ODE over flat float64 leaves."""

    def __init__(
        self,
        denoiser: Denoiser,
        keys: list[str] | None,
        paths: list[GaussianPath],
        masks: list[Tensor | None],
        model_dtype: torch.dtype,
        divergence: Divergence,
        probes: list[Tensor] | None,
    ) -> None:
        self.denoiser, self.keys, self.paths, self.masks = denoiser, keys, paths, masks
        self.model_dtype, self.divergence, self.probes = model_dtype, divergence, probes
        self.t_dtype = F64 if model_dtype == F64 else torch.float32
        self.nfe = 0

    def _state(self, leaves: list[Tensor]) -> State:
        return leaves[0] if self.keys is None else dict(zip(self.keys, leaves, strict=True))

    def _pair(self, d: Denoised) -> tuple[list[Tensor], list[Tensor]]:
        if self.keys is None:
            return [d.x0], [d.eps]  # type: ignore[list-item]
        assert isinstance(d.x0, Mapping)
        assert isinstance(d.eps, Mapping)
        return [d.x0[k] for k in self.keys], [d.eps[k] for k in self.keys]

    def __call__(self, t: float, xs: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """``(v, div v)`` at ``(x, t)``: leaves like ``xs`` and ``(B,)``, float64."""
        b = xs[0].shape[0]
        tt = torch.full((b,), t, dtype=self.t_dtype, device=xs[0].device)
        t64 = torch.tensor(t, dtype=F64)
        with torch.enable_grad():
            inp = [xi.detach().to(self.model_dtype).requires_grad_(True) for xi in xs]
            d = self.denoiser(self._state(inp), tt)
            self.nfe += 1
            if not isinstance(d, Denoised):
                raise InputError(
                    f"denoiser: expected a Denoised(x0, eps), got {type(d).__name__}; wrap a "
                    "network with polyfold.core.denoiser.as_denoiser"
                )
            x0s, epss = self._pair(d)
            vs = []
            for x0, eps, p, m, xi in zip(x0s, epss, self.paths, self.masks, inp, strict=True):
                v = float(p.d_alpha(t64)) * x0 + float(p.d_sigma(t64)) * eps
                if m is not None:
                    v = torch.where(expand_mask(m, xi), v, torch.zeros((), dtype=v.dtype))
                vs.append(v)
            div = self._exact(vs, inp) if self.divergence == "exact" else self._hutchinson(vs, inp)
        return [v.detach().to(F64) for v in vs], div

    def _exact(self, vs: list[Tensor], inp: list[Tensor]) -> Tensor:
        """``sum_i dv_i/dx_i`` by one backward pass per dimension (padding's v is zero)."""
        div = torch.zeros(inp[0].shape[0], dtype=F64, device=inp[0].device)
        n = sum(v[0].numel() for v in vs)
        done = 0
        for v, xi in zip(vs, inp, strict=True):
            flat_v = v.reshape(v.shape[0], -1)
            for j in range(flat_v.shape[1]):
                done += 1
                (g,) = torch.autograd.grad(
                    flat_v[:, j].sum(), xi, retain_graph=done < n, allow_unused=True
                )
                if g is not None:
                    div = div + g.reshape(g.shape[0], -1)[:, j].to(F64)
        return div

    def _hutchinson(self, vs: list[Tensor], inp: list[Tensor]) -> Tensor:
        """``mean_k z_k^T (dv/dx) z_k`` over the fixed probes (zero on padding)."""
        assert self.probes is not None
        n_probes = self.probes[0].shape[0]
        div = torch.zeros(inp[0].shape[0], dtype=F64, device=inp[0].device)
        for k in range(n_probes):
            zs = [z[k].to(v.dtype) for z, v in zip(self.probes, vs, strict=True)]
            dot = torch.stack([(v * z).sum() for v, z in zip(vs, zs, strict=True)]).sum()
            grads = torch.autograd.grad(dot, inp, retain_graph=k < n_probes - 1, allow_unused=True)
            for g, z in zip(grads, zs, strict=True):
                if g is not None:
                    div = div + (g * z).reshape(g.shape[0], -1).sum(1).to(F64)
        return div / n_probes


Rhs = Callable[[float, list[Tensor]], tuple[list[Tensor], Tensor]]


def _axpy(
    y: list[Tensor], h: float, ks: Sequence[tuple[list[Tensor], Tensor]], ws: Sequence[float]
) -> tuple[list[Tensor], Tensor]:
    """The stage input ``y + h sum_j w_j k_j`` for ``y = (x leaves, logdet)``."""
    xs, ld = y[:-1], y[-1]
    out_x = [xi.clone() for xi in xs]
    out_ld = ld.clone()
    for w, (kx, kl) in zip(ws, ks, strict=False):
        if w == 0.0:
            continue
        for o, k in zip(out_x, kx, strict=True):
            o.add_(k, alpha=h * w)
        out_ld.add_(kl, alpha=h * w)
    return out_x, out_ld


def _fixed(
    rhs: Rhs, xs: list[Tensor], t0: float, t1: float, tab: Tableau, steps: int
) -> tuple[list[Tensor], Tensor, int]:
    ld = torch.zeros(xs[0].shape[0], dtype=F64, device=xs[0].device)
    h = (t1 - t0) / steps
    for i in range(steps):
        t = t0 + i * h
        ks: list[tuple[list[Tensor], Tensor]] = []
        for c, row in zip(tab.c, tab.a, strict=True):
            sx, _ = _axpy([*xs, ld], h, ks, row)
            ks.append(rhs(t + c * h, sx))
        xs, ld = _axpy([*xs, ld], h, ks, tab.b)
    return xs, ld, steps


def _err_norm(
    y0: list[Tensor], y1: list[Tensor], err: list[Tensor], rtol: float, atol: float
) -> float:
    """Largest per-example RMS of ``err / (atol + rtol max(|y0|, |y1|))``."""
    total, count = None, 0
    for a, b, e in zip(y0, y1, err, strict=True):
        scaled = (e / (atol + rtol * torch.maximum(a.abs(), b.abs()))).reshape(e.shape[0], -1)
        sq = scaled.pow(2).sum(1)
        total = sq if total is None else total + sq
        count += scaled.shape[1]
    assert total is not None
    return float((total / count).sqrt().max())


def _rk45(
    rhs: Rhs, xs: list[Tensor], t0: float, t1: float, rtol: float, atol: float, max_steps: int
) -> tuple[list[Tensor], Tensor, int]:
    ld = torch.zeros(xs[0].shape[0], dtype=F64, device=xs[0].device)
    span = t1 - t0
    h = span / 64.0
    t, accepted = t0, 0
    k1 = rhs(t, xs)
    for _ in range(max_steps):
        if t >= t1:
            return xs, ld, accepted
        h = min(h, t1 - t)
        ks = [k1]
        for c, row in zip(_DP_C[1:], _DP_A[1:], strict=True):
            sx, _ = _axpy([*xs, ld], h, ks, row)
            ks.append(rhs(t + c * h, sx))
        new_x, new_ld = _axpy([*xs, ld], h, ks, _DP_A[6])
        err_x, err_ld = _axpy(
            [torch.zeros_like(xi) for xi in xs] + [torch.zeros_like(ld)], h, ks, _DP_E
        )
        err = _err_norm(
            [*xs, ld[:, None]], [*new_x, new_ld[:, None]], [*err_x, err_ld[:, None]], rtol, atol
        )
        if not math.isfinite(err):
            raise InputError(
                f"denoiser: non-finite velocity or divergence at t = {t:.6g} (a prediction "
                "undefined at the range's ends, e.g. x0 from eps where alpha = 0?)"
            )
        if err <= 1.0 or h <= 1e-12 * abs(span):
            t = t1 if t1 - (t + h) <= 1e-14 * abs(span) else t + h
            xs, ld, k1 = new_x, new_ld, ks[-1]
            accepted += 1
        factor = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err**-0.2))
        h *= factor
    raise InputError(
        f"max_steps: the adaptive solver needed more than {max_steps} steps; raise max_steps, "
        "loosen rtol/atol or use a fixed-step solver"
    )


# -- public API ---------------------------------------------------------------------------------
def _leaves(x: State) -> tuple[list[str] | None, list[Tensor]]:
    if isinstance(x, Mapping):
        if not x:
            raise InputError("x: expected a non-empty dict of tensors")
        return list(x), list(x.values())
    return None, [x]


def _per_key(
    value: Any, keys: list[str] | None, name: str, kind: type | tuple[type, ...]
) -> list[Any]:
    if keys is None:
        if isinstance(value, Mapping):
            raise InputError(f"{name}: a dict needs a dict state x")
        out = [value]
    elif isinstance(value, Mapping):
        if set(value) != set(keys):
            raise InputError(f"{name}: keys {sorted(value)} differ from x's {sorted(keys)}")
        out = [value[k] for k in keys]
    else:
        out = [value] * len(keys)
    for v in out:
        if v is not None and not isinstance(v, kind):
            raise InputError(f"{name}: expected {kind}, got {v!r}")
    return out


def log_likelihood(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    divergence: Divergence = "exact",
    probe: Probe = "rademacher",
    n_probes: int = 1,
    solver: Solver = "rk45",
    steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    prior: Callable[[State], Tensor] | None = None,
    model_dtype: torch.dtype | None = None,
    bin_width: float | None = None,
) -> LikelihoodResult:
    """``log p(x)`` of data ``x`` under the probability-flow ODE of ``denoiser`` (see module).

    Args:
        denoiser: the :class:`~polyfold.core.denoiser.Denoiser` (differentiable in ``x``).
        paths: the Gaussian path (a dict per key for dict states).
        x: data, batch first (a tensor or a dict of tensors).
        t_start, t_end: the integration range, by default the (first) path's
            ``[t_min, t_max]``; ``logp`` is the density of the ``t_start`` marginal.
        divergence: ``"exact"`` (``d`` backward passes per evaluation) or ``"hutchinson"``.
        probe, n_probes: the Hutchinson probes (``"rademacher"`` or ``"gaussian"``), per example.
        solver: ``"rk45"`` (adaptive, ``rtol``/``atol``/``max_steps``) or ``"euler"``,
            ``"heun"``, ``"rk4"`` with ``steps`` uniform steps.
        generator: for the probes.
        mask: validity mask(s); only valid entries count.
        prior: ``x_end -> (B,)`` log density at ``t_end``; default ``N(0, sigma(t_end)^2 I)``.
        model_dtype: the dtype the denoiser sees (default: ``x``'s); the ODE runs in float64.
        bin_width: dequantisation bin width for ``bpd`` (see :func:`bits_per_dim`).
    """
    keys, xs = _leaves(x)
    for xi in xs:
        if not isinstance(xi, Tensor) or not xi.is_floating_point() or xi.ndim < 2:
            raise InputError("x: expected batch-first floating tensors of shape (B, ...)")
    b = xs[0].shape[0]
    if any(xi.shape[0] != b for xi in xs):
        raise InputError("x: every key must have the same batch size")
    path_list = _per_key(paths, keys, "paths", GaussianPath)
    if any(p is None or not p.gaussian for p in path_list):
        raise InputError(f"paths: expected Gaussian paths, got {paths!r}")
    masks = _per_key(mask, keys, "mask", Tensor)
    for m, xi in zip(masks, xs, strict=True):
        if m is not None:
            expand_mask(m, xi)  # validates the mask against the state
    ref = path_list[0]
    t0 = ref.t_min if t_start is None else float(t_start)
    t1 = ref.t_max if t_end is None else float(t_end)
    if not t0 < t1:
        raise InputError(f"t_start, t_end: expected t_start < t_end, got {t0} and {t1}")
    if divergence not in ("exact", "hutchinson"):
        raise InputError(f"divergence: expected 'exact' or 'hutchinson', got {divergence!r}")
    if solver not in ("rk45", *_FIXED):
        raise InputError(f"solver: expected 'rk45', 'rk4', 'heun' or 'euler', got {solver!r}")
    for name, v in (("steps", steps), ("n_probes", n_probes), ("max_steps", max_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name}: expected an integer >= 1, got {v!r}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(tol, int | float) and tol > 0):
            raise InputError(f"{name}: expected a number > 0, got {tol!r}")

    probes = None
    if divergence == "hutchinson":
        if probe not in ("rademacher", "gaussian"):
            raise InputError(f"probe: expected 'rademacher' or 'gaussian', got {probe!r}")
        probes = []
        for xi, m in zip(xs, masks, strict=True):
            shape = (n_probes, *xi.shape)
            if probe == "gaussian":
                z = torch.randn(shape, generator=generator, dtype=F64)
            else:
                z = torch.randint(0, 2, shape, generator=generator).to(F64) * 2.0 - 1.0
            z = z.to(xi.device)
            if m is not None:
                z = z * expand_mask(m, xi).to(F64)
            probes.append(z)

    mdt = model_dtype or xs[0].dtype
    flow = _Flow(denoiser, keys, path_list, masks, mdt, divergence, probes)
    x64 = [xi.detach().to(F64) for xi in xs]
    if solver == "rk45":
        x_end, delta, n_steps = _rk45(flow, x64, t0, t1, rtol, atol, max_steps)
    else:
        x_end, delta, n_steps = _fixed(flow, x64, t0, t1, _FIXED[solver], steps)

    dims = torch.zeros(b, dtype=F64, device=xs[0].device)
    for xi, m in zip(xs, masks, strict=True):
        if m is None:
            dims = dims + xi[0].numel()
        else:
            dims = dims + expand_mask(m, xi).expand_as(xi).reshape(b, -1).sum(1).to(F64)
    end_state = x_end[0] if keys is None else dict(zip(keys, x_end, strict=True))
    if prior is None:
        prior_logp = torch.zeros(b, dtype=F64, device=xs[0].device)
        for xe, p, m in zip(x_end, path_list, masks, strict=True):
            var = float(p.sigma(torch.tensor(t1, dtype=F64))) ** 2
            lp = -0.5 * (xe**2 / var + math.log(2 * math.pi * var))
            if m is not None:
                lp = torch.where(expand_mask(m, xe), lp, torch.zeros((), dtype=F64))
            prior_logp = prior_logp + lp.reshape(b, -1).sum(1)
    else:
        prior_logp = torch.as_tensor(prior(end_state)).to(F64).reshape(b)
    logp = prior_logp + delta
    return LikelihoodResult(
        logp=logp,
        bpd=bits_per_dim(logp, dims, bin_width=bin_width),
        prior_logp=prior_logp,
        delta_logp=delta,
        dims=dims,
        x_end=end_state,
        nfe=flow.nfe,
        steps=n_steps,
    )
