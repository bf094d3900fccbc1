"""Single sampler steps with a time per example, for code that steps outside a sampler loop.

The samplers take one time per step for the whole batch; distillation targets and DDIM
inversion draw a different time for every example. The steps here take ``(B,)`` float64 times
(or numbers), evaluate the path's coefficients in float64 and apply them in the state's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.paths import GaussianPath
from polyfold.core.state import expand_to

__all__ = ["ddim_step", "denoise_at", "path_coef"]


def path_coef(fn: Callable[[Tensor], Tensor], t64: Tensor, x: Tensor) -> Tensor:
    """A path coefficient (``path.alpha``, ``path.sigma`` ...) at float64 times ``t64``
    (``(B,)`` or 0-d), viewed for ``x`` in its dtype."""
    return expand_to(fn(t64).to(x.dtype), x)


def denoise_at(denoiser: Denoiser, x: Tensor, t64: Tensor) -> Denoised:
    """``denoiser(x, t)`` with ``t`` passed in ``x``'s dtype (what networks expect)."""
    return denoiser(x, t64.to(x.dtype))


def ddim_step(
    denoiser: Denoiser, path: GaussianPath, x: Tensor, t: Tensor, s: Tensor
) -> tuple[Tensor, Denoised]:
    """One deterministic DDIM step (:func:`~polyfold.core.samplers.ddim` with ``eta = 0``) from
    times ``t`` to ``s``: ``x_s = alpha_s x0_hat + sigma_s eps_hat``.

    ``t`` and ``s`` are float64 ``(B,)`` tensors (or 0-d), in either direction (``s > t`` is a
    DDIM-inversion step). Returns the new state and the denoiser's output at ``(x, t)``.
    """
    d = denoise_at(denoiser, x, t)
    x0, eps = d.x0, d.eps
    assert isinstance(x0, Tensor)
    assert isinstance(eps, Tensor)
    return path_coef(path.alpha, s, x) * x0 + path_coef(path.sigma, s, x) * eps, d
