"""The denoiser protocol that samplers consume, and its adapter from a network.

A :class:`Denoiser` is a callable ``denoiser(x, t) -> Denoised``: ``x`` a state (a tensor or a
dict of tensors, batch first) at times ``t`` (a ``(B,)`` tensor), the result the pair of
predictions ``(x0, eps)``, each a state shaped like ``x``.

For a trained or exact model the pair is consistent, ``x = alpha(t) x0 + sigma(t) eps``.
Guidance may return a deliberately inconsistent pair: CFG++ takes ``x0`` from the guided
prediction and ``eps`` from the unconditional one, which re-noises the next state. Samplers
therefore never derive one member from the other: an update that uses the data prediction reads
``x0``, one that uses the noise prediction reads ``eps`` (DDIM's ``alpha_t x0 + sigma_t eps``
reads both).

:func:`as_denoiser` wraps a network ``model(x_t, t, cond)`` predicting any of eps / x0 / v /
velocity / score (per key for dict states, each key with its own path) and counts its calls in an
:class:`NFECounter`. The conversion is elementwise: padded entries of masked states pass through
(samplers keep them untouched), and a model that needs the mask takes it through ``cond``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.predictions import Prediction, check_prediction, to_x0_eps
from polyfold.core.state import State, tree_map

__all__ = [
    "Denoised",
    "Denoiser",
    "ModelDenoiser",
    "NFECounter",
    "as_denoiser",
]

Model = Callable[..., State]  # model(x_t, t, cond)


class Denoised:
    """A denoiser's output: the data prediction ``x0`` and the noise prediction ``eps``.

    ``Denoised(x0, eps)`` holds both; :meth:`lazy` computes each on first access (so a model
    predicting ``eps`` is never converted to ``x0`` for a sampler that reads ``eps`` only).
    """

    __slots__ = ("_eps", "_make_eps", "_make_x0", "_x0")

    def __init__(self, x0: State, eps: State) -> None:
        self._x0: State | None = x0
        self._eps: State | None = eps
        self._make_x0: Callable[[], State] | None = None
        self._make_eps: Callable[[], State] | None = None

    @classmethod
    def lazy(cls, x0: Callable[[], State], eps: Callable[[], State]) -> Denoised:
        """A pair whose members are computed by ``x0()`` and ``eps()`` when first read."""
        out = cls.__new__(cls)
        out._x0 = out._eps = None
        out._make_x0, out._make_eps = x0, eps
        return out

    @property
    def x0(self) -> State:
        """The data prediction."""
        if self._x0 is None:
            assert self._make_x0 is not None
            self._x0, self._make_x0 = self._make_x0(), None
        return self._x0

    @property
    def eps(self) -> State:
        """The noise prediction."""
        if self._eps is None:
            assert self._make_eps is not None
            self._eps, self._make_eps = self._make_eps(), None
        return self._eps

    def __repr__(self) -> str:
        return f"Denoised(x0={self._x0!r:.60}, eps={self._eps!r:.60})"


@runtime_checkable
class Denoiser(Protocol):
    """``(x, t) -> Denoised`` for a state ``x`` at times ``t`` of shape ``(B,)``.

    Optionally a denoiser also has ``at_levels(x, t, levels) -> Denoised``: the same call when
    every entry of ``t`` is one time whose path coefficients the caller already has (``levels``,
    per key ``(alpha, sigma, d_alpha, d_sigma)``); samplers use it when present.
    """

    def __call__(self, x: State, t: Tensor) -> Denoised: ...


class NFECounter:
    """Number of network function evaluations (one per call, whatever the batch size)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int = 1) -> None:
        """Count ``n`` more evaluations."""
        self.count += n

    def reset(self) -> None:
        """Back to zero."""
        self.count = 0

    def __repr__(self) -> str:
        return f"NFECounter(count={self.count})"


def _check_paths(paths: object) -> None:
    items = paths.items() if isinstance(paths, Mapping) else [("paths", paths)]
    for name, p in items:
        if not isinstance(p, GaussianPath):
            raise InputError(f"paths: expected a GaussianPath (or a dict of them), {name} is {p!r}")


class ModelDenoiser:
    """A network as a :class:`Denoiser` (built by :func:`as_denoiser`).

    Calls ``model(x, t, cond)`` and converts the output, key by key, from ``prediction`` to the
    pair ``(x0, eps)`` with the key's path at ``t`` (``alpha``, ``sigma``, and for velocity models
    ``d_alpha``, ``d_sigma``, evaluated in float64 then cast to the key's dtype). ``counter``
    counts the calls; :attr:`nfe` reads it.
    """

    def __init__(
        self,
        model: Model,
        paths: GaussianPath | Mapping[str, GaussianPath],
        *,
        prediction: Prediction | Mapping[str, Prediction],
        cond: Any = None,
        counter: NFECounter | None = None,
    ) -> None:
        if not callable(model):
            raise InputError(f"model: expected a callable model(x_t, t, cond), got {model!r}")
        _check_paths(paths)
        preds = prediction.values() if isinstance(prediction, Mapping) else [prediction]
        for p in preds:
            check_prediction(p)
        self.model, self.cond = model, cond
        self.paths = dict(paths) if isinstance(paths, Mapping) else paths
        self.prediction = dict(prediction) if isinstance(prediction, Mapping) else prediction
        self.counter = counter if counter is not None else NFECounter()

    @property
    def nfe(self) -> int:
        """Model calls so far."""
        return self.counter.count

    def __call__(self, x: State, t: Tensor) -> Denoised:
        return self.at_levels(x, t)

    def at_levels(self, x: State, t: Tensor, levels: Any = None) -> Denoised:
        """:meth:`__call__` with the paths' coefficients at ``t`` given (all of ``t`` one time):
        per key (a dict for dict states) the numbers ``(alpha, sigma, d_alpha, d_sigma)``, the
        derivatives optional (then evaluated on the path if the model predicts velocity)."""
        out = self.model(x, t, self.cond)
        self.counter.add()
        if isinstance(x, Mapping) and not isinstance(out, Mapping):
            raise InputError(
                f"model output: expected a dict with the state's keys {sorted(x)}, "
                f"got {type(out).__name__}"
            )
        t64 = torch.as_tensor(t).to(F64)

        def one(
            xi: Tensor, oi: Tensor, path: GaussianPath, pred: Prediction, lv: Any
        ) -> tuple[Callable[[], Tensor], Callable[[], Tensor]]:
            if not isinstance(oi, Tensor) or oi.shape != xi.shape:
                got = tuple(oi.shape) if isinstance(oi, Tensor) else type(oi).__name__
                raise InputError(
                    f"model output: expected a tensor of the state's shape {tuple(xi.shape)}, "
                    f"got {got}"
                )
            pair: list[tuple[Tensor, Tensor]] = []
            names = ("alpha", "sigma", "d_alpha", "d_sigma")[: 4 if pred == "velocity" else 2]

            def both() -> tuple[Tensor, Tensor]:
                if not pair:
                    dt = oi.dtype if oi.is_floating_point() else xi.dtype
                    if lv is not None and len(lv) >= len(names):  # 0-d, state's dtype
                        vals = zip(names, lv[: len(names)], strict=True)
                        coef = {n: torch.full((), v, dtype=dt, device=xi.device) for n, v in vals}
                    else:
                        tt = t64.to(xi.device)
                        coef = {n: getattr(path, n)(tt).to(dt) for n in names}
                    pair.append(to_x0_eps(oi, source=pred, x_t=xi, **coef))
                return pair[0]

            x0 = (lambda: oi) if pred == "x0" else (lambda: both()[0])
            eps = (lambda: oi) if pred == "eps" else (lambda: both()[1])
            return x0, eps

        fns = tree_map(one, x, out, self.paths, self.prediction, levels)
        return Denoised.lazy(
            lambda: tree_map(lambda f: f[0](), fns), lambda: tree_map(lambda f: f[1](), fns)
        )

    def __repr__(self) -> str:
        return f"ModelDenoiser(prediction={self.prediction!r}, paths={self.paths!r})"


def as_denoiser(
    model: Model,
    paths: GaussianPath | Mapping[str, GaussianPath],
    *,
    prediction: Prediction | Mapping[str, Prediction],
    cond: Any = None,
    counter: NFECounter | None = None,
) -> ModelDenoiser:
    """Wrap ``model(x_t, t, cond)`` as a :class:`Denoiser` counting its calls.

    Args:
        model: the network; ``t`` is the ``(B,)`` tensor the sampler passes.
        paths: the path, or for dict states a dict with one path per key.
        prediction: what the model predicts (``"eps"``, ``"x0"``, ``"v"``, ``"velocity"``,
            ``"score"``), or a dict per key.
        cond: passed unchanged as the model's third argument.
        counter: an :class:`NFECounter` to share (a new one by default).
    """
    return ModelDenoiser(model, paths, prediction=prediction, cond=cond, counter=counter)
