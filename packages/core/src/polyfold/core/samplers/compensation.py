r"""DC-Solver (Zhao et al., "DC-Solver: Improving Predictor-Corrector Diffusion Sampler via
Dynamic Compensation"): compensation ratios for UniPC's misaligned model outputs.

In UniPC the output ``m_i = m(x~_i, t_i)`` at the *predicted* state also drives the next
predictor, which starts from the *corrected* state. Dynamic compensation replaces it by the
Lagrange polynomial through the last outputs ``m_i, m_{i-1}, ...`` (at their half log-SNRs)
evaluated at ``ell_{i-1} + rho_i (ell_i - ell_{i-1})``; ``rho_i = 1`` gives ``m_i`` exactly, so
ratios of one are plain UniPC (``unipc(..., ratios=...)``, :func:`compensate`). As the paper
shows, the same compensation also plugs into predictor-only samplers: multistep DPM-Solver(++)
takes ``ratios`` too.

:func:`fit_ratios` finds the ratios for one model, grid and sampler options from a few
calibration trajectories: a fine reference solve through the same grid points, then, step by
step, the ratio whose predicted state lands closest to the reference (a coarse then a fine scan;
the run is cut at that step). :class:`RatioRegression` is the cascade polynomial regression that
predicts ratios for an unseen NFE and guidance scale: each fitted ratio curve as a polynomial in
the step position ``u = i / (n - 1)``, then its coefficients linear in ``(1/n, 1/n^2, cfg)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.samplers._compensate import compensate
from polyfold.core.samplers.grids import check_grid, zero_time

__all__ = ["RatioRegression", "compensate", "fit_ratios"]


class _Stop(Exception):
    """Raised by the calibration callback to cut a run at the step being fitted."""

    def __init__(self, x: Tensor) -> None:
        super().__init__()
        self.x = x


def _reference(
    denoiser: Denoiser, path: GaussianPath, x: Tensor, grid: Tensor, sub: int
) -> list[Tensor]:
    """The states at every grid point of a fine UniPC-3 solve with ``sub`` steps per interval
    (uniform in ``t``; down to ``t_min``, then the final step, where the grid ends at the data
    point), through the grid's points."""
    from polyfold.core.samplers.unipc import unipc

    ts = grid.tolist()
    fine = ts[:1]
    for a, b in itertools.pairwise(ts):
        stop = max(b, path.t_min)
        if stop < a:
            fine += torch.linspace(a, stop, sub + 1, dtype=F64).tolist()[1:]
        if stop != b:
            fine.append(b)
    wanted = set(ts)
    states: list[Tensor] = [x]

    def keep(step: int, t: float, xs: Any, x0: Any) -> None:
        if t in wanted:
            states.append(xs)

    unipc(denoiser, path, x, torch.tensor(fine, dtype=F64), order=3, callback=keep)
    return states


def fit_ratios(
    denoiser: Denoiser,
    path: GaussianPath,
    x: Tensor,
    grid: Tensor | Sequence[float],
    *,
    sub: int = 16,
    span: float = 0.8,
    sampler: str = "unipc",
    **options: Any,
) -> list[float]:
    """Compensation ratios of ``sampler(denoiser, path, ., grid, **options)`` fitted on the
    calibration batch ``x`` (about 10 trajectories) against a reference solve with ``sub`` fine
    steps per grid interval; each ratio is scanned over ``1 +- span`` (coarse, then fine around
    the best), keeping 1 unless another value lands strictly closer to the reference.
    ``sampler``: ``"unipc"`` (predictor-corrector) or the predictor-only plug-in
    ``"dpm_solver_pp"`` / ``"dpm_solver"`` (multistep)."""
    from polyfold.core.samplers.dpm_solver import dpm_solver, dpm_solver_pp
    from polyfold.core.samplers.unipc import unipc

    fns: dict[str, Callable[..., Any]] = {
        "unipc": unipc,
        "dpm_solver_pp": dpm_solver_pp,
        "dpm_solver": dpm_solver,
    }
    if sampler not in fns:
        raise InputError(f"sampler: expected one of {sorted(fns)} (compensable), got {sampler!r}")
    if sampler == "dpm_solver":
        options = {"method": "multistep", **options}
    fn = fns[sampler]
    if not isinstance(path, GaussianPath):
        raise InputError(f"path: expected one GaussianPath (a tensor state), got {path!r}")
    if "ratios" in options:
        raise InputError("ratios: fit_ratios finds them; pass the other unipc options only")
    if not (isinstance(sub, int) and sub >= 2):
        raise InputError(f"sub: expected fine steps per interval >= 2, got {sub!r}")
    g = check_grid(grid, path)
    steps = len(g) - 1
    ref = _reference(denoiser, path, x, g, sub)
    ratios = [1.0] * steps
    last = steps - 1 if float(g[-1]) == zero_time(path) else steps

    def error(i: int, rho: float) -> float:
        trial = [*ratios[:i], rho, *([1.0] * (steps - i - 1))]

        def stop(step: int, t: float, xs: Any, x0: Any) -> None:
            if step == i:
                raise _Stop(xs)

        try:
            fn(denoiser, path, x, g, ratios=trial, callback=stop, **options)
        except _Stop as cut:
            return float((cut.x.to(F64) - ref[i + 1].to(F64)).pow(2).mean())
        return math.inf

    for i in range(1, last):
        best, best_err = 1.0, error(i, 1.0)
        for scan in (span / 5, span / 25):
            centre = best
            for k in range(-5, 6):
                rho = centre + k * scan
                if k == 0 or rho <= 0:
                    continue
                err = error(i, rho)
                if err < best_err:
                    best, best_err = rho, err
        ratios[i] = best
    return ratios


@dataclass(frozen=True)
class RatioRegression:
    """Cascade polynomial regression of compensation ratios over NFE and guidance scale.

    ``coef[k]`` are the weights of the features ``(1, 1/n, 1/n^2, cfg)`` (those that were
    fitted) giving the ``u^k`` coefficient of the ratio curve ``rho(u)``, ``u = i / (n - 1)``.
    """

    coef: Tensor
    features: tuple[str, ...]

    @staticmethod
    def _phi(names: Sequence[str], nfe: int, cfg: float) -> Tensor:
        table = {"1": 1.0, "1/n": 1.0 / nfe, "1/n^2": 1.0 / nfe**2, "cfg": float(cfg)}
        return torch.tensor([table[k] for k in names], dtype=F64)

    @classmethod
    def fit(
        cls, table: Mapping[tuple[int, float], Sequence[float]], *, degree: int = 3
    ) -> RatioRegression:
        """From ``{(nfe, cfg): ratios}`` (each ``nfe`` ratios): the curve of each setting
        (``degree`` at most, least squares), then its coefficients over the settings."""
        if not table:
            raise InputError("table: expected fitted ratios for at least one (nfe, cfg)")
        rows, curves = [], []
        for (nfe, cfg), ratios in sorted(table.items()):
            if len(ratios) != nfe or nfe < 2:
                raise InputError(f"table[{nfe}, {cfg}]: expected {nfe} ratios, got {len(ratios)}")
            u = torch.arange(nfe, dtype=F64) / (nfe - 1)
            deg = min(degree, nfe - 1)
            vander = torch.stack([u**k for k in range(degree + 1)], 1)[:, : deg + 1]
            sol = torch.linalg.lstsq(
                vander, torch.tensor(list(ratios), dtype=F64)[:, None]
            ).solution
            curves.append(torch.cat([sol[:, 0], torch.zeros(degree - deg, dtype=F64)]))
            rows.append((nfe, cfg))
        names = ["1"]
        nfes = {n for n, _ in rows}
        if len(nfes) >= 2:
            names.append("1/n")
        if len(nfes) >= 4:
            names.append("1/n^2")
        if len({c for _, c in rows}) >= 2:
            names.append("cfg")
        design = torch.stack([cls._phi(names, n, c) for n, c in rows])
        coef = torch.linalg.lstsq(design, torch.stack(curves)).solution.T  # (degree+1, F)
        return cls(coef, tuple(names))

    def predict(self, nfe: int, cfg: float = 0.0) -> list[float]:
        """The predicted ratios for ``nfe`` steps at guidance scale ``cfg``."""
        if not (isinstance(nfe, int) and nfe >= 2):
            raise InputError(f"nfe: expected a number of steps >= 2, got {nfe!r}")
        a = self.coef @ self._phi(self.features, nfe, cfg)
        u = torch.arange(nfe, dtype=F64) / (nfe - 1)
        out = sum(a[k] * u**k for k in range(len(a)))
        assert isinstance(out, Tensor)
        return [float(v) for v in out]
