r"""Guidance: :class:`~polyfold.core.denoiser.Denoiser` wrappers that steer any sampler.

Every wrapper is itself a denoiser ``(x, t) -> Denoised(x0, eps)``, so it works with every
sampler of :mod:`polyfold.core.samplers` unchanged. On a path ``x_t = alpha x0 + sigma eps``:

- :func:`cfg`, classifier-free guidance (Ho & Salimans) with scale ``w``:
  ``x0 = x0_u + w (x0_c - x0_u)``, ``eps = eps_u + w (eps_c - eps_u)`` (``w = 1`` is the
  conditional model, ``w = 0`` the unconditional one; the pair stays consistent). With
  ``interval=(t_lo, t_hi)`` guidance acts only for ``t_lo <= t <= t_hi`` and the conditional
  prediction alone is used elsewhere (Kynkäänniemi et al., "Applying Guidance in a Limited
  Interval Improves Sample and Distribution Quality").
- :func:`cfg_pp`, CFG++ (Chung et al.): ``x0 = x0_u + lam (x0_c - x0_u)`` with ``lam`` in
  [0, 1] and ``eps = eps_u``, a deliberately inconsistent pair: samplers that re-noise with
  ``eps`` (DDIM: ``x' = alpha' x0 + sigma' eps``) re-noise with the unconditional noise. On one
  DDIM step from half log-SNR ``ell`` to ``ell' = ell + h`` (``ell = log(alpha/sigma)``) it
  equals CFG with ``w = lam / (1 - e^{-h})`` (:func:`cfg_pp_equivalent_scale`): small ``lam``
  is large ``w`` on fine grids.
- :func:`classifier_guidance`: ``score' = score + w grad_x log p(y | x_t)``, i.e.
  ``eps' = eps - w sigma grad`` and ``x0' = x0 + w (sigma^2/alpha) grad`` (Dhariwal & Nichol);
  by Bayes, ``w = 1`` with the exact classifier gives the exact conditional score.
- :func:`observation_guidance`: the same with ``grad = -grad_{x_t} E(x0_hat(x_t), t)`` for a
  differentiable energy ``E`` of the predicted data, back-propagated through the denoiser:
  TSDiff's self-guidance (``E`` the MSE or quantile loss on the observed entries, and
  ``eps' = eps + w sigma grad_x E`` exactly as its DDIM guidance), DPS-style reconstruction
  (``E = ||y - A(x0_hat)||``: DPS's step ``zeta / ||y - A(x0_hat)||`` on the squared norm is
  the gradient of the norm), motion editing. ``sigma_scaling=False`` drops the ``sigma``:
  ``eps' = eps + w grad_x E``.
- :func:`inpaint`: replacement in the known entries: ``x0 = y`` there and
  ``eps = (x - alpha y)/sigma`` (the pair stays consistent), the unknown entries as predicted.
  Exponential-integrator samplers (DDIM, DPM-Solver(++), UniPC, DEIS) are exact on constant
  predictions, so the known entries of the state stay exactly ``alpha_t y + sigma_t eps_0``
  (``y`` re-noised to the current time with the initial noise ``eps_0``) and reach ``y`` at the
  data point; with ``generator`` the network instead sees them re-noised with fresh noise at
  every call (the classic replacement of Song et al.). :func:`repaint` adds RePaint's
  resampling (jump back up and denoise again).

A wrapper's ``nfe`` counts network evaluations (one per call of a wrapped
:class:`~polyfold.core.denoiser.ModelDenoiser`, whatever its batch size); a sampler's
``SampleResult.nfe`` counts calls of the wrapper. Batched CFG evaluates the conditional and the
unconditional predictions in one network call on a ``2B`` batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser, ModelDenoiser, NFECounter
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath, Paths
from polyfold.core.samplers.result import SampleResult
from polyfold.core.state import Mask, State, expand_mask, expand_to, tree_map

__all__ = [
    "CFG",
    "ClassifierGuidance",
    "Inpaint",
    "ObservationGuidance",
    "cfg",
    "cfg_pp",
    "cfg_pp_equivalent_scale",
    "classifier_guidance",
    "inpaint",
    "observation_guidance",
    "repaint",
]

GradFn = Callable[[State, Tensor], State]
EnergyFn = Callable[[State, Tensor], Tensor]


# -- helpers -----------------------------------------------------------------------------------
def _leaves(x: State) -> list[Tensor]:
    return list(x.values()) if isinstance(x, Mapping) else [x]


def _rebuild(x: State, leaves: Sequence[Tensor]) -> State:
    return dict(zip(x, leaves, strict=True)) if isinstance(x, Mapping) else leaves[0]


def _check_paths(paths: object, name: str = "paths") -> None:
    items = paths.values() if isinstance(paths, Mapping) else [paths]
    for p in items:
        if not isinstance(p, GaussianPath):
            raise InputError(f"{name}: expected a GaussianPath (or a dict of them), got {p!r}")


def _check_denoiser(d: object, name: str) -> None:
    if not callable(d):
        raise InputError(f"{name}: expected a Denoiser (x, t) -> Denoised, got {d!r}")


def _scale(value: object, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"{name}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _denoise(d: Denoiser, x: State, t: Tensor, levels: Any) -> Denoised:
    """``d(x, t)``, through ``d.at_levels`` when the caller gave the levels and ``d`` has it."""
    at_levels = getattr(d, "at_levels", None)
    if levels is None or at_levels is None:
        return d(x, t)
    out: Denoised = at_levels(x, t, levels)
    return out


def _alpha_sigma(paths: Paths, x: State, t: Tensor, levels: Any = None) -> Any:
    """Per key ``(alpha, sigma)`` at ``t`` viewed for the key's tensor: from the caller's
    ``levels`` (numbers) when given, else the path evaluated in float64."""

    def one(xi: Tensor, p: GaussianPath, lv: Any) -> tuple[Tensor, Tensor]:
        if lv is not None:
            return (
                torch.full((), lv[0], dtype=xi.dtype, device=xi.device),
                torch.full((), lv[1], dtype=xi.dtype, device=xi.device),
            )
        tt = torch.as_tensor(t).to(device=xi.device, dtype=F64)
        a = expand_to(p.alpha(tt).to(xi.dtype), xi)
        return a, expand_to(p.sigma(tt).to(xi.dtype), xi)

    return tree_map(one, x, paths, levels)


class _Wrapper:
    """A denoiser wrapper: ``__call__`` and the optional ``at_levels`` share :meth:`_eval`."""

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        raise NotImplementedError

    def __call__(self, x: State, t: Tensor) -> Denoised:
        return self._eval(x, t, None)

    def at_levels(self, x: State, t: Tensor, levels: Any) -> Denoised:
        """:meth:`__call__` with the paths' coefficients at ``t`` given by the sampler."""
        return self._eval(x, t, levels)


def _shift_score(
    d: Denoised,
    x: State,
    t: Tensor,
    paths: Paths,
    grad: State,
    w: float,
    sigma_power: int,
    levels: Any = None,
) -> Denoised:
    """``score += w sigma^(sigma_power - 1) grad``: ``eps -= w sigma^p grad``, ``x0`` to match.

    ``x0 = (x - sigma eps)/alpha`` moves by ``w sigma^(p+1) grad / alpha`` (left as is where
    ``alpha = 0``, where ``x`` does not determine it).
    """
    coefs = _alpha_sigma(paths, x, t, levels)

    def one(x0: Tensor, eps: Tensor, g: Tensor, c: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        a, s = c
        step = w * s**sigma_power * g
        dx0 = torch.where(a > 0, s * step / torch.where(a > 0, a, 1.0), 0.0)
        return x0 + dx0, eps - step

    out = tree_map(one, d.x0, d.eps, grad, coefs)
    if isinstance(out, dict):
        return Denoised({k: v[0] for k, v in out.items()}, {k: v[1] for k, v in out.items()})
    return Denoised(out[0], out[1])


# -- classifier-free guidance ------------------------------------------------------------------
class _NotBatchable(Exception):
    pass


def _rows(c: Any, b: int) -> Any:
    """A condition as ``b`` batch rows (numbers and 0-d tensors broadcast), or raise."""
    if isinstance(c, Mapping):
        return {k: _rows(v, b) for k, v in c.items()}
    if isinstance(c, bool) or c is None:
        raise _NotBatchable
    if isinstance(c, int | float):
        c = torch.tensor(c)
    if not isinstance(c, Tensor):
        raise _NotBatchable
    if c.ndim == 0:
        return c.expand(b)
    if c.shape[0] == b:
        return c
    if c.shape[0] == 1:
        return c.expand(b, *c.shape[1:])
    raise _NotBatchable


def _cat_cond(c: Any, u: Any, b: int) -> Any:
    """``cat([c, u])`` along the batch for a ``2B`` call (``c``/``u`` conditions of ``B`` rows)."""
    if c is None and u is None:
        return None
    if isinstance(c, Mapping) != isinstance(u, Mapping):
        raise _NotBatchable
    if isinstance(c, Mapping):
        if set(c) != set(u):
            raise _NotBatchable
        return {k: _cat_cond(c[k], u[k], b) for k in c}
    rc, ru = _rows(c, b), _rows(u, b)
    if rc.shape[1:] != ru.shape[1:]:
        raise _NotBatchable
    return torch.cat([rc, ru.to(rc.device)])


def _lerp(u: State, c: State, w: float) -> State:
    """``u + w (c - u)``, exactly ``u`` at ``w = 0`` and exactly ``c`` at ``w = 1``."""
    return tree_map(lambda ui, ci: torch.lerp(ui, ci.to(ui.dtype), w), u, c)  # type: ignore[no-any-return]


def _select(mask: Tensor, a: State, b: State) -> State:
    """Per example: ``a`` where ``mask`` (shape ``(B,)``), else ``b``."""
    return tree_map(lambda ai, bi: torch.where(expand_to(mask, ai), ai, bi), a, b)  # type: ignore[no-any-return]


class CFG(_Wrapper):
    """Classifier-free guidance or CFG++ as a :class:`~polyfold.core.denoiser.Denoiser`.

    Built by :func:`cfg` and :func:`cfg_pp`; see the module docstring for the formulas.
    ``nfe`` counts network evaluations made through this wrapper.
    """

    def __init__(
        self,
        cond: Denoiser,
        uncond: Any,
        scale: float,
        *,
        plus_plus: bool = False,
        interval: tuple[float, float] | None = None,
        batch: bool = True,
    ) -> None:
        _check_denoiser(cond, "cond")
        name = "scale (CFG++ lambda)" if plus_plus else "scale"
        self.scale = _scale(scale, name, *((0.0, 1.0) if plus_plus else (-math.inf, math.inf)))
        self.plus_plus = plus_plus
        if interval is not None:
            ok = isinstance(interval, tuple | list) and len(interval) == 2
            if not ok or not all(isinstance(v, int | float) for v in interval):
                raise InputError(f"interval: expected a pair (t_lo, t_hi), got {interval!r}")
            if not interval[0] <= interval[1]:
                raise InputError(f"interval: expected t_lo <= t_hi, got {interval!r}")
            interval = (float(interval[0]), float(interval[1]))
        self.interval = interval
        self.cond = cond
        if isinstance(uncond, Denoiser):  # any callable
            self.uncond: Denoiser = uncond
            self._null: Any = None
            same_net = (
                isinstance(cond, ModelDenoiser)
                and isinstance(uncond, ModelDenoiser)
                and uncond.model is cond.model
                and uncond.paths == cond.paths
                and uncond.prediction == cond.prediction
            )
            self._batch = batch and same_net
        else:  # a null condition for the same network
            if not isinstance(cond, ModelDenoiser):
                raise InputError(
                    "uncond: a null condition (not a denoiser) needs cond to be a network "
                    f"wrapped by polyfold.core.denoiser.as_denoiser, got cond={cond!r}"
                )
            self._null = uncond
            self.uncond = ModelDenoiser(
                cond.model,
                cond.paths,
                prediction=cond.prediction,
                cond=uncond,
                counter=cond.counter,
            )
            self._batch = batch
        self._own = NFECounter()

    @property
    def nfe(self) -> int:
        """Network evaluations made through this wrapper (a batched pair counts once)."""
        return self._own.count

    def _call(self, d: Denoiser, x: State, t: Tensor, levels: Any) -> Denoised:
        self._own.add()
        return _denoise(d, x, t, levels)

    def _both(self, x: State, t: Tensor, levels: Any) -> tuple[Denoised, Denoised]:
        """``(cond, uncond)`` predictions: one ``2B`` network call when possible."""
        if self._batch:
            c, u = self.cond, self.uncond
            assert isinstance(c, ModelDenoiser)
            assert isinstance(u, ModelDenoiser)
            b = _leaves(x)[0].shape[0]
            try:
                both_cond = _cat_cond(c.cond, u.cond, b)
            except _NotBatchable:
                both_cond = _NotBatchable
            if both_cond is not _NotBatchable:
                fused = ModelDenoiser(
                    c.model, c.paths, prediction=c.prediction, cond=both_cond, counter=c.counter
                )
                x2 = tree_map(lambda xi: torch.cat([xi, xi]), x)
                out = self._call(fused, x2, torch.cat([t, t]), levels)

                def half(k: int) -> Denoised:
                    def part(v: State) -> State:
                        return tree_map(lambda vi: vi[k * b : (k + 1) * b], v)  # type: ignore[no-any-return]

                    return Denoised.lazy(lambda: part(out.x0), lambda: part(out.eps))

                return half(0), half(1)
        return self._call(self.cond, x, t, levels), self._call(self.uncond, x, t, levels)

    def _combine(self, c: Denoised, u: Denoised) -> Denoised:
        x0 = _lerp(u.x0, c.x0, self.scale)
        return Denoised(x0, u.eps if self.plus_plus else _lerp(u.eps, c.eps, self.scale))

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        if self.scale == 1.0 and not self.plus_plus:  # the conditional prediction everywhere
            return self._call(self.cond, x, t, levels)
        inside = self._inside(t)
        everywhere = inside is None or bool(inside.all())
        if inside is not None and not bool(inside.any()):
            return self._call(self.cond, x, t, levels)
        if self.scale == 0.0 and everywhere:
            return self._call(self.uncond, x, t, levels)
        c, u = self._both(x, t, levels)
        guided = self._combine(c, u)
        if everywhere:
            return guided
        assert inside is not None
        return Denoised(_select(inside, guided.x0, c.x0), _select(inside, guided.eps, c.eps))

    def _inside(self, t: Tensor) -> Tensor | None:
        """Per example, whether ``t`` lies in the guidance interval (``None``: no interval)."""
        if self.interval is None:
            return None
        tt = torch.as_tensor(t).to(F64)
        return (tt >= self.interval[0]) & (tt <= self.interval[1])

    def __repr__(self) -> str:
        kind = "CFG++" if self.plus_plus else "CFG"
        return f"{kind}(scale={self.scale}, interval={self.interval}, batched={self._batch})"


def cfg(
    cond: Denoiser,
    uncond: Any,
    scale: float,
    *,
    interval: tuple[float, float] | None = None,
    batch: bool = True,
) -> CFG:
    """Classifier-free guidance ``x0 = x0_u + scale (x0_c - x0_u)`` (and the same for ``eps``).

    Args:
        cond: the conditional denoiser.
        uncond: the unconditional denoiser; or, when ``cond`` is a network wrapped by
            :func:`~polyfold.core.denoiser.as_denoiser`, the null condition to pass to the same
            network instead of ``cond``'s condition (anything that is not callable, e.g.
            :data:`polyfold.core.testing.NULL_LABEL`, a tensor of null tokens, ``None``).
        scale: the guidance scale ``w`` (1: conditional, 0: unconditional; > 1 guides).
        interval: ``(t_lo, t_hi)``: guide only for ``t_lo <= t <= t_hi`` (per example), use the
            conditional prediction alone elsewhere (one network call there).
        batch: evaluate both predictions in one ``2B`` network call when both are the same
            network (conditions concatenated along the batch; numbers and 0-d or 1-row tensors
            are broadcast to ``B`` rows); otherwise, or with ``batch=False``, two calls.
    """
    return CFG(cond, uncond, scale, interval=interval, batch=batch)


def cfg_pp(
    cond: Denoiser,
    uncond: Any,
    scale: float,
    *,
    interval: tuple[float, float] | None = None,
    batch: bool = True,
) -> CFG:
    """CFG++: ``x0 = x0_u + lam (x0_c - x0_u)``, ``eps = eps_u``, ``lam = scale`` in [0, 1].

    Arguments as :func:`cfg`. Meant for samplers that re-noise with ``eps`` (DDIM and its
    stochastic variants); :func:`cfg_pp_equivalent_scale` gives the CFG scale of one DDIM step.
    """
    return CFG(cond, uncond, scale, plus_plus=True, interval=interval, batch=batch)


def cfg_pp_equivalent_scale(lam: float, path: GaussianPath, t: float, t_next: float) -> float:
    """The CFG scale ``w`` whose DDIM step ``t -> t_next`` equals CFG++'s at ``lam``.

    DDIM with CFG: ``x' = (sigma'/sigma) x + (alpha' - alpha sigma'/sigma) x0_w``; with CFG++:
    ``x' = (sigma'/sigma) x + alpha' x0_lam - (alpha sigma'/sigma) x0_u``. Equal for
    ``w = lam alpha' / (alpha' - alpha sigma'/sigma) = lam / (1 - e^{-h})``,
    ``h = ell(t_next) - ell(t)``, ``ell = log(alpha/sigma)``.
    """
    ell = 0.5 * path.log_snr(torch.tensor([t, t_next], dtype=F64))
    h = float(ell[1] - ell[0])
    if not h > 0:
        raise InputError(f"t_next: expected a less noisy time than t={t}, got {t_next}")
    return lam / -math.expm1(-h)


# -- gradient guidance ---------------------------------------------------------------------------
class ClassifierGuidance(_Wrapper):
    """``eps' = eps - scale sigma grad_log_prob(x, t)``; built by :func:`classifier_guidance`."""

    def __init__(self, denoiser: Denoiser, grad_log_prob: GradFn, scale: float, *, paths: Paths):
        _check_denoiser(denoiser, "denoiser")
        if not callable(grad_log_prob):
            raise InputError(
                f"grad_log_prob: expected a callable (x, t) -> grad, got {grad_log_prob!r}"
            )
        _check_paths(paths)
        self.denoiser, self.grad_log_prob, self.paths = denoiser, grad_log_prob, paths
        self.scale = _scale(scale, "scale")

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        d = _denoise(self.denoiser, x, t, levels)
        if self.scale == 0.0:
            return d
        g = self.grad_log_prob(x, t)
        return _shift_score(d, x, t, self.paths, g, self.scale, 1, levels)


def classifier_guidance(
    denoiser: Denoiser, grad_log_prob: GradFn, scale: float, *, paths: Paths
) -> ClassifierGuidance:
    """Classifier guidance: ``score' = score + scale grad_x log p(y | x_t, t)``.

    Args:
        denoiser: the (unconditional) denoiser.
        grad_log_prob: ``(x, t) -> grad_x log p(y | x, t)``, a state like ``x`` (e.g. the
            autograd gradient of a noisy classifier's log-probability of the target class).
        scale: the guidance scale (1 with the exact classifier: the exact conditional score).
        paths: the path (a dict per key for dict states), for ``alpha(t)`` and ``sigma(t)``.
    """
    return ClassifierGuidance(denoiser, grad_log_prob, scale, paths=paths)


class ObservationGuidance(_Wrapper):
    """Energy guidance through the denoiser; built by :func:`observation_guidance`."""

    def __init__(
        self,
        denoiser: Denoiser,
        energy: EnergyFn,
        scale: float,
        *,
        paths: Paths,
        sigma_scaling: bool = True,
    ) -> None:
        _check_denoiser(denoiser, "denoiser")
        if not callable(energy):
            raise InputError(f"energy: expected a callable (x0_hat, t) -> energy, got {energy!r}")
        _check_paths(paths)
        self.denoiser, self.energy, self.paths = denoiser, energy, paths
        self.scale = _scale(scale, "scale")
        self.sigma_scaling = bool(sigma_scaling)

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        if self.scale == 0.0:
            return _denoise(self.denoiser, x, t, levels)
        with torch.enable_grad():
            xs = [xi.detach().requires_grad_(True) for xi in _leaves(x)]
            xg = _rebuild(x, xs)
            d = _denoise(self.denoiser, xg, t, levels)
            det = Denoised(tree_map(Tensor.detach, d.x0), tree_map(Tensor.detach, d.eps))
            e = self.energy(d.x0, t)
            if not isinstance(e, Tensor) or e.numel() not in (1, xs[0].shape[0]):
                raise InputError(
                    "energy: expected a scalar or one energy per example (B,), got "
                    f"{tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__}"
                )
            grads = torch.autograd.grad(e.sum(), xs, allow_unused=True)
        g = _rebuild(
            x,
            [
                -gi if gi is not None else torch.zeros_like(xi)
                for gi, xi in zip(grads, xs, strict=True)
            ],
        )
        return _shift_score(
            det, x, t, self.paths, g, self.scale, 1 if self.sigma_scaling else 0, levels
        )


def observation_guidance(
    denoiser: Denoiser,
    energy: EnergyFn,
    scale: float,
    *,
    paths: Paths,
    sigma_scaling: bool = True,
) -> ObservationGuidance:
    """Guidance by an energy of the predicted data, ``E(x0_hat(x_t), t)``.

    ``g = grad_{x_t} E`` by back-propagation through the denoiser (one network call with
    autograd per step), then ``eps' = eps + scale sigma g`` (``sigma_scaling``, TSDiff and
    classifier guidance with ``log p(y | x_t) = -E``) or ``eps' = eps + scale g``; ``x0``
    moves to keep the pair consistent.

    Args:
        denoiser: the denoiser (differentiable in ``x``).
        energy: ``(x0_hat, t) -> (B,)`` energies (or their sum), low where ``x0_hat`` agrees
            with the observation; e.g. ``((x0 - y) ** 2 * known).sum(dims)``.
        scale: the guidance strength.
        paths: the path (a dict per key for dict states).
        sigma_scaling: multiply the ``eps`` shift by ``sigma(t)`` (TSDiff, DPS-like in score).
    """
    return ObservationGuidance(denoiser, energy, scale, paths=paths, sigma_scaling=sigma_scaling)


# -- inpainting ------------------------------------------------------------------------------------
class Inpaint(_Wrapper):
    """Replacement inpainting as a denoiser; built by :func:`inpaint`."""

    def __init__(
        self,
        denoiser: Denoiser,
        observation: State,
        known: Mask,
        *,
        paths: Paths,
        generator: torch.Generator | None = None,
    ) -> None:
        _check_denoiser(denoiser, "denoiser")
        _check_paths(paths)
        if known is None:
            raise InputError("known: expected a bool mask (True = observed entry), got None")
        self.denoiser, self.paths, self.generator = denoiser, paths, generator

        def check(y: Tensor, m: Tensor | None) -> Tensor:
            if not isinstance(y, Tensor) or not y.is_floating_point():
                raise InputError("observation: expected a floating tensor (or a dict of them)")
            if m is None:
                return torch.zeros(y.shape, dtype=torch.bool, device=y.device)
            if not isinstance(m, Tensor) or m.dtype != torch.bool:
                raise InputError("known: expected a bool tensor (True = observed), per key")
            return expand_mask(m, y).expand_as(y)

        self.known: State = tree_map(check, observation, known)
        self.observation = observation

    def _known_for(self, x: State) -> None:
        def one(xi: Tensor, mi: Tensor) -> None:
            if mi.shape != xi.shape:
                raise InputError(
                    f"observation: shape {tuple(mi.shape)} differs from the state's "
                    f"{tuple(xi.shape)}"
                )

        tree_map(one, x, self.known)

    def project(self, x: State) -> State:
        """``x`` with the known entries set to the observation."""
        out: State = tree_map(
            lambda xi, yi, mi: torch.where(mi, yi.to(xi.dtype), xi), x, self.observation, self.known
        )
        return out

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        self._known_for(x)
        coefs = _alpha_sigma(self.paths, x, t, levels)
        x_in = x
        if self.generator is not None:

            def renoise(xi: Tensor, yi: Tensor, mi: Tensor, c: tuple[Tensor, Tensor]) -> Tensor:
                z = torch.randn(
                    xi.shape, generator=self.generator, device=xi.device, dtype=xi.dtype
                )
                return torch.where(mi, c[0] * yi.to(xi.dtype) + c[1] * z, xi)

            x_in = tree_map(renoise, x, self.observation, self.known, coefs)
        d = _denoise(self.denoiser, x_in, t, levels)

        def fix(
            x0: Tensor, eps: Tensor, xi: Tensor, yi: Tensor, mi: Tensor, c: tuple[Tensor, Tensor]
        ) -> tuple[Tensor, Tensor]:
            a, s = c
            y = yi.to(x0.dtype)
            eps_k = (xi - a * y) / torch.where(s > 0, s, 1.0)
            return torch.where(mi, y, x0), torch.where(mi & (s > 0), eps_k, eps)

        out = tree_map(fix, d.x0, d.eps, x, self.observation, self.known, coefs)
        if isinstance(out, dict):
            return Denoised({k: v[0] for k, v in out.items()}, {k: v[1] for k, v in out.items()})
        return Denoised(out[0], out[1])


def inpaint(
    denoiser: Denoiser,
    observation: State,
    known: Mask,
    *,
    paths: Paths,
    generator: torch.Generator | None = None,
) -> Inpaint:
    """Inpainting by replacement: a denoiser that predicts ``x0 = observation`` on known entries.

    Args:
        denoiser: the unconditional denoiser.
        observation: the observed values, shaped like the state (unknown entries ignored).
        known: bool, True where observed; shaped like the state or a prefix of it (``(B, L)``
            for ``(B, L, C)``); a dict per key for dict states.
        paths: the path (a dict per key).
        generator: if given, the network sees the known entries re-noised with fresh noise
            ``alpha_t y + sigma_t z`` at every call; otherwise it sees the sampler's state, whose
            known entries exponential-integrator samplers keep at ``alpha_t y + sigma_t eps_0``.

    The sampler's known entries end at the observation when the grid ends at the data point
    (the final denoising step returns ``x0``); :meth:`Inpaint.project` sets them exactly.
    """
    return Inpaint(denoiser, observation, known, paths=paths, generator=generator)


def repaint(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    observation: State,
    known: Mask,
    *,
    jump_length: int = 10,
    resamples: int = 10,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    mask: Mask = None,
) -> SampleResult:
    """RePaint (Lugmayr et al. 2022): replacement inpainting with resampling.

    The grid is walked in blocks of ``jump_length`` steps; each block is sampled ``resamples``
    times, the state being diffused back up to the block's start between passes,
    ``x_s = (alpha_s/alpha_t) x_t + sqrt(sigma_s^2 - (alpha_s sigma_t/alpha_t)^2) z``, which
    lets the unknown entries harmonise with the known ones. Steps are DDIM with ``eta``
    (1: DDPM's ancestral step, as RePaint) on the :func:`inpaint` denoiser; ``resamples=1`` is
    plain replacement sampling. Returns the :class:`~polyfold.core.samplers.result.SampleResult`
    with ``nfe`` the number of denoiser calls.
    """
    from polyfold.core.samplers.grids import check_grid
    from polyfold.core.samplers.stochastic import ddim

    for name, v in (("jump_length", jump_length), ("resamples", resamples)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name}: expected an integer >= 1, got {v!r}")
    g = check_grid(grid, paths)
    wrapped = inpaint(denoiser, observation, known, paths=paths)
    ts = g.tolist()
    nfe, start = 0, 0
    while start < len(ts) - 1:
        end = min(start + jump_length, len(ts) - 1)
        x_start = x
        for rep in range(resamples):
            res = ddim(
                wrapped, paths, x_start, g[start : end + 1], eta=eta, generator=generator, mask=mask
            )
            nfe += res.nfe
            x = res.x
            if rep < resamples - 1:
                x_start = _diffuse(x, paths, ts[end], ts[start], generator, mask)
        start = end
    return SampleResult(x=x, nfe=nfe, grid=g)


def _diffuse(
    x: State,
    paths: Paths,
    t_from: float,
    t_to: float,
    generator: torch.Generator | None,
    mask: Mask,
) -> State:
    """A draw of ``q(x_{t_to} | x_{t_from})`` for ``t_to > t_from`` (padding kept)."""
    tt = torch.tensor([t_from, t_to], dtype=F64)

    def one(xi: Tensor, p: GaussianPath, mi: Tensor | None) -> Tensor:
        a, s = p.alpha(tt).tolist(), p.sigma(tt).tolist()
        ratio = a[1] / a[0]
        std = math.sqrt(max(s[1] ** 2 - (ratio * s[0]) ** 2, 0.0))
        z = torch.randn(xi.shape, generator=generator, device=xi.device, dtype=xi.dtype)
        out = ratio * xi + std * z
        return out if mi is None else torch.where(expand_mask(mi, xi), out, xi)

    return tree_map(one, x, paths, mask)  # type: ignore[no-any-return]
