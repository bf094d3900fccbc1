"""Gaussian forward paths ``x_t = alpha(t) x0 + sigma(t) eps``, ``t`` in [0, 1], ``t = 0`` is data.

Every path gives, on tensors ``t`` of any shape (results have ``t``'s shape and floating dtype;
integer or Python ``t`` gives the default dtype; the arithmetic runs in float64):

- ``alpha(t)``, ``sigma(t)`` and their time derivatives ``d_alpha(t)``, ``d_sigma(t)``;
- ``log_snr(t) = log(alpha^2 / sigma^2)`` (the true log-SNR, strictly decreasing in ``t``) and
  its exact inverse ``t_from_log_snr(lam)``, closed form for every path here;
- ``sde(t) -> (f, g)``: the forward SDE ``dx = f(t) x dt + g(t) dW`` with the same marginals,
  ``f = d log(alpha)/dt`` and ``g^2 = d(sigma^2)/dt - 2 f sigma^2``;
- ``sample_noise`` (a draw of ``eps``), ``perturb(x0, t, noise)`` and ``prior_sample``: a draw
  of ``N(0, sigma(t_max)^2 I)``, the Gaussian approximation of the ``t_max`` marginal that
  neglects ``alpha(t_max)^2 Var(x0)`` (exact where ``alpha(t_max) = 0``);
- ``t_min``, ``t_max``: the time range samplers integrate over.

Samplers work in log-SNR and never special-case a schedule. Where ``sigma = 0`` (``t = 0`` of a
VP path or an interpolant) the log-SNR is ``+inf``; where ``alpha = 0`` (``t = 1`` of the
interpolants) it is ``-inf``; ``t_from_log_snr`` maps ``+-inf`` back to those ends.

:class:`PFGMPath` (PFGM++) shares the EDM schedule but perturbs with a heavy-tailed kernel; it
sets ``gaussian = False`` and has no SDE, see its docstring.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Literal, TypeAlias

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_number
from polyfold.core.state import expand_to

__all__ = [
    "EDM",
    "VE",
    "DiscreteDDPM",
    "GaussianPath",
    "LinearInterpolant",
    "PFGMPath",
    "Paths",
    "TrigInterpolant",
    "VPCosine",
    "VPLinear",
    "ddpm_betas",
]


def _as_time(t: Tensor | float) -> Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        check_number(name, v, strict=True)


class GaussianPath(ABC):
    """Base of the forward paths: subclasses give the float64 kernels ``_alpha`` ... ``_d_sigma``.

    ``_log_snr``, ``_t_from_log_snr`` (a float64 bisection on [0, 1]) and ``_sde`` have generic
    defaults that subclasses override with closed forms.
    """

    t_min: float = 0.0
    t_max: float = 1.0
    #: False for non-Gaussian perturbation kernels (PFGM++): SDE samplers must refuse those.
    gaussian: ClassVar[bool] = True

    @abstractmethod
    def _alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _sigma(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _d_alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _d_sigma(self, t: Tensor) -> Tensor: ...

    def _log_snr(self, t: Tensor) -> Tensor:
        return 2.0 * (torch.log(self._alpha(t)) - torch.log(self._sigma(t)))

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        # log_snr decreases in t: keep [lo, hi] around the root; 64 halvings reach float64 spacing.
        lo, hi = torch.zeros_like(lam), torch.ones_like(lam)
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            right = self._log_snr(mid) > lam
            lo, hi = torch.where(right, mid, lo), torch.where(right, hi, mid)
        return 0.5 * (lo + hi)

    def _sde(self, t: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self._alpha(t), self._sigma(t)
        f = self._d_alpha(t) / alpha
        g2 = 2.0 * sigma * self._d_sigma(t) - 2.0 * f * sigma**2
        return f, g2.clamp_min(0.0).sqrt()

    @staticmethod
    def _eval(fn: Callable[[Tensor], Tensor], t: Tensor | float) -> Tensor:
        t = _as_time(t)
        return fn(t.to(F64)).to(t.dtype)

    def alpha(self, t: Tensor | float) -> Tensor:
        """Signal scale ``alpha(t)``."""
        return self._eval(self._alpha, t)

    def sigma(self, t: Tensor | float) -> Tensor:
        """Noise scale ``sigma(t)``."""
        return self._eval(self._sigma, t)

    def d_alpha(self, t: Tensor | float) -> Tensor:
        """``d alpha / dt``."""
        return self._eval(self._d_alpha, t)

    def d_sigma(self, t: Tensor | float) -> Tensor:
        """``d sigma / dt``."""
        return self._eval(self._d_sigma, t)

    def log_snr(self, t: Tensor | float) -> Tensor:
        """``lambda(t) = log(alpha^2 / sigma^2)``, strictly decreasing."""
        return self._eval(self._log_snr, t)

    def t_from_log_snr(self, lam: Tensor | float) -> Tensor:
        """The ``t`` with ``log_snr(t) = lam`` (inverse of :meth:`log_snr`)."""
        return self._eval(self._t_from_log_snr, lam)

    def sde(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """Drift coefficient ``f(t)`` and diffusion ``g(t)`` of ``dx = f x dt + g dW``."""
        t = _as_time(t)
        f, g = self._sde(t.to(F64))
        return f.to(t.dtype), g.to(t.dtype)

    def sample_noise(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """A draw of ``eps`` of the given batch-first shape: standard normal here."""
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)

    def perturb(self, x0: Tensor, t: Tensor | float, noise: Tensor) -> Tensor:
        """``alpha(t) x0 + sigma(t) noise``; ``t`` a scalar or ``(B,)``."""
        t = torch.as_tensor(t, device=x0.device)
        alpha = expand_to(self.alpha(t.to(F64)).to(x0.dtype), x0)
        sigma = expand_to(self.sigma(t.to(F64)).to(x0.dtype), x0)
        return alpha * x0 + sigma * noise

    def prior_sample(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """A draw from ``N(0, sigma(t_max)^2 I)``, where samplers start."""
        noise = self.sample_noise(shape, generator=generator, device=device, dtype=dtype)
        return noise * self.sigma(torch.tensor(self.t_max, dtype=F64)).item()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


#: A path, or for dict states one path per key.
Paths: TypeAlias = "GaussianPath | Mapping[str, GaussianPath]"


class _VP(GaussianPath):
    """Variance preserving, ``alpha^2 + sigma^2 = 1``: given by ``log_snr`` and ``beta``.

    ``beta(t) = -d log(alpha^2)/dt``; then ``alpha^2 = sigmoid(lambda)``,
    ``sigma^2 = sigmoid(-lambda)``, ``f = -beta/2``, ``g = sqrt(beta)``.
    """

    @abstractmethod
    def _log_snr(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _beta(self, t: Tensor) -> Tensor: ...

    def beta(self, t: Tensor | float) -> Tensor:
        """``beta(t) = -d log(alpha^2) / dt = g(t)^2``."""
        return self._eval(self._beta, t)

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.exp(0.5 * torch.nn.functional.logsigmoid(self._log_snr(t)))

    def _sigma(self, t: Tensor) -> Tensor:
        return torch.exp(0.5 * torch.nn.functional.logsigmoid(-self._log_snr(t)))

    def _d_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * self._beta(t) * self._alpha(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return 0.5 * self._beta(t) * self._alpha(t) ** 2 / self._sigma(t)

    def _sde(self, t: Tensor) -> tuple[Tensor, Tensor]:
        beta = self._beta(t)
        return -0.5 * beta, beta.sqrt()


class VPLinear(_VP):
    """score_sde's VP SDE: ``beta(t) = beta_min + t (beta_max - beta_min)``.

    ``-log(alpha^2) = m(t) = beta_min t + (beta_max - beta_min) t^2 / 2``,
    ``lambda = -log(expm1(m))``, inverse ``m = log(1 + e^-lambda)`` then the quadratic's root.
    ``t_min = 1e-3`` as score_sde's samplers (``sigma(0) = 0``, ``lambda(0) = +inf``).
    """

    t_min = 1e-3

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        _check_positive(beta_max=beta_max)
        if not (0.0 <= beta_min <= beta_max):
            raise InputError(f"beta_min: expected 0 <= beta_min <= beta_max, got {beta_min!r}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def _m(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def _log_snr(self, t: Tensor) -> Tensor:
        return -torch.log(torch.expm1(self._m(t)))

    def _beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        m = torch.logaddexp(torch.zeros_like(lam), -lam)
        d, b0 = self.beta_max - self.beta_min, self.beta_min
        den = b0 + torch.sqrt(b0 * b0 + 2.0 * d * m)
        return torch.where(m == 0, torch.zeros_like(m), 2.0 * m / den)


class VPCosine(_VP):
    """Improved DDPM's cosine schedule: ``alpha(t) = cos(a(t)) / cos(a(0))``,
    ``a(t) = (t + s)/(1 + s) * pi/2``.

    ``alpha(1) = 0``, so ``lambda(1) = -inf`` and ``beta(1) = inf``. iDDPM/diffusers tame this in
    discrete time by capping each beta at 0.999 (that exact schedule is
    ``DiscreteDDPM(kind="squaredcos_cap_v2")``); in continuous time the schedule is left exact
    and samplers stop at ``t_max = 0.9946`` (DPM-Solver's choice, ``lambda(t_max) ~ -9.5``,
    close to VPLinear's ``lambda(1) ~ -10``). ``t_min = 1e-3``.
    """

    t_min = 1e-3

    def __init__(self, s: float = 0.008, t_max: float = 0.9946) -> None:
        _check_positive(s=s)
        if not 0.0 < t_max <= 1.0:
            raise InputError(f"t_max: expected a number in (0, 1], got {t_max!r}")
        self.s, self.t_max = float(s), float(t_max)
        self._w = 0.5 * math.pi / (1.0 + self.s)
        self._a0 = self.s * self._w

    def _alpha(self, t: Tensor) -> Tensor:
        # cos(a) = sin(pi/2 - a) = sin(w (1 - t)): exactly 0 at t = 1
        return torch.sin(self._w * (1.0 - t)) / math.cos(self._a0)

    def _sigma(self, t: Tensor) -> Tensor:
        # 1 - cos^2(a)/cos^2(a0) = sin(a - a0) sin(a + a0) / cos^2(a0), accurate at small t
        a = self._a0 + self._w * t
        prod = torch.sin(self._w * t) * torch.sin(a + self._a0)
        return torch.sqrt(prod.clamp_min(0.0)) / math.cos(self._a0)

    def _log_snr(self, t: Tensor) -> Tensor:
        return 2.0 * (torch.log(self._alpha(t)) - torch.log(self._sigma(t)))

    def _beta(self, t: Tensor) -> Tensor:
        return 2.0 * self._w / torch.tan(self._w * (1.0 - t))

    def _d_sigma(self, t: Tensor) -> Tensor:
        a = self._a0 + self._w * t
        return self._w * torch.sin(2.0 * a) / (2.0 * math.cos(self._a0) ** 2 * self._sigma(t))

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        # With alpha, sigma from lambda and c0, s0 = cos(a0), sin(a0):
        # sin(a) = sqrt(s0^2 + c0^2 sigma^2), cos(a) = c0 alpha, and without cancellation
        # sin(a - a0) = c0 sigma^2 / (sin(a) + s0 alpha), cos(a - a0) = c0^2 alpha + s0 sin(a).
        alpha = torch.exp(0.5 * torch.nn.functional.logsigmoid(lam))
        sigma2 = torch.sigmoid(-lam)
        c0, s0 = math.cos(self._a0), math.sin(self._a0)
        sin_a = torch.sqrt(s0 * s0 + c0 * c0 * sigma2)
        da = torch.atan2(c0 * sigma2 / (sin_a + s0 * alpha), c0 * c0 * alpha + s0 * sin_a)
        return da / self._w


class TrigInterpolant(_VP):
    """``alpha = cos(pi t / 2)``, ``sigma = sin(pi t / 2)``: ``lambda = -2 log tan(pi t / 2)``,
    ``+inf`` at ``t = 0`` and ``-inf`` at ``t = 1``; ``t_min, t_max = 0, 1``."""

    def __init__(self) -> None:
        pass

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * (1.0 - t))

    def _sigma(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def _d_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * self._alpha(t)

    def _log_snr(self, t: Tensor) -> Tensor:
        return 2.0 * (torch.log(self._alpha(t)) - torch.log(self._sigma(t)))

    def _beta(self, t: Tensor) -> Tensor:
        return math.pi * self._sigma(t) / self._alpha(t)

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        return torch.atan(torch.exp(-0.5 * lam)) * (2.0 / math.pi)


BetaKind = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]


def ddpm_betas(
    n: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    kind: BetaKind = "linear",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """DDPM beta schedules as defined by diffusers (float32 there, the default here).

    ``linear``: evenly spaced betas; ``scaled_linear``: evenly spaced sqrt(beta) (latent
    diffusion); ``squaredcos_cap_v2``: ``beta_k = min(1 - abar((k+1)/n) / abar(k/n), 0.999)``
    with iDDPM's ``abar(t) = cos((t + 0.008)/1.008 * pi/2)^2``.
    """
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, n, dtype=dtype)
    if kind == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=dtype) ** 2
    if kind == "squaredcos_cap_v2":

        def abar(x: float) -> float:
            return math.cos((x + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - abar((k + 1) / n) / abar(k / n), 0.999) for k in range(n)]
        return torch.tensor(betas, dtype=dtype)
    raise InputError(
        f"kind: expected 'linear', 'scaled_linear' or 'squaredcos_cap_v2', got {kind!r}"
    )


class DiscreteDDPM(_VP):
    """The discrete DDPM schedule ``abar_k = prod_{i<=k} (1 - beta_i)``, ``k = 0..n-1``, exactly.

    Time mapping: step ``k`` sits at ``t_k = (k + 1)/n``, so ``alpha(t_k)^2 = abar_k`` (equal,
    after rounding to float32, to diffusers' ``DDPMScheduler.alphas_cumprod[k]``; the product is
    taken in ``dtype``, float32 like diffusers by default). Between steps the log-SNR is linear
    in ``t``; before the first step (``0 <= t < 1/n``) ``sigma^2 = n t beta_0``, so that
    ``t = 0`` is clean data; past ``t = 1`` the last segment is extended linearly.
    ``t_min = 1/n`` (the first step), ``t_max = 1``. :meth:`index_of` gives a network's integer
    timestep ``k`` for a ``t``.
    """

    def __init__(
        self,
        betas: Tensor | Sequence[float] | None = None,
        *,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        n: int = 1000,
        kind: BetaKind = "linear",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if betas is None:
            if not (isinstance(n, int) and n >= 2):
                raise InputError(f"n: expected an integer >= 2, got {n!r}")
            b = ddpm_betas(n, beta_start, beta_end, kind, dtype)
        else:
            b = torch.as_tensor(betas, dtype=dtype).detach().cpu()
        if b.ndim != 1 or b.numel() < 2 or not bool(((b > 0) & (b < 1)).all()):
            raise InputError("betas: expected a 1-D sequence of at least 2 values in (0, 1)")
        self.n = b.numel()
        self.kind = kind if betas is None else "custom"
        self.betas = b
        self.alphas_cumprod = torch.cumprod(1.0 - b, dim=0)
        self.t_min = 1.0 / self.n
        abar = self.alphas_cumprod.to(F64)
        self._knots_t = torch.arange(1, self.n + 1, dtype=F64) / self.n
        self._knots_lam = torch.log(abar) - torch.log1p(-abar)
        self._sigma2_0 = float(1.0 - abar[0])

    def __repr__(self) -> str:
        return f"DiscreteDDPM(n={self.n}, kind={self.kind!r})"

    def index_of(self, t: Tensor | float) -> Tensor:
        """The continuous step index ``n t - 1`` (``k`` at ``t_k``), for integer-time networks."""
        return _as_time(t) * self.n - 1

    def _knots(self, like: Tensor) -> tuple[Tensor, Tensor]:
        return self._knots_t.to(like.device), self._knots_lam.to(like.device)

    def _log_snr(self, t: Tensor) -> Tensor:
        kt, kl = self._knots(t)
        i = (torch.searchsorted(kt, t.contiguous(), right=True) - 1).clamp(0, self.n - 2)
        w = (t - kt[i]) / (kt[i + 1] - kt[i])
        lam = torch.lerp(kl[i], kl[i + 1], w)
        s2 = self.n * t * self._sigma2_0
        return torch.where(t < kt[0], torch.log1p(-s2) - torch.log(s2), lam)

    def _beta(self, t: Tensor) -> Tensor:
        kt, kl = self._knots(t)
        i = (torch.searchsorted(kt, t.contiguous(), right=True) - 1).clamp(0, self.n - 2)
        slope = (kl[i + 1] - kl[i]) / (kt[i + 1] - kt[i])
        first = self.n * self._sigma2_0 / (1.0 - self.n * t * self._sigma2_0)
        return torch.where(t < kt[0], first, -torch.sigmoid(-self._log_snr(t)) * slope)

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        kt, kl = self._knots(lam)
        j = torch.searchsorted(-kl, -lam.contiguous(), right=False)
        i = (j - 1).clamp(0, self.n - 2)
        t = torch.lerp(kt[i], kt[i + 1], (lam - kl[i]) / (kl[i + 1] - kl[i]))
        first = torch.sigmoid(-lam) / (self.n * self._sigma2_0)
        return torch.where(lam >= kl[0], first, t)


class VE(GaussianPath):
    """score_sde's VE SDE: ``alpha = 1``, ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``.

    NCSN convention: ``sigma(0) = sigma_min > 0`` (data at the smallest noise level), so
    ``lambda`` is finite on [0, 1]; ``t_from_log_snr`` extends the geometric law to all ``t``.
    ``f = 0``, ``g = sigma sqrt(2 log(sigma_max/sigma_min))``. ``t_min, t_max = 0, 1``.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0) -> None:
        _check_positive(sigma_min=sigma_min, sigma_max=sigma_max)
        if sigma_max <= sigma_min:
            raise InputError(f"sigma_max: expected > sigma_min={sigma_min}, got {sigma_max!r}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def _d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return self._sigma(t) * self._log_ratio

    def _log_snr(self, t: Tensor) -> Tensor:
        return -2.0 * (math.log(self.sigma_min) + t * self._log_ratio)

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        return (-0.5 * lam - math.log(self.sigma_min)) / self._log_ratio

    def _sde(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros_like(t), self._sigma(t) * math.sqrt(2.0 * self._log_ratio)


class EDM(GaussianPath):
    """Karras et al.'s EDM: ``alpha = 1``, ``sigma(t) = (a + t b)^rho``,
    ``a = sigma_min^(1/rho)``, ``b = sigma_max^(1/rho) - a``.

    A uniform decreasing grid in ``t`` on [0, 1] is exactly the EDM (Karras rho) sigma grid.
    ``sigma(0) = sigma_min``; the formula extends below ``t = 0`` down to ``sigma = 0`` at
    ``t = -a/b`` (``t_from_log_snr(+inf)``), so every ``sigma`` has its exact ``t``. EDM's final
    step to ``sigma = 0`` is the sampler's final denoise. ``f = 0``,
    ``g = sqrt(2 sigma d sigma/dt)``. ``t_min, t_max = 0, 1``.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        _check_positive(sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
        if sigma_max <= sigma_min:
            raise InputError(f"sigma_max: expected > sigma_min={sigma_min}, got {sigma_max!r}")
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        self._a = math.pow(self.sigma_min, 1.0 / self.rho)
        self._b = math.pow(self.sigma_max, 1.0 / self.rho) - self._a

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _sigma(self, t: Tensor) -> Tensor:
        return torch.pow(self._a + t * self._b, self.rho)

    def _d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return torch.pow(self._a + t * self._b, self.rho - 1.0) * (self.rho * self._b)

    def _log_snr(self, t: Tensor) -> Tensor:
        return -2.0 * self.rho * torch.log(self._a + t * self._b)

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        return (torch.exp(lam * (-0.5 / self.rho)) - self._a) / self._b

    def _sde(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros_like(t), torch.sqrt(2.0 * self._sigma(t) * self._d_sigma(t))


class LinearInterpolant(GaussianPath):
    """Rectified flow / linear stochastic interpolant: ``alpha = 1 - t``, ``sigma = t``.

    ``lambda = 2 log((1 - t)/t)`` is ``+inf`` at ``t = 0`` and ``-inf`` at ``t = 1``; the inverse
    ``t = sigmoid(-lambda/2)`` maps those back to 0 and 1. The SDE (``f = -1/(1-t)``,
    ``g^2 = 2t/(1-t)``) blows up at ``t = 1``; flow samplers use the velocity
    ``d_alpha x0 + d_sigma eps = eps - x0`` instead. ``t_min, t_max = 0, 1``.
    """

    def __init__(self) -> None:
        pass

    def _alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def _sigma(self, t: Tensor) -> Tensor:
        return t.clone()

    def _d_alpha(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -1.0)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _log_snr(self, t: Tensor) -> Tensor:
        return 2.0 * (torch.log1p(-t) - torch.log(t))

    def _t_from_log_snr(self, lam: Tensor) -> Tensor:
        return torch.sigmoid(-0.5 * lam)


class PFGMPath(EDM):
    """PFGM++ (Xu et al. 2023) with augmented dimension ``D``, on the EDM schedule.

    The perturbation kernel is ``p_r(x | x0) ~ 1 / (||x - x0||^2 + r^2)^((N + D)/2)`` for
    ``N``-dimensional data (``N`` = product of the non-batch dims), with the alignment
    ``r = sigma(t) sqrt(D)``. Drawing it: radius ``R = r sqrt(R1 / (1 - R1))``,
    ``R1 ~ Beta(N/2, D/2)``, times a uniform direction; computed as ``R1/(1 - R1) = G_N / G_D``
    with independent ``G_N ~ Gamma(N/2)``, ``G_D ~ Gamma(D/2)``. So ``x_t = x0 + sigma(t) eps``
    with ``eps = sqrt(D) sqrt(G_N/G_D) u`` (:meth:`sample_noise`): a multivariate Student-t with
    ``D`` degrees of freedom, which tends to ``N(0, I)`` as ``D -> inf`` (``D=math.inf`` gives
    exactly that).

    Training: the same losses with the x0 target (the PFGM++ objective for D(x, sigma) in EDM
    form, with EDM weighting and log-normal sigma). Sampling: for an x0-predicting model the
    PFGM++ ODE in ``r`` is ``dx/dr = (x - x0_hat)/r``, i.e. EDM's ODE
    ``dx/dsigma = (x - x0_hat)/sigma``, so every deterministic sampler working through
    ``alpha, sigma`` and x0 / velocity predictions runs unchanged. There is no SDE
    (``gaussian = False``): ``sde`` raises, and score conversions do not apply. The prior at
    ``t_max`` is the same heavy-tailed kernel at ``r_max``.
    """

    gaussian: ClassVar[bool] = False

    def __init__(
        self,
        D: float,
        *,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
    ) -> None:
        if not (isinstance(D, int | float) and D > 0):
            raise InputError(f"D: expected a number > 0 (or math.inf), got {D!r}")
        super().__init__(sigma_min, sigma_max, rho)
        self.D = float(D)

    def r(self, t: Tensor | float) -> Tensor:
        """The augmented-dimension norm ``r = sigma(t) sqrt(D)``."""
        return self.sigma(t) * math.sqrt(self.D)

    def _sde(self, t: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("PFGMPath has no forward SDE: use deterministic samplers")

    def sample_noise(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``eps`` such that ``sigma eps`` is a PFGM++ kernel draw at ``r = sigma sqrt(D)``."""
        shape = tuple(shape)
        z = torch.randn(shape, generator=generator, device=device, dtype=F64)
        if math.isinf(self.D):
            return z.to(dtype or torch.get_default_dtype())
        if len(shape) < 1:
            raise InputError("shape: expected a batch-first shape (B, ...)")
        b, n = shape[0], math.prod(shape[1:])
        conc = torch.tensor([0.5 * n, 0.5 * self.D], dtype=F64, device=z.device).expand(b, 2)
        gam = torch._standard_gamma(conc.contiguous(), generator=generator)
        radius = torch.sqrt(self.D * gam[:, 0] / gam[:, 1])
        u = z / z.flatten(1).norm(dim=1).clamp_min(1e-300).reshape(b, *([1] * (len(shape) - 1)))
        eps: Tensor = expand_to(radius, u) * u
        return eps.to(dtype or torch.get_default_dtype())
