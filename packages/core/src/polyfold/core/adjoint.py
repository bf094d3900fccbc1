r"""AdjointDPM: gradients through the probability-flow ODE at memory constant in the step count.

Pan et al., "AdjointDPM: Adjoint Sensitivity Method for Gradient Backpropagation of Diffusion
Probabilistic Models". For a loss ``L(x_0)`` of the sample of the probability-flow ODE started
from ``x_T``, this module gives ``dL/dx_T``, ``dL/dcond`` and ``dL/dtheta`` (the network's
parameters) without keeping a graph across steps.

Exponential-integrator form (the paper's reparameterisation). Per key of the state, with
``y = x / alpha`` and ``rho = sigma / alpha`` (``= e^{-ell}``, ``ell`` the half log-SNR), the
probability-flow ODE of any Gaussian path is the non-stiff

    dy/drho = eps(alpha y, t(rho), cond),

whose linear part has been integrated exactly. The forward solver steps it on the grid:
``order=1`` is the Euler step in ``rho``, exactly DDIM (``eta = 0``):
``x_t = (alpha_t/alpha_s) x_s + alpha_t (rho_t - rho_s) eps(x_s, s)``; ``order=2`` is Heun's
step in ``rho`` (two network calls). A step to the data point (``sigma = 0``) is the final
denoising ``x_0 = alpha_0 x0_hat(x_s, s)`` (Euler, one call).

Adjoint. With ``a = dL/dy`` the augmented system ``[y, a, a_cond, a_theta]`` is integrated
backwards from ``rho_0`` to ``rho_T``:

    da/drho = -a^T d eps/dy,   da_cond/drho = -a^T d eps/dcond,   da_theta/drho = -a^T d eps/dtheta,

``y`` by the reverse step of the same integrator (``refine`` extra fixed-point corrections make
the reconstruction exact to more digits), the adjoints by the transposed step (the vector-Jacobian
product of the forward step, recomputed at the reconstructed state with a graph of that step
only). The gradients are therefore those of the discrete forward solver (what back-propagation
through the sampler gives) up to the reconstruction error of ``y``, which vanishes as the grid is
refined; memory holds one step's graph and two states, whatever the number of steps. The backward
pass costs ``(2 + refine) * order`` network calls and ``order`` vector-Jacobian products a step.

:func:`adjoint_sample` is the sample as a differentiable function (a
:class:`torch.autograd.Function`: call ``.backward()`` on any loss of it);
:func:`adjoint_gradients` returns the loss and all gradients explicitly;
:func:`pf_ode_sample` runs the same forward solver with an ordinary autograd graph (memory linear
in the step count), the reference the adjoint is checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError, is_int
from polyfold.core.guidance._common import leaves, rebuild
from polyfold.core.paths import Paths
from polyfold.core.predictions import Prediction
from polyfold.core.samplers._core import Level, Run, all_finite, smap
from polyfold.core.state import Mask, State

__all__ = ["AdjointResult", "adjoint_gradients", "adjoint_sample", "pf_ode_sample"]

LossFn = Callable[[State], Tensor]


@dataclass
class AdjointResult:
    """What :func:`adjoint_gradients` returns.

    ``x``: the sample (detached); ``loss``: ``L(x)``; ``grad_x``: ``dL/dx_T`` shaped like the
    initial state; ``grad_cond``: ``dL/dcond`` shaped like ``cond`` (``None`` for entries that
    are not floating tensors); ``grad_params``: ``dL/dtheta`` aligned with ``params``;
    ``nfe_forward`` / ``nfe_backward``: network calls of the forward solve and of the backward
    pass.
    """

    x: State
    loss: float
    grad_x: State
    grad_cond: Any
    grad_params: list[Tensor]
    nfe_forward: int
    nfe_backward: int


def _cond_leaves(cond: Any) -> list[Tensor]:
    """The floating tensors of a condition (a tensor, or a dict of them), in key order."""
    if isinstance(cond, Mapping):
        return [t for v in cond.values() for t in _cond_leaves(v)]
    return [cond] if isinstance(cond, Tensor) and cond.is_floating_point() else []


def _map_cond(cond: Any, fn: Callable[[Tensor], Any]) -> Any:
    """``cond`` with ``fn`` applied to each floating tensor (other entries kept, or ``None``)."""
    if isinstance(cond, Mapping):
        return {k: _map_cond(v, fn) for k, v in cond.items()}
    return fn(cond) if isinstance(cond, Tensor) and cond.is_floating_point() else None


def _or_zeros(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    """Gradients with ``None`` (unused inputs) replaced by zeros."""
    return [g if g is not None else torch.zeros_like(t) for g, t in zip(grads, like, strict=True)]


def _check_finite(x: State, what: str) -> None:
    if not bool(all_finite(x)):
        raise InputError(f"{what}: contains NaN or infinite values")


class _Solver:
    """The exponential-integrator solver of the module docstring on one grid."""

    def __init__(
        self,
        model: Callable[..., State],
        paths: Paths,
        x: State,
        grid: Tensor | Sequence[float],
        *,
        prediction: Prediction | Mapping[str, Prediction],
        cond: Any,
        order: int,
        mask: Mask,
        refine: int,
    ) -> None:
        if not is_int(order) or order not in (1, 2):
            raise InputError(f"order: expected 1 (DDIM) or 2 (Heun in rho), got {order!r}")
        if not is_int(refine) or refine < 0:
            raise InputError(f"refine: expected an integer >= 0, got {refine!r}")
        self.order, self.refine = order, refine
        den = as_denoiser(model, paths, prediction=prediction, cond=cond)
        self.run = Run("adjoint", den, paths, x, grid, mask=mask, derivs=True)
        for i, t in enumerate(self.run.t):
            for lv in self.run.level_list(i):
                if not lv.alpha > 0:
                    raise InputError(
                        f"grid: AdjointDPM's eps-form needs alpha(t) > 0 at every time, "
                        f"got alpha = {lv.alpha} at t = {t}; start the grid below such a time"
                    )
                if not lv.sigma > 0 and i < self.run.steps:
                    raise InputError(f"grid: sigma(t) = 0 at t = {t} before the last time")
        self.steps = self.run.steps

    @property
    def nfe(self) -> int:
        return self.run.nfe

    def to_data(self, i: int) -> bool:
        """Whether step ``i`` ends at the data point (``sigma = 0``)."""
        return any(lv.sigma == 0.0 for lv in self.run.level_list(i + 1))

    def step(self, x: State, i: int, j: int) -> State:
        """One step of the integrator from grid point ``i`` to ``j`` (``j = i + 1`` forward,
        ``j = i - 1`` the reverse step); differentiable where grad mode is on."""
        run = self.run
        e1 = run.denoise(x, run.t[i]).eps

        def euler(xi: Tensor, ei: Tensor, s: Level, t: Level) -> Tensor:
            return xi * (t.alpha / s.alpha) + ei * (t.sigma - t.alpha * s.sigma / s.alpha)

        s_lv, t_lv = run.lv(i), run.lv(j)
        x1 = run.keep(smap(euler, x, e1, s_lv, t_lv), x)
        if self.order == 1 or (j > i and self.to_data(i)):
            return x1
        e2 = run.denoise(x1, run.t[j]).eps
        mean = smap(lambda a, b: 0.5 * (a + b), e1, e2)
        return run.keep(smap(euler, x, mean, s_lv, t_lv), x)

    def forward(self, x: State) -> tuple[State, State | None]:
        """The sample, and the state before a final step to the data point (kept, since that
        step cannot be reversed)."""
        stash = None
        with torch.no_grad():
            for i in range(self.steps):
                if self.to_data(i):
                    stash = x
                x = self.step(x, i, i + 1)
        return x, stash

    def _reconstruct(self, x: State, i: int) -> State:
        """The state at grid point ``i`` from the one at ``i + 1`` (reverse step, then
        ``refine`` corrections ``y_i += y_{i+1} - step(y_i)``)."""
        xs = self.step(x, i + 1, i)
        for _ in range(self.refine):
            fwd = self.step(xs, i, i + 1)
            ratio = smap(lambda s, t: s.alpha / t.alpha, self.run.lv(i), self.run.lv(i + 1))
            xs = self.run.keep(smap(lambda a, b, c, r: a + (b - c) * r, xs, x, fwd, ratio), xs)
        return xs

    def backward(
        self, x: State, stash: State | None, a: State, wrt: Sequence[Tensor]
    ) -> tuple[State, list[Tensor]]:
        """``(dL/dx_T, dL/dwrt)`` from the sample ``x`` and ``a = dL/dx``."""
        acc = [torch.zeros_like(w) for w in wrt]
        live = [k for k, w in enumerate(wrt) if w.requires_grad]  # the others get zeros
        for i in reversed(range(self.steps)):
            with torch.no_grad():
                xs = stash if self.to_data(i) and stash is not None else self._reconstruct(x, i)
            with torch.enable_grad():
                ins = [t.detach().requires_grad_(True) for t in leaves(xs)]
                out = leaves(self.step(rebuild(xs, ins), i, i + 1))
                grads = torch.autograd.grad(
                    out, [*ins, *(wrt[k] for k in live)], grad_outputs=leaves(a), allow_unused=True
                )
            a = rebuild(
                xs,
                _or_zeros(grads[: len(ins)], ins),
            )
            for k, g in zip(live, grads[len(ins) :], strict=False):
                if g is not None:
                    acc[k] += g
            x = xs
        return a, acc


def _params(model: Any, params: Iterable[Tensor] | None) -> list[Tensor]:
    if params is None:
        found = list(model.parameters()) if isinstance(model, nn.Module) else []
        return [p for p in found if p.requires_grad]
    out = list(params)
    if not all(isinstance(p, Tensor) and p.is_floating_point() for p in out):
        raise InputError("params: expected floating tensors (e.g. model.parameters())")
    return out


class _AdjointFunction(torch.autograd.Function):
    """Outputs the sample's tensors; the backward pass runs the adjoint solve."""

    @staticmethod
    def forward(ctx: Any, solver: _Solver, n_x: int, template: Any, *tensors: Tensor) -> Any:
        out, stash = solver.forward(rebuild(template, tensors[:n_x]))
        ctx.solver, ctx.out, ctx.stash = solver, out, stash
        ctx.wrt = tensors[n_x:]
        return tuple(leaves(out))

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> Any:
        out = ctx.out
        a = rebuild(
            out,
            _or_zeros(grads, leaves(out)),
        )
        _check_finite(a, "loss gradient with respect to the sample")
        a0, gw = ctx.solver.backward(out, ctx.stash, a, ctx.wrt)
        return (None, None, None, *leaves(a0), *gw)


def adjoint_sample(
    model: Callable[..., State],
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    prediction: Prediction | Mapping[str, Prediction],
    cond: Any = None,
    params: Iterable[Tensor] | None = None,
    order: int = 2,
    mask: Mask = None,
    refine: int = 0,
) -> State:
    """The probability-flow ODE sample from ``x`` (at ``grid[0]``), differentiable by AdjointDPM.

    A loss of the result back-propagates (``loss.backward()``, ``torch.autograd.grad``) to ``x``,
    to the floating tensors of ``cond`` and to ``params`` (default: the parameters of ``model``
    that require grad, when it is an ``nn.Module``) by the adjoint solve of the module docstring,
    without a graph across steps.

    Args:
        model: the network ``model(x_t, t, cond)``.
        paths: the path, or one per key of a dict state (any Gaussian path with ``alpha > 0``
            on the grid).
        x: the initial state (e.g. ``path.prior_sample``); a tensor or a dict of tensors.
        grid: decreasing times (:mod:`polyfold.core.samplers.grids`); it may end at the data
            point.
        prediction: what the model predicts (per key for dict states).
        cond: the model's condition (a tensor or a dict; floating tensors get gradients).
        params: the parameters to differentiate.
        order: 1 (DDIM) or 2 (Heun in ``rho``).
        mask: validity mask; padded entries are left untouched.
        refine: fixed-point corrections of each reconstructed state in the backward pass.
    """
    solver = _Solver(
        model,
        paths,
        x,
        grid,
        prediction=prediction,
        cond=cond,
        order=order,
        mask=mask,
        refine=refine,
    )
    xs = leaves(x)
    wrt = [*_cond_leaves(cond), *_params(model, params)]
    out = _AdjointFunction.apply(solver, len(xs), x, *xs, *wrt)
    return rebuild(x, list(out))


def adjoint_gradients(
    model: Callable[..., State],
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    loss: LossFn,
    *,
    prediction: Prediction | Mapping[str, Prediction],
    cond: Any = None,
    params: Iterable[Tensor] | None = None,
    order: int = 2,
    mask: Mask = None,
    refine: int = 0,
) -> AdjointResult:
    """Sample, evaluate ``loss`` and return its gradients by AdjointDPM (:class:`AdjointResult`).

    Arguments as :func:`adjoint_sample`; ``loss(x0) -> scalar tensor`` is the loss of the
    sample. Gradients are taken with respect to the initial state, every floating tensor of
    ``cond`` and ``params`` (default: all parameters of ``model`` that require grad), whether
    or not they require grad; nothing is accumulated into ``.grad``. A loss that is not a finite
    scalar raises :class:`~polyfold.core.errors.InputError`.
    """
    if not callable(loss):
        raise InputError(f"loss: expected a callable x0 -> scalar tensor, got {loss!r}")
    cond_in = _map_cond(cond, lambda t: t.detach().requires_grad_(True))
    if isinstance(cond, Mapping):
        cond_run = {k: cond_in[k] if cond_in[k] is not None else v for k, v in cond.items()}
    else:
        cond_run = cond_in if cond_in is not None else cond
    ps = _params(model, params)
    solver = _Solver(
        model,
        paths,
        x,
        grid,
        prediction=prediction,
        cond=cond_run,
        order=order,
        mask=mask,
        refine=refine,
    )
    out, stash = solver.forward(x)
    _check_finite(out, "sample")
    nfe_forward = solver.nfe
    with torch.enable_grad():
        ins = [t.detach().requires_grad_(True) for t in leaves(out)]
        value = loss(rebuild(out, ins))
        if not isinstance(value, Tensor) or value.numel() != 1:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(f"loss: expected a scalar tensor, got {got}")
        if not bool(torch.isfinite(value).all()):
            raise InputError(
                f"loss: returned {value.item()} on the sample; expected a finite value"
            )
        grads = torch.autograd.grad(value.reshape(()), ins, allow_unused=True)
    a = rebuild(out, _or_zeros(grads, ins))
    cond_leaves = _cond_leaves(cond_run)
    grad_x, gw = solver.backward(out, stash, a, [*cond_leaves, *ps])
    it = iter(gw[: len(cond_leaves)])
    return AdjointResult(
        x=out,
        loss=float(value.detach()),
        grad_x=grad_x,
        grad_cond=_map_cond(cond_run, lambda _: next(it)),
        grad_params=gw[len(cond_leaves) :],
        nfe_forward=nfe_forward,
        nfe_backward=solver.nfe - nfe_forward,
    )


def pf_ode_sample(
    model: Callable[..., State],
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    prediction: Prediction | Mapping[str, Prediction],
    cond: Any = None,
    order: int = 2,
    mask: Mask = None,
) -> State:
    """The forward solver of :func:`adjoint_sample` with an ordinary autograd graph: exact
    back-propagation through every step (memory linear in the step count)."""
    solver = _Solver(
        model,
        paths,
        x,
        grid,
        prediction=prediction,
        cond=cond,
        order=order,
        mask=mask,
        refine=0,
    )
    for i in range(solver.steps):
        x = solver.step(x, i, i + 1)
    return x
