"""Conditional flow matching (Lipman et al.; Liu et al.; Tong et al.).

With ``x_t = alpha(t) x0 + sigma(t) x1``, ``x1`` the noise, the model predicts the velocity
``u = d_alpha x0 + d_sigma x1`` (``x1 - x0`` on the default :class:`LinearInterpolant`) and is
trained on the plain velocity MSE over valid entries. ``coupling="ot"`` pairs the batch's data
and noise by an exact minibatch optimal-transport assignment (:func:`ot_coupling`) before
interpolating; the data keeps its order, so ``cond`` and ``mask`` stay aligned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.core.losses.dsm import Reduction, draw_noise, dsm_loss
from polyfold.core.losses.ot import ot_coupling
from polyfold.core.paths import LinearInterpolant, Paths
from polyfold.core.state import Mask, State, tree_map
from polyfold.core.timesteps import TimeSampler

__all__ = ["Coupling", "cfm_loss"]

Coupling = Literal["independent", "ot"]


def cfm_loss(
    model: Callable[..., Any],
    x0: State,
    *,
    path: Paths | None = None,
    coupling: Coupling = "independent",
    mask: Mask = None,
    cond: Any = None,
    generator: torch.Generator | None = None,
    t: Tensor | float | None = None,
    time_sampler: str | TimeSampler = "uniform",
    noise: State | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Flow-matching loss, scalar (``reduction="mean"``) or ``(B,)`` (``"none"``).

    ``path`` defaults to :class:`LinearInterpolant` (rectified flow); dict states take a path
    per key and one OT permutation for the whole state (costs summed over keys). ``noise``
    gives the noise end ``x1`` of each pair (a fixed coupling, e.g. reflow's teacher pairs).
    """
    paths: Paths = LinearInterpolant() if path is None else path
    if coupling not in ("independent", "ot"):
        raise InputError(f"coupling: expected 'independent' or 'ot', got {coupling!r}")
    if noise is None:
        noise = draw_noise(x0, paths, generator)
    if coupling == "ot":
        perm = ot_coupling(x0, noise, mask)
        noise = tree_map(lambda n: n[perm], noise)
    return dsm_loss(
        model,
        x0,
        path=paths,
        prediction="velocity",
        weighting="target",
        mask=mask,
        cond=cond,
        generator=generator,
        t=t,
        time_sampler=time_sampler,
        noise=noise,
        reduction=reduction,
    )
