"""What a network predicts, conversions between predictions, and EDM preconditioning.

With ``x_t = alpha x0 + sigma eps`` a model predicts one of

- ``"eps"``: the noise ``eps``;
- ``"x0"``: the clean data (the denoiser ``E[x0 | x_t]`` at the optimum);
- ``"v"``: ``alpha eps - sigma x0`` (Salimans & Ho);
- ``"velocity"``: the flow-matching velocity ``dx_t/dt = d_alpha x0 + d_sigma eps`` (needs the
  path's ``d_alpha``, ``d_sigma``);
- ``"score"``: ``grad log p_t(x_t) = -eps / sigma`` (Gaussian paths only).

Coefficients (``alpha``, ``sigma``, ``d_alpha``, ``d_sigma``) are Python numbers, 0-dim tensors
or batch-first tensors (``(B,)``) broadcast over the trailing dims. Every conversion goes through
the pair ``(x0, eps)``, which determines ``x_t`` and every other prediction; a conversion needing
``1/alpha`` is undefined where ``alpha = 0`` and one needing ``1/sigma`` where ``sigma = 0``
(velocity <-> x0/eps is defined everywhere). The result's dtype follows type promotion.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.state import expand_to

__all__ = [
    "PREDICTIONS",
    "EDMPrecond",
    "Prediction",
    "check_prediction",
    "convert",
    "from_x0_eps",
    "to_x0_eps",
]

Prediction = Literal["eps", "x0", "v", "velocity", "score"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)

Coef = Tensor | float


def check_prediction(value: object, name: str = "prediction") -> Prediction:
    """``value`` if it names a prediction type, else :class:`InputError`."""
    if value not in PREDICTIONS:
        raise InputError(f"{name}: expected one of {', '.join(PREDICTIONS)}, got {value!r}")
    return value  # type: ignore[return-value]


def _derivs(d_alpha: Coef | None, d_sigma: Coef | None, x: Tensor) -> tuple[Tensor, Tensor]:
    if d_alpha is None or d_sigma is None:
        raise InputError("d_alpha, d_sigma: required to convert from or to 'velocity'")
    return expand_to(d_alpha, x), expand_to(d_sigma, x)


def to_x0_eps(
    pred: Tensor,
    *,
    source: Prediction,
    x_t: Tensor,
    alpha: Coef,
    sigma: Coef,
    d_alpha: Coef | None = None,
    d_sigma: Coef | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``(x0, eps)`` implied by a prediction of type ``source`` at ``x_t``.

    ``v``: ``x0 = (alpha x - sigma v)/n``, ``eps = (sigma x + alpha v)/n``, ``n = alpha^2 +
    sigma^2``; velocity ``u``: ``x0 = (d_sigma x - sigma u)/det``, ``eps = (alpha u - d_alpha
    x)/det``, ``det = alpha d_sigma - sigma d_alpha``; score ``s``: ``eps = -sigma s``.
    """
    check_prediction(source, "source")
    a, s = expand_to(alpha, x_t), expand_to(sigma, x_t)
    if source == "x0":
        return pred, (x_t - a * pred) / s
    if source == "eps":
        return (x_t - s * pred) / a, pred
    if source == "score":
        eps = -s * pred
        return (x_t - s * eps) / a, eps
    if source == "v":
        n = a * a + s * s
        return (a * x_t - s * pred) / n, (s * x_t + a * pred) / n
    da, ds = _derivs(d_alpha, d_sigma, x_t)
    det = a * ds - s * da
    return (ds * x_t - s * pred) / det, (a * pred - da * x_t) / det


def from_x0_eps(
    x0: Tensor,
    eps: Tensor,
    *,
    target: Prediction,
    alpha: Coef,
    sigma: Coef,
    d_alpha: Coef | None = None,
    d_sigma: Coef | None = None,
) -> Tensor:
    """The prediction of type ``target`` given ``(x0, eps)``."""
    check_prediction(target, "target")
    if target == "x0":
        return x0
    if target == "eps":
        return eps
    a, s = expand_to(alpha, x0), expand_to(sigma, x0)
    if target == "score":
        return -eps / s
    if target == "v":
        return a * eps - s * x0
    da, ds = _derivs(d_alpha, d_sigma, x0)
    return da * x0 + ds * eps


def convert(
    pred: Tensor,
    *,
    source: Prediction,
    target: Prediction,
    x_t: Tensor,
    alpha: Coef,
    sigma: Coef,
    d_alpha: Coef | None = None,
    d_sigma: Coef | None = None,
) -> Tensor:
    """Convert a prediction of type ``source`` to type ``target`` (identity if equal)."""
    check_prediction(target, "target")
    if source == target:
        check_prediction(source, "source")
        return pred
    x0, eps = to_x0_eps(
        pred, source=source, x_t=x_t, alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma
    )
    return from_x0_eps(
        x0, eps, target=target, alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma
    )


class EDMPrecond(nn.Module):
    """Karras et al.'s preconditioning of a raw network ``F(x_in, c_noise, cond)``.

    ``D(x, s) = c_skip x + c_out F(c_in x, c_noise, cond)`` with ``c_skip = sd^2/(s^2 + sd^2)``,
    ``c_out = s sd / sqrt(s^2 + sd^2)``, ``c_in = 1/sqrt(s^2 + sd^2)``, ``c_noise = log(s)/4``
    (``sd = sigma_data``; ``c_noise`` has shape ``(B,)``). On any Gaussian path
    ``x_t / alpha = x0 + (sigma/alpha) eps`` is an EDM input at noise ``s = sigma(t)/alpha(t)``,
    so ``forward(x_t, t, cond) = D(x_t / alpha(t), sigma(t)/alpha(t))`` predicts ``x0``
    (``prediction = "x0"``), for every path with ``alpha > 0``. Train it with
    ``dsm_loss(..., prediction="x0", weighting="edm")``.
    """

    prediction: Prediction = "x0"

    def __init__(self, net: nn.Module, *, path: GaussianPath, sigma_data: float = 0.5) -> None:
        super().__init__()
        if not sigma_data > 0:
            raise InputError(f"sigma_data: expected a number > 0, got {sigma_data!r}")
        self.net, self.path, self.sigma_data = net, path, float(sigma_data)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)`` at EDM noise level ``sigma``."""
        sd2 = self.sigma_data**2
        norm = torch.sqrt(sigma**2 + sd2)
        return sd2 / norm**2, sigma * self.sigma_data / norm, 1.0 / norm, torch.log(sigma) / 4.0

    def denoise(self, x: Tensor, sigma: Tensor | float, cond: Any = None) -> Tensor:
        """EDM's ``D(x, sigma)``; ``sigma`` a scalar or ``(B,)``."""
        sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        out: Tensor = self.net(expand_to(c_in, x) * x, c_noise.expand(x.shape[0]), cond)
        return expand_to(c_skip, x) * x + expand_to(c_out, x) * out

    def forward(self, x_t: Tensor, t: Tensor | float, cond: Any = None) -> Tensor:
        """x0 prediction at path time ``t`` (scalar or ``(B,)``)."""
        t = torch.as_tensor(t, device=x_t.device)
        alpha = self.path.alpha(t.double()).to(x_t.dtype)
        sigma = self.path.sigma(t.double()).to(x_t.dtype)
        return self.denoise(x_t / expand_to(alpha, x_t), sigma / alpha, cond)
