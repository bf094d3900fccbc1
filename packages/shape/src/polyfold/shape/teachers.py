"""2D teachers for score distillation into 3D.

The exact teacher: for a set of ``K`` target shapes, the data distribution at a camera is the
uniform mixture of the ``K`` target renders ``mu_k`` at that camera, each widened by isotropic
pixel noise of std ``tau`` (``tau = 0``: point masses). With ``v = alpha^2 tau^2 + sigma^2`` its
noised distribution on a Gaussian path has the closed-form denoiser

    E[x0 | x_t = x] = sum_k r_k (mu_k + alpha tau^2 (x - alpha mu_k) / v),
    r = softmax_k(-|x - alpha mu_k|^2 / (2 v)),

and ``eps = (x - alpha x0) / sigma``, so its probability-flow ODE (DDIM) is exact too and core's
``ddim_invert`` / ISM / TSM run on it with no training noise. ``tau > 0`` matters for ISM and
TSM: their DDIM inversion starts at ``t_min``, where a point-mass posterior snaps every render
to its nearest target and the inverted noise ``(x - alpha mu) / sigma`` explodes (the ISM
gradient is then exactly zero along the whole trajectory). Even a small ``tau`` collapses the
posterior onto one target once ``sigma >> tau``, so the inversion-based gradients carry little
signal; the default ``tau = 0.5`` (images in ``[-1, 1]``) keeps the posterior smooth over the
times the methods use while the components' modes stay the target renders (measured: the
cosine between each method's descent direction and the way to the nearest target, in the
benchmark's ``alignment_*`` keys).
:class:`RenderPosterior` is that denoiser for a batch of views (each row with its own
camera's targets), a core :class:`~polyfold.core.denoiser.Denoiser`; with unconditional
targets and ``guidance != 1`` it returns classifier-free guidance ``eps_u + w (eps_c - eps_u)``
(``x0`` consistent with it).
:class:`ExactTeacher` renders (and caches, per camera) the targets of each class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath, VPCosine
from polyfold.core.state import expand_to
from polyfold.shape.volrender import Cameras, Field, render

__all__ = ["ExactTeacher", "RenderPosterior", "Teacher", "posterior_mean", "procshape_teacher"]


class Teacher(Protocol):
    """What distillation needs of a 2D teacher (:class:`ExactTeacher`, and
    :class:`~polyfold.shape.learned_teacher.LearnedTeacher`): its path, a class check, and a
    core denoiser per class, views and CFG scale."""

    path: GaussianPath

    def check_class(self, cls: str) -> str: ...

    def denoiser(self, cls: str, cams: Cameras, *, guidance: float = 1.0) -> Denoiser: ...


def posterior_mean(
    x: Tensor, targets: Tensor, alpha: Tensor, sigma: Tensor, tau: float = 0.0
) -> Tensor:
    """``E[x0 | x_t = x]`` for ``x0`` uniform on ``N(targets[b, k], tau^2 I)`` (``targets``
    ``(B, K, ...)``), at ``x_t = alpha x0 + sigma eps`` (``alpha``, ``sigma``: ``(B,)``);
    float64."""
    b, k = targets.shape[:2]
    xf = x.reshape(b, 1, -1).to(F64)
    mu = targets.reshape(b, k, -1).to(F64)
    a, s = alpha.to(F64).reshape(b, 1, 1), sigma.to(F64).reshape(b, 1, 1)
    v = a**2 * tau**2 + s**2
    diff = xf - a * mu  # (B, K, D)
    r = torch.softmax(-diff.pow(2).sum(-1) / (2 * v[..., 0]), dim=1)  # (B, K)
    post = mu + a * tau**2 / v * diff
    return (r[:, :, None] * post).sum(1).reshape(x.shape)


class RenderPosterior:
    """The exact denoiser of the target renders ``targets`` ``(B, K, C, H, W)`` (row ``b`` for
    the camera of view ``b``), each widened by pixel noise ``tau``, on ``path``; ``uncond``
    ``(B, K', C, H, W)`` and ``guidance`` give classifier-free guidance. ``nfe`` counts calls."""

    def __init__(
        self,
        targets: Tensor,
        path: GaussianPath,
        *,
        tau: float = 0.5,
        uncond: Tensor | None = None,
        guidance: float = 1.0,
    ) -> None:
        if not tau >= 0:
            raise InputError(f"tau: expected >= 0, got {tau}")
        if targets.ndim < 3:
            raise InputError(f"targets: expected (B, K, ...), got {tuple(targets.shape)}")
        if uncond is not None and (
            uncond.shape[0] != targets.shape[0] or uncond.shape[2:] != targets.shape[2:]
        ):
            raise InputError("uncond: expected (B, K', ...) like targets")
        if guidance != 1.0 and uncond is None:
            raise InputError("guidance: a scale other than 1 needs unconditional targets")
        self.targets, self.uncond, self.path = targets, uncond, path
        self.guidance, self.tau = float(guidance), float(tau)
        self.nfe = 0

    def _eps(self, x: Tensor, t: Tensor, targets: Tensor) -> Tensor:
        a, s = self.path.alpha(t), self.path.sigma(t)
        x0 = posterior_mean(x, targets, a, s, self.tau)
        return (x.to(F64) - expand_to(a, x0) * x0) / expand_to(s, x0)

    def __call__(self, x: Tensor, t: Tensor) -> Denoised:
        if x.shape[0] != self.targets.shape[0] or x.shape[1:] != self.targets.shape[2:]:
            raise InputError(
                f"x: expected shape {(self.targets.shape[0], *self.targets.shape[2:])}, "
                f"got {tuple(x.shape)}"
            )
        self.nfe += 1
        tt = torch.as_tensor(t, dtype=F64).reshape(-1).expand(x.shape[0])
        eps = self._eps(x, tt, self.targets)
        if self.uncond is not None and self.guidance != 1.0:
            eps_u = self._eps(x, tt, self.uncond)
            eps = eps_u + self.guidance * (eps - eps_u)
        a, s = self.path.alpha(tt), self.path.sigma(tt)
        x0 = (x.to(F64) - expand_to(s, eps) * eps) / expand_to(a, eps)
        return Denoised(x0.to(x.dtype), eps.to(x.dtype))


class ExactTeacher:
    """The exact teacher of target shapes ``targets`` (class name -> SDF fields): the
    conditional distribution of class ``c`` is its own targets' renders, the unconditional one
    all classes' renders, each widened by pixel noise ``tau``. Renders use
    :func:`~polyfold.shape.volrender.render` with ``render_kw`` and are cached per
    (class, camera)."""

    def __init__(
        self,
        targets: dict[str, Sequence[Field]],
        *,
        path: GaussianPath | None = None,
        tau: float = 0.5,
        **render_kw: object,
    ) -> None:
        if not targets or any(len(v) == 0 for v in targets.values()):
            raise InputError("targets: expected at least one class with at least one shape")
        self.fields = {c: list(v) for c, v in targets.items()}
        self.path = path or VPCosine()
        self.tau = float(tau)
        self.render_kw = render_kw
        self._cache: dict[tuple[str, int, float, float], Tensor] = {}

    @property
    def classes(self) -> list[str]:
        return list(self.fields)

    def check_class(self, cls: str) -> str:
        if cls not in self.fields:
            raise InputError(
                f"--class: unknown class {cls!r} for this teacher; "
                f"expected one of {', '.join(self.fields)}"
            )
        return cls

    def _view(self, cls: str, k: int, e: float, a: float, cams: Cameras) -> Tensor:
        key = (cls, k, round(e, 6), round(a, 6))
        if key not in self._cache:
            one = Cameras(torch.tensor([e]), torch.tensor([a]), cams.radius, cams.fov)
            with torch.no_grad():
                img = render(self.fields[cls][k], one, **self.render_kw).image()  # type: ignore[arg-type]
            self._cache[key] = img[0].float()
        return self._cache[key]

    def targets(self, cls: str, cams: Cameras) -> Tensor:
        """``(B, K, 2, H, W)``: the renders of class ``cls``'s targets at each camera."""
        self.check_class(cls)
        angles = list(zip(cams.elevation.tolist(), cams.azimuth.tolist(), strict=True))
        return torch.stack(
            [
                torch.stack([self._view(cls, k, e, a, cams) for k in range(len(self.fields[cls]))])
                for e, a in angles
            ]
        )

    def denoiser(self, cls: str, cams: Cameras, *, guidance: float = 1.0) -> RenderPosterior:
        """The exact denoiser of class ``cls`` at the views ``cams`` (CFG with ``guidance``)."""
        cond = self.targets(cls, cams)
        uncond = None
        if guidance != 1.0:
            if len(self.fields) < 2:
                raise InputError("--guidance: CFG needs a teacher with more than one class")
            uncond = torch.cat([self.targets(c, cams) for c in self.fields], 1)
        return RenderPosterior(cond, self.path, tau=self.tau, uncond=uncond, guidance=guidance)


def procshape_teacher(
    cls: str, *, k: int = 4, all_classes: bool = False, **render_kw: object
) -> ExactTeacher:
    """The exact teacher of ``k`` procedural shapes of class ``cls`` (training seeds
    ``0..k-1``); ``all_classes`` adds ``k`` of every other class (the unconditional set CFG
    needs)."""
    from polyfold.shape.procshapes import CLASSES, check_classes, dataset

    (name,) = check_classes([cls])
    names = list(CLASSES) if all_classes else [name]
    shapes = {c: list(dataset([c], k)) for c in names}
    return ExactTeacher(shapes, **render_kw)  # type: ignore[arg-type]
