"""Samplers by name: one table for every package, one keyword set for every sampler.

``get_sampler(name)`` returns a :class:`SamplerSpec`; calling it runs the sampler with the
keywords of its kind and any sampler-specific options:

* ``"gaussian"``: ``spec(denoiser, paths, x, grid, *, generator=None, mask=None, noise=None,
  callback=None, **options)``;
* ``"masked"`` (absorbing-state discrete): ``spec(model, process, x, *, steps, generator,
  fixed=None, cond=None, callback=None, **options)``.

A common keyword that a sampler has no use for is dropped (a deterministic ODE solver ignores
``generator`` and ``noise``; the first-hitting sampler sets its own step count); an option the
sampler does not take is an :class:`~polyfold.core.errors.InputError` naming the sampler and the
options it does take. ``callback(step, t, x, x0)`` (:data:`StepCallback`) is called once per step.
Packages add their own samplers with :func:`register_sampler`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from polyfold.core.discrete.ancestral import sample_ancestral
from polyfold.core.discrete.blockwise import sample_blockwise
from polyfold.core.discrete.confidence import sample_confidence
from polyfold.core.discrete.first_hitting import sample_first_hitting
from polyfold.core.errors import InputError
from polyfold.core.samplers.deis import deis
from polyfold.core.samplers.dpm_solver import dpm_solver, dpm_solver_pp, sde_dpm_solver_pp_2m
from polyfold.core.samplers.edm import edm_heun
from polyfold.core.samplers.ode import euler, heun, midpoint, rk4
from polyfold.core.samplers.pndm import pndm
from polyfold.core.samplers.reverse_diffusion import reverse_diffusion, reverse_diffusion_pc, s4
from polyfold.core.samplers.stochastic import ddim, ddpm, euler_maruyama, predictor_corrector
from polyfold.core.samplers.unipc import unipc

__all__ = [
    "COMMON_KEYWORDS",
    "SamplerKind",
    "SamplerSpec",
    "available_samplers",
    "get_sampler",
    "register_sampler",
]

SamplerKind = Literal["gaussian", "masked"]

#: The keywords every sampler of a kind is called with (passed where the sampler takes them).
COMMON_KEYWORDS: dict[str, tuple[str, ...]] = {
    "gaussian": ("generator", "mask", "noise", "callback"),
    "masked": ("steps", "generator", "fixed", "cond", "callback"),
}
_POSITIONAL = {"gaussian": 4, "masked": 3}


@dataclass(frozen=True)
class SamplerSpec:
    """One registered sampler: its ``name``, ``kind``, function and the keyword options it
    takes beyond the common ones of its kind (``options``, with their defaults)."""

    name: str
    kind: SamplerKind
    fn: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)
    accepts: frozenset[str] = frozenset()

    @property
    def summary(self) -> str:
        """The first line of the sampler's docstring."""
        return (inspect.getdoc(self.fn) or "").split("\n", 1)[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        n = _POSITIONAL[self.kind]
        if len(args) != n:
            raise TypeError(f"sampler {self.name!r}: expected {n} positional arguments")
        common = COMMON_KEYWORDS[self.kind]
        unknown = sorted(k for k in kwargs if k not in common and k not in self.options)
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise InputError(
                f"sampler {self.name!r}: unknown option(s) {', '.join(unknown)} "
                f"(its options: {known})"
            )
        if kwargs.get("callback") is not None and "callback" not in self.accepts:
            raise TypeError(f"sampler {self.name!r} does not report steps to a callback")
        call = {k: v for k, v in kwargs.items() if k in self.accepts}
        return self.fn(*args, **call)


_REGISTRY: dict[str, SamplerSpec] = {}


def register_sampler(
    name: str, fn: Callable[..., Any], *, kind: SamplerKind, replace: bool = False
) -> SamplerSpec:
    """Register ``fn`` under ``name``; its keyword-only parameters that are not common keywords
    of ``kind`` become its options. A taken name needs ``replace=True``."""
    if kind not in COMMON_KEYWORDS:
        raise InputError(f"kind: expected one of {', '.join(COMMON_KEYWORDS)}, got {kind!r}")
    if name in _REGISTRY and not replace:
        raise InputError(f"sampler {name!r} is already registered")
    params = inspect.signature(fn).parameters.values()
    keywords = {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    common = COMMON_KEYWORDS[kind]
    options = {k: p.default for k, p in keywords.items() if k not in common}
    spec = SamplerSpec(name, kind, fn, options, frozenset(keywords))
    _REGISTRY[name] = spec
    return spec


def available_samplers(kind: SamplerKind | None = None) -> tuple[str, ...]:
    """Registered sampler names (of one ``kind``, or all), sorted."""
    return tuple(sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind))


def get_sampler(name: str, kind: SamplerKind | None = None) -> SamplerSpec:
    """The sampler registered as ``name`` (of ``kind``, when given); an
    :class:`~polyfold.core.errors.InputError` lists the available names otherwise."""
    spec = _REGISTRY.get(name)
    if spec is None or (kind is not None and spec.kind != kind):
        names = ", ".join(available_samplers(kind))
        raise InputError(f"sampler: expected one of {names}, got {name!r}")
    return spec


_GAUSSIAN: tuple[Callable[..., Any], ...] = (
    ddim,
    ddpm,
    deis,
    dpm_solver,
    dpm_solver_pp,
    edm_heun,
    euler,
    euler_maruyama,
    heun,
    midpoint,
    pndm,
    predictor_corrector,
    reverse_diffusion,
    reverse_diffusion_pc,
    rk4,
    s4,
    sde_dpm_solver_pp_2m,
    unipc,
)
_MASKED: dict[str, Callable[..., Any]] = {
    "ancestral": sample_ancestral,
    "first_hitting": sample_first_hitting,
    "confidence": sample_confidence,
    "blockwise": sample_blockwise,
}
for _fn in _GAUSSIAN:
    register_sampler(_fn.__name__, _fn, kind="gaussian")
for _name, _fn in _MASKED.items():
    register_sampler(_name, _fn, kind="masked")
