"""Classifier-free guidance (with a guidance interval) and CFG++."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser, ModelDenoiser, NFECounter
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import (
    Wrapper,
    check_denoiser,
    check_scale,
    denoise,
    leaves,
)
from polyfold.core.paths import GaussianPath
from polyfold.core.state import State, expand_to, tree_map

__all__ = ["CFG", "cfg", "cfg_pp", "cfg_pp_equivalent_scale"]


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


class CFG(Wrapper):
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
        check_denoiser(cond, "cond")
        name = "scale (CFG++ lambda)" if plus_plus else "scale"
        self.scale = check_scale(scale, name, *((0.0, 1.0) if plus_plus else (-math.inf, math.inf)))
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
        return denoise(d, x, t, levels)

    def _both(self, x: State, t: Tensor, levels: Any) -> tuple[Denoised, Denoised]:
        """``(cond, uncond)`` predictions: one ``2B`` network call when possible."""
        if self._batch:
            c, u = self.cond, self.uncond
            assert isinstance(c, ModelDenoiser)
            assert isinstance(u, ModelDenoiser)
            b = leaves(x)[0].shape[0]
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


def drop_labels(y: Tensor, p: float, null: int, generator: torch.Generator | None = None) -> Tensor:
    """Class labels ``y`` with each replaced by the ``null`` label with probability ``p``: the
    training side of classifier-free guidance (one network, conditional and unconditional)."""
    if not 0 <= p < 1:
        raise InputError(f"p_uncond: expected a number in [0, 1), got {p!r}")
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null), y)


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
