r"""DDIM, DDPM ancestral sampling, Euler-Maruyama and predictor-corrector sampling.

With ``h = ell_t - ell_s`` the half log-SNR step (``ell = log(alpha/sigma)``):

- DDIM (Song et al. 2021), for any Gaussian path:
  ``x_t = alpha_t x0 + sqrt(sigma_t^2 - c^2) eps + c z``, ``c = eta sigma_t sqrt(1 - e^{-2h})``
  (on VP paths ``c^2 = eta^2 (1 - abar_t)/(1 - abar_s) (1 - abar_s/abar_t)``, DDIM's
  ``sigma_eta``). ``eta = 0`` is the deterministic DDIM (DPM-Solver-1).
- DDPM ancestral sampling (Ho et al. 2020): the posterior ``q(x_t | x_s, x0)``,
  mean ``alpha_t x0 + sigma_t e^{-h} eps`` and standard deviation ``sigma_t sqrt(1 - e^{-2h})``
  (``variance="small"``, DDIM with ``eta = 1``) or ``sigma_s sqrt(1 - e^{-2h})``
  (``"large"``: ``beta_t`` on VP paths).
- Euler-Maruyama on the reverse SDE ``dx = [f x - g^2 score] dt + g dW`` with
  ``score = -eps/sigma``: ``x_t = (1 + f dt) x + (g^2 dt / sigma) eps + g sqrt(-dt) z``,
  ``dt = t_next - t < 0`` (``f``, ``g`` from the path's ``sde``).
- Predictor-corrector (Song et al. 2021): at each grid time, ``n_corrector`` Langevin steps
  ``x <- x + e score + sqrt(2 e) scale_eps z``, ``e = 2 r (snr ||z|| / ||score||)^2`` (norms
  per example, averaged over the batch; ``r = (alpha_i/alpha_{i+1})^2``, score_sde's ``alpha_i``
  of VP and 1 of VE; ``scale_eps = 1`` in score_sde, below 1 in GDSS), then a predictor step
  (Euler-Maruyama or ancestral).

Every sampler here takes ``noise``, a function drawing its Gaussian noise (default i.i.d.; e.g.
symmetric adjacency noise for graphs).

DDIM and DDPM read both members of the denoiser's pair (``x0`` for the data, ``eps`` for the
re-noising), as CFG++ requires. A step to the data point is the final denoising step (no noise).
:class:`~polyfold.core.samplers.grids.TimeShift` makes DDIM/DDPM the Time-Shift Sampler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.samplers._core import Level, NoiseFn, Paths, Run, lincomb, smap, tmap
from polyfold.core.samplers.grids import TimeShift
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State, apply_mask, expand_mask, expand_to

__all__ = ["ddim", "ddpm", "euler_maruyama", "predictor_corrector"]

Variance = Literal["small", "large", "eta"]


def _ancestral_coefs(s: Level, t: Level, variance: Variance, eta: float) -> tuple[float, float]:
    """``(c_eps, c_z)`` of ``x_t = alpha_t x0 + c_eps eps + c_z z``."""
    one_m = -math.expm1(-2.0 * (t.ell - s.ell))  # 1 - e^{-2h}
    if variance == "eta":
        cz = eta * t.sigma * math.sqrt(one_m)
        return math.sqrt(max(t.sigma**2 - cz**2, 0.0)), cz
    ce = t.sigma * math.sqrt(max(1.0 - one_m, 0.0))  # sigma_t e^{-h}
    return ce, (t.sigma if variance == "small" else s.sigma) * math.sqrt(one_m)


def _ancestral_coefs_batched(
    s_t: Tensor, path_lv: Level, run: Run, variance: Variance, eta: float
) -> tuple[Tensor, Tensor]:
    """Per-example ``(c_eps, c_z)`` for start times ``s_t`` ``(B,)`` (the time-shift sampler)."""
    p = run.ref_path
    sig_s, ell_s = p.sigma(s_t), 0.5 * p.log_snr(s_t)
    one_m = -torch.expm1(-2.0 * (path_lv.ell - ell_s))
    if variance == "eta":
        cz = eta * path_lv.sigma * one_m.sqrt()
        return (path_lv.sigma**2 - cz**2).clamp_min(0.0).sqrt(), cz
    ce = path_lv.sigma * (1.0 - one_m).clamp_min(0.0).sqrt()
    return ce, (path_lv.sigma if variance == "small" else sig_s) * one_m.sqrt()


def _variance(x: Tensor, mask: Tensor | None) -> Tensor:
    """Unbiased variance of each example's valid entries, ``(B,)``."""
    flat = x.flatten(1).to(F64)
    if mask is None:
        return flat.var(dim=1)
    m = expand_mask(mask, x).expand_as(x).flatten(1)
    n = m.sum(1).clamp_min(2)
    mean = torch.where(m, flat, 0.0).sum(1) / n
    return torch.where(m, (flat - mean[:, None]) ** 2, 0.0).sum(1) / (n - 1)


def _ancestral(
    name: str,
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variance: Variance,
    eta: float,
    generator: torch.Generator | None,
    mask: Mask,
    time_shift: TimeShift | None,
    noise: NoiseFn | None,
    callback: StepCallback | None,
) -> SampleResult:
    run = Run(
        name,
        denoiser,
        paths,
        x,
        grid,
        mask=mask,
        generator=generator,
        noise=noise,
        callback=callback,
    )
    noisy = variance != "eta" or eta > 0
    if time_shift is not None and (isinstance(x, dict) or isinstance(mask, dict)):
        raise InputError(f"{name}: time_shift needs a tensor state (one noise schedule)")
    start: Tensor | None = None  # per-example start times of the next step (time shift)
    times = []
    for i in range(run.steps):
        d = run.denoise(x, run.t[i] if start is None else start)
        if time_shift is not None:
            times.append(
                torch.full((run.batch,), run.t[i], dtype=F64) if start is None else start.cpu()
            )
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x), torch.stack(times) if time_shift else None)
        t_lv, z = run.lv(i + 1), run.noise(x) if noisy else None
        if start is None:

            def step(
                xi: Tensor, x0: Tensor, eps: Tensor, si: Level, ti: Level, zi: Tensor | None
            ) -> Tensor:
                ce, cz = _ancestral_coefs(si, ti, variance, eta)
                terms = [eps] if zi is None else [eps, zi]
                return lincomb(x0, ti.alpha, [ce, cz][: len(terms)], terms)

            new = smap(step, x, d.x0, d.eps, run.lv(i), t_lv, z)
        else:
            assert isinstance(x, Tensor)
            assert isinstance(d.x0, Tensor)
            assert isinstance(d.eps, Tensor)
            ce, cz = _ancestral_coefs_batched(start, t_lv, run, variance, eta)
            new = t_lv.alpha * d.x0 + expand_to(ce.to(x.dtype), x) * d.eps
            if isinstance(z, Tensor):
                new = new + expand_to(cz.to(x.dtype), x) * z
        x = run.report(i, run.keep(new, x), d.x0)
        start = None
        nxt = i + 1
        if time_shift is not None and nxt < run.steps and run.t[nxt] > time_shift.cutoff:
            assert isinstance(x, Tensor)
            mask_t = mask if isinstance(mask, Tensor) else None
            cands = time_shift.candidates(run.ref_path, run.t[nxt], run.t[nxt + 1])
            start = time_shift.select(_variance(x, mask_t), run.ref_path, cands)
    return run.result(x, torch.stack(times) if time_shift else None)


def ddim(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    time_shift: TimeShift | None = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """DDIM with stochasticity ``eta`` (0: deterministic; 1: DDPM's posterior variance).

    Args:
        denoiser, paths, x, grid, mask: as every sampler (see :func:`dpm_solver`).
        eta: DDIM's ``eta >= 0``.
        generator: for the noise when ``eta > 0``.
        noise: a :data:`~polyfold.core.samplers._core.NoiseFn` for that noise (default i.i.d.).
        time_shift: a :class:`~polyfold.core.samplers.grids.TimeShift` for the Time-Shift
            Sampler (tensor states); the result's ``times`` holds every step's start times.
        callback: ``callback(step, t, x, x0)`` after every step.
    """
    if not (isinstance(eta, int | float) and eta >= 0):
        raise InputError(f"eta: expected a number >= 0, got {eta!r}")
    return _ancestral(
        "ddim",
        denoiser,
        paths,
        x,
        grid,
        variance="eta",
        eta=float(eta),
        generator=generator,
        mask=mask,
        time_shift=time_shift,
        noise=noise,
        callback=callback,
    )


def ddpm(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variance: Literal["small", "large"] = "small",
    generator: torch.Generator | None = None,
    mask: Mask = None,
    time_shift: TimeShift | None = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """DDPM ancestral sampling with the posterior (``"small"``) or ``beta`` (``"large"``) variance.

    Arguments as :func:`ddim`.
    """
    if variance not in ("small", "large"):
        raise InputError(f"variance: expected 'small' or 'large', got {variance!r}")
    return _ancestral(
        "ddpm",
        denoiser,
        paths,
        x,
        grid,
        variance=variance,
        eta=1.0,
        generator=generator,
        mask=mask,
        time_shift=time_shift,
        noise=noise,
        callback=callback,
    )


def _sde_run(
    name: str,
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    mask: Mask,
    generator: torch.Generator | None,
    noise: NoiseFn | None,
    callback: StepCallback | None = None,
) -> tuple[Run, object]:
    """A stochastic :class:`Run` and, per key, the forward SDE's ``(f, g)`` at every grid point."""
    run = Run(
        name,
        denoiser,
        paths,
        x,
        grid,
        mask=mask,
        generator=generator,
        noise=noise,
        stochastic=True,
        callback=callback,
    )

    def one(path: object) -> list[tuple[float, float]]:
        f, g = path.sde(run.grid)  # type: ignore[attr-defined]
        bad = ~(torch.isfinite(f) & torch.isfinite(g))[:-1]  # the last point starts no step
        if bool(bad.any()):
            t = float(run.grid[int(bad.nonzero()[0])])
            raise InputError(
                f"{name}: the forward SDE of {path!r} is singular at t = {t:.6g} (its drift or "
                "diffusion is infinite there, e.g. where alpha = 0); start the grid inside the "
                "path (t_start below it) or use an ODE sampler"
            )
        return list(zip(f.tolist(), g.tolist(), strict=True))

    return run, tmap(one, run.paths)


def _em_key(
    i: int, dt: float, x: Tensor, eps: Tensor, z: Tensor, s: Level, fg: list[tuple[float, float]]
) -> Tensor:
    """One key's Euler-Maruyama step from grid point ``i`` by ``dt < 0``."""
    f, g = fg[i]
    return lincomb(x, 1.0 + f * dt, [g * g * dt / s.sigma, g * math.sqrt(-dt)], [eps, z])


def euler_maruyama(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Euler-Maruyama on the reverse-time SDE (the noise prediction gives the score).

    ``noise``: as :func:`ddim`.
    """
    run, fg = _sde_run("euler_maruyama", denoiser, paths, x, grid, mask, generator, noise, callback)
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        dt = run.t[i + 1] - run.t[i]
        new = smap(partial(_em_key, i, dt), x, d.eps, run.noise(x), run.lv(i), fg)
        x = run.report(i, run.keep(new, x), d.x0)
    return run.result(x)


def _langevin_key(
    snr: float,
    scale_eps: float,
    x: Tensor,
    eps: Tensor,
    z: Tensor,
    m: Tensor | None,
    s: Level,
    nxt: Level,
) -> Tensor:
    """One Langevin corrector step of score_sde for one key (batch-averaged norms)."""
    eps_v, z_v = (eps, z) if m is None else (apply_mask(eps, m), apply_mask(z, m))
    assert isinstance(eps_v, Tensor)
    assert isinstance(z_v, Tensor)
    score_norm = torch.linalg.vector_norm(eps_v.flatten(1), dim=1).mean() / s.sigma
    noise_norm = torch.linalg.vector_norm(z_v.flatten(1), dim=1).mean()
    ratio = (s.alpha / nxt.alpha) ** 2 if nxt.alpha > 0 else 1.0
    step = 2.0 * ratio * (snr * noise_norm / score_norm.clamp_min(1e-30)) ** 2
    return lincomb(x, 1.0, [-step / s.sigma, scale_eps * torch.sqrt(2.0 * step)], [eps, z])


def predictor_corrector(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    snr: float = 0.16,
    n_corrector: int = 1,
    predictor: Literal["euler_maruyama", "ancestral"] = "euler_maruyama",
    scale_eps: float = 1.0,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """score_sde's predictor-corrector sampler with a Langevin corrector.

    Args:
        snr: the corrector's signal-to-noise ratio (score_sde's ``snr``).
        n_corrector: Langevin steps per grid time (each one model call).
        predictor: ``"euler_maruyama"`` (reverse SDE) or ``"ancestral"`` (DDPM).
        scale_eps: scales the corrector's noise, ``x <- x + e score + sqrt(2 e) scale_eps z``
            (GDSS's ``scale_eps``; 1 is score_sde's Langevin step).
        Others as :func:`euler_maruyama`.
    """
    if not (isinstance(snr, int | float) and snr > 0):
        raise InputError(f"snr: expected a number > 0, got {snr!r}")
    if not (isinstance(scale_eps, int | float) and scale_eps >= 0):
        raise InputError(f"scale_eps: expected a number >= 0, got {scale_eps!r}")
    if not (isinstance(n_corrector, int) and n_corrector >= 0):
        raise InputError(f"n_corrector: expected an integer >= 0, got {n_corrector!r}")
    if predictor not in ("euler_maruyama", "ancestral"):
        raise InputError(f"predictor: expected 'euler_maruyama' or 'ancestral', got {predictor!r}")
    run, fg = _sde_run(
        "predictor_corrector", denoiser, paths, x, grid, mask, generator, noise, callback
    )
    langevin = partial(_langevin_key, float(snr), float(scale_eps))
    for i in range(run.steps):
        s, nxt = run.lv(i), run.lv(i + 1)
        for _ in range(n_corrector):
            d = run.denoise(x, run.t[i])
            new = smap(langevin, x, d.eps, run.noise(x), mask, s, nxt)
            x = run.keep(new, x)
        d = run.denoise(x, run.t[i])
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        z = run.noise(x)
        if predictor == "ancestral":
            new = smap(
                lambda x0, e, zi, si, ti: lincomb(
                    x0, ti.alpha, list(_ancestral_coefs(si, ti, "small", 1.0)), [e, zi]
                ),
                d.x0,
                d.eps,
                z,
                s,
                nxt,
            )
        else:
            dt = run.t[i + 1] - run.t[i]
            new = smap(partial(_em_key, i, dt), x, d.eps, z, s, fg)
        x = run.report(i, run.keep(new, x), d.x0)
    return run.result(x)
