r"""Exponential-integrator machinery shared by DDIM, DPM-Solver(++), UniPC, DEIS and PNDM.

In the half log-SNR ``ell = log(alpha/sigma)`` (DPM-Solver's lambda), with ``h = ell_t - ell_s``,
the probability-flow ODE and the reverse SDE are solved exactly up to one integral of the model:

- data prediction:  ``x_t = (sigma_t/sigma_s) x_s + alpha_t int e^{-(ell_t - l)} x0(l) dl``;
- noise prediction: ``x_t = (alpha_t/alpha_s) x_s - sigma_t int e^{(ell_t - l)} eps(l) dl``,

(integrals over ``l`` from ``ell_s`` to ``ell_t``);
- reverse SDE, data prediction (SDE-DPM-Solver++):
  ``x_t = (sigma_t/sigma_s) e^{-h} x_s + 2 alpha_t int e^{-2(ell_t-l)} x0(l) dl
  + sigma_t sqrt(1 - e^{-2h}) z``.

Expanding the prediction ``m(l) = sum_k (l - ell_s)^k m^(k)(ell_s) / k!`` turns each into

    x_t = a x_s + sum_k  b H phi_{k+1}(z) * h^k m^(k)(ell_s),

a :class:`Frame` ``(a, b, H, z)``: ``(sigma_t/sigma_s, alpha_t, h, -h)`` for x0,
``(alpha_t/alpha_s, -sigma_t, h, h)`` for eps and ``(sigma_t/sigma_s e^{-h}, alpha_t, 2h, -2h)``
for the SDE, with ``phi_k(z) = int_0^1 e^{(1-u) z} u^(k-1)/(k-1)! du
= (e^z - sum_{j<k} z^j/j!) / z^k`` (:func:`phi`). The ``k = 0`` term is DDIM / DPM-Solver-1.
:func:`poly_weights` integrates the polynomial through past outputs exactly (the exponential
Adams-Bashforth step behind DPM-Solver-3M and log-rho DEIS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from polyfold.core.samplers._core import Level

__all__ = ["Frame", "Kind", "frame", "phi", "poly_weights"]

Kind = Literal["x0", "eps", "sde"]


def phi(k: int, z: float) -> float:
    """``phi_k(z) = (e^z - sum_{j<k} z^j / j!) / z^k`` for ``k >= 1`` (a series near 0)."""
    if abs(z) < 0.25:
        term = 1.0 / math.factorial(k)
        total = term
        for j in range(1, 30):
            term *= z / (j + k)
            total += term
        return total
    rest, term = math.expm1(z), 1.0
    for j in range(1, k):
        term *= z / j
        rest -= term
    return rest / z**k


@dataclass(frozen=True, slots=True)
class Frame:
    """``x_t = a x_s + sum_k coef(k) h^k m^(k)`` for one step ``s -> t`` (see module doc)."""

    a: float
    b: float
    H: float
    z: float
    h: float

    def coef(self, k: int) -> float:
        """``b H phi_{k+1}(z)``, the weight of ``h^k m^(k)``; ``k = 0`` also for ``h = inf``."""
        if k == 0:  # H phi_1(z) = (H/z) expm1(z), and H/z = -1 for x0/SDE, +1 for eps
            return self.b * math.copysign(1.0, self.z) * math.expm1(self.z)
        return self.b * self.H * phi(k + 1, self.z)


def frame(kind: Kind, s: Level, t: Level) -> Frame:
    """The :class:`Frame` of a step from level ``s`` to level ``t`` (``t`` not the data point)."""
    h = t.ell - s.ell
    if kind == "x0":
        return Frame(t.sigma / s.sigma, t.alpha, h, -h, h)
    if kind == "eps":
        return Frame(t.alpha / s.alpha, -t.sigma, h, h, h)
    return Frame(t.sigma / s.sigma * math.exp(-h), t.alpha, 2.0 * h, -2.0 * h, h)


def _lagrange(nodes: Sequence[float]) -> list[list[float]]:
    """Monomial coefficients ``c[j][k]`` of the Lagrange basis ``L_j(u) = sum_k c[j][k] u^k``."""
    basis = []
    for j, uj in enumerate(nodes):
        poly, denom = [1.0], 1.0
        for m, um in enumerate(nodes):
            if m == j:
                continue
            poly = [0.0, *poly]  # multiply by (u - um)
            for k in range(len(poly) - 1):
                poly[k] -= um * poly[k + 1]
            denom *= uj - um
        basis.append([c / denom for c in poly])
    return basis


def poly_weights(fr: Frame, nodes: Sequence[float]) -> list[float]:
    """Weights ``w_j`` of ``x_t = a x_s + sum_j w_j m_j``: the exact integral of the polynomial
    through ``(u_j, m_j)``, ``u_j = (ell_j - ell_s)/h`` (``u_0 = 0`` is the step's start).

    With ``P(u) = sum_j m_j L_j(u)``, ``h^k m^(k)(ell_s) = P^(k)(0) = sum_j m_j k! c_jk``, so
    ``w_j = sum_k coef(k) k! c_jk``.
    """
    coefs = [fr.coef(k) * math.factorial(k) for k in range(len(nodes))]
    return [sum(c * ck for c, ck in zip(coefs, cj, strict=True)) for cj in _lagrange(nodes)]
