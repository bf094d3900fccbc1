"""States, per-key values and validity masks.

A *state* is a tensor or a ``dict[str, Tensor]`` (GDSS: ``{"x": nodes, "adj": adjacency}``), batch
first. Everything that varies per key (the path, the mask, the prediction type) is given either
once for all keys or as a dict with exactly the state's keys; :func:`tree_map` applies a function
key by key and passes non-dict arguments unchanged to every key.

Masks are bool, True = valid, shaped like a prefix of the tensor they mask (``(B, L)`` for a
``(B, L, C)`` sequence) and broadcast over the trailing feature dims. Padding is zero and stays
zero: losses exclude it (:func:`masked_mean`) and samplers keep it (:func:`keep_padding`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import torch
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = [
    "Mask",
    "State",
    "StepCallback",
    "apply_mask",
    "expand_mask",
    "expand_to",
    "keep_padding",
    "map_state",
    "masked_mean",
    "outer_mask",
    "per_key",
    "randn_like",
    "tree_map",
]

State: TypeAlias = Tensor | dict[str, Tensor]
Mask: TypeAlias = Tensor | dict[str, Tensor | None] | None
#: ``callback(step, t, x, x0)``: every sampler calls it once per step, after step ``step``
#: (0-based) has moved the state to time ``t``; ``x`` is the new state and ``x0`` the model's
#: data estimate used in that step (``None`` where the sampler has none). Progress bars and
#: intermediate states come from it.
StepCallback: TypeAlias = Callable[[int, float, State, State | None], None]

T = TypeVar("T")


def tree_map(fn: Callable[..., Any], *trees: Any) -> Any:
    """Apply ``fn`` leaf by leaf; the first argument gives the structure.

    If the first argument is a dict, every dict argument must have exactly its keys and non-dict
    arguments (a single path, a mask, ``None``) are passed unchanged to every key; the result is
    a dict with the same keys. Otherwise ``fn(*trees)`` is returned. Trees are ``dict``s (and
    their subclasses), not any ``Mapping``: the ``Mapping`` ABC check costs a sampler step more
    than its arithmetic on small states.
    """
    if not trees:
        raise InputError("tree_map: expected at least one state")
    first = trees[0]
    if not isinstance(first, dict):
        for i, other in enumerate(trees[1:], start=1):
            if isinstance(other, dict):
                raise InputError(
                    f"tree_map: argument {i} is a dict with keys {sorted(other)} but the state "
                    "is a single tensor; expected a single value"
                )
        return fn(*trees)
    keys = first.keys()
    for i, other in enumerate(trees[1:], start=1):
        if isinstance(other, dict) and other.keys() != keys:
            raise InputError(
                f"tree_map: argument {i} has keys {sorted(other)}, expected the state's keys "
                f"{sorted(keys)}"
            )
    return {k: fn(*(t[k] if isinstance(t, dict) else t for t in trees)) for k in keys}


def map_state(fn: Callable[..., Tensor], *trees: Any) -> State:
    """:func:`tree_map` of a function returning tensors, typed as a :data:`State`."""
    out: State = tree_map(fn, *trees)
    return out


def per_key(value: T | Mapping[str, T], state: State, name: str = "value") -> dict[str, T]:
    """``value`` as a dict aligned with a dict state's keys (a non-dict value is shared)."""
    if not isinstance(state, Mapping):
        raise InputError(f"per_key: {name} needs a dict state, got a tensor")
    if isinstance(value, Mapping):
        if set(value) != set(state):
            raise InputError(f"{name} has keys {sorted(value)}, expected {sorted(state)}")
        return {k: value[k] for k in state}
    return dict.fromkeys(state, value)


def expand_to(coef: Tensor | float, x: Tensor) -> Tensor:
    """A scalar or a batch-first coefficient (shape a prefix of ``x.shape``) viewed for ``x``.

    ``coef`` of shape ``(B,)`` becomes ``(B, 1, ..., 1)`` so that ``coef * x`` scales example
    by example. The result is on ``x``'s device; a Python number takes a floating ``x``'s dtype
    (so float64 states keep float64 coefficients), a tensor keeps its own dtype.
    """
    as_x = not isinstance(coef, Tensor) and x.is_floating_point()
    c = torch.as_tensor(coef, device=x.device, dtype=x.dtype if as_x else None)
    if c.ndim > x.ndim or tuple(x.shape[: c.ndim]) != tuple(c.shape):
        if c.numel() == 1:
            return c.reshape(())
        raise InputError(
            f"coefficient of shape {tuple(c.shape)} does not match the leading dims of a tensor "
            f"of shape {tuple(x.shape)}; expected a scalar or shape (B,) batch-first"
        )
    return c.reshape(*c.shape, *([1] * (x.ndim - c.ndim)))


def expand_mask(mask: Tensor, x: Tensor) -> Tensor:
    """Check a bool mask against ``x`` and view it with trailing singleton dims."""
    if mask.dtype != torch.bool:
        raise InputError(f"mask: expected a bool tensor (True = valid), got dtype {mask.dtype}")
    if mask.ndim > x.ndim or tuple(x.shape[: mask.ndim]) != tuple(mask.shape):
        raise InputError(
            f"mask of shape {tuple(mask.shape)} does not match the leading dims of the state's "
            f"shape {tuple(x.shape)}"
        )
    return mask.reshape(*mask.shape, *([1] * (x.ndim - mask.ndim))).to(x.device)


def outer_mask(mask: Tensor) -> Tensor:
    """Pair mask ``(B, N, N)`` of a node mask ``(B, N)``: valid where both nodes are valid."""
    return mask[:, :, None] & mask[:, None, :]


def apply_mask(x: State, mask: Mask) -> State:
    """Zero the padding of a state (mask ``None`` leaves it as is)."""

    def one(xi: Tensor, mi: Tensor | None) -> Tensor:
        if mi is None:
            return xi
        return torch.where(expand_mask(mi, xi), xi, torch.zeros((), dtype=xi.dtype))

    return tree_map(one, x, mask)  # type: ignore[no-any-return]


def keep_padding(new: State, old: State, mask: Mask) -> State:
    """Valid entries from ``new``, padded entries from ``old``: what a sampler step returns."""

    def one(ni: Tensor, oi: Tensor, mi: Tensor | None) -> Tensor:
        if mi is None:
            return ni
        return torch.where(expand_mask(mi, ni), ni, oi.to(ni.dtype))

    return tree_map(one, new, old, mask)  # type: ignore[no-any-return]


def masked_mean(x: Tensor, mask: Tensor | None = None, *, per_example: bool = False) -> Tensor:
    """Mean of ``x`` over its valid entries (padding excluded from sum and count).

    With ``per_example=True`` the mean is over all dims but the first, giving ``(B,)``; an
    example with no valid entry gets 0.
    """
    if mask is None:
        return x.flatten(1).mean(1) if per_example else x.mean()
    m = expand_mask(mask, x).expand_as(x)
    xm = torch.where(m, x, torch.zeros((), dtype=x.dtype))
    if per_example:
        count = m.flatten(1).sum(1).clamp_min(1)
        return xm.flatten(1).sum(1) / count
    return xm.sum() / m.sum().clamp_min(1)


def randn_like(
    x: State, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> State:
    """Standard normal noise shaped like a state, drawn from ``generator``."""

    def one(xi: Tensor) -> Tensor:
        return torch.randn(xi.shape, generator=generator, device=xi.device, dtype=dtype or xi.dtype)

    return tree_map(one, x)  # type: ignore[no-any-return]
