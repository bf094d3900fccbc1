"""procshapes: seeded procedural shape classes with exact analytic SDFs (the default dataset).

``make_shape(cls, seed)`` draws one shape of class ``cls`` from a generator seeded by
``(class index, seed)``, so a shape is the same on every machine. Every shape lies inside the cube
``[-0.5, 0.5]^3`` (the unit cube the mesh loaders normalise to), y up. ``dataset(classes, n)``
returns ``n`` shapes per class. The card is ``data_cards/procshapes.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from polyfold.core.errors import InputError, check_int
from polyfold.shape.sdf import (
    SDF,
    box,
    capsule,
    cylinder,
    revolved_polyline,
    subtract,
    torus,
    union,
)

__all__ = ["CLASSES", "Shape", "check_classes", "dataset", "make_shape"]


@dataclass(frozen=True)
class Shape:
    """One shape: its class name, the seed that drew it and its exact SDF."""

    cls: str
    seed: int
    sdf: SDF

    def __call__(self, p: Tensor) -> Tensor:
        return self.sdf(p)


def _legs(
    r: np.random.Generator, hx: float, hz: float, top: float, bottom: float, radius: float
) -> list[SDF]:
    return [
        capsule((sx * hx, bottom, sz * hz), (sx * hx, top, sz * hz), radius)
        for sx in (-1, 1)
        for sz in (-1, 1)
    ]


def _table(r: np.random.Generator) -> SDF:
    hx, hz = r.uniform(0.3, 0.45), r.uniform(0.2, 0.4)
    top_y, th = r.uniform(0.05, 0.25), r.uniform(0.015, 0.04)
    leg_r = r.uniform(0.015, 0.035)
    top = box((0, top_y, 0), (hx, th, hz))
    legs = _legs(r, hx - 2 * leg_r, hz - 2 * leg_r, top_y, -0.45 + leg_r, leg_r)
    return union(top, *legs)


def _chair(r: np.random.Generator) -> SDF:
    hx, hz = r.uniform(0.18, 0.28), r.uniform(0.18, 0.28)
    seat_y, th = r.uniform(-0.1, 0.05), r.uniform(0.02, 0.04)
    leg_r = r.uniform(0.012, 0.025)
    back_h = r.uniform(0.25, 0.4)
    seat = box((0, seat_y, 0), (hx, th, hz))
    back = box((0, seat_y + back_h / 2 + th, -hz + th), (hx, back_h / 2, th))
    legs = _legs(r, hx - leg_r, hz - leg_r, seat_y, -0.45 + leg_r, leg_r)
    return union(seat, back, *legs)


def _bench(r: np.random.Generator) -> SDF:
    hx, hz = r.uniform(0.35, 0.45), r.uniform(0.08, 0.15)
    seat_y, th = r.uniform(-0.2, -0.05), r.uniform(0.02, 0.04)
    side_t = r.uniform(0.02, 0.04)
    seat = box((0, seat_y, 0), (hx, th, hz))
    h = (seat_y + 0.45) / 2
    sides = [box((s * (hx - side_t), -0.45 + h, 0), (side_t, h, hz * 0.9)) for s in (-1, 1)]
    return union(seat, *sides)


def _shelf(r: np.random.Generator) -> SDF:
    hx, hz, hy = r.uniform(0.2, 0.4), r.uniform(0.1, 0.2), r.uniform(0.3, 0.45)
    t = r.uniform(0.012, 0.03)
    n = int(r.integers(2, 5))
    parts = [box((s * (hx - t), 0, 0), (t, hy, hz)) for s in (-1, 1)]
    parts.append(box((0, 0, -hz + t), (hx, hy, t)))
    for y in np.linspace(-hy + t, hy - t, n + 1):
        parts.append(box((0, float(y), 0), (hx, t, hz)))
    return union(*parts)


def _mug(r: np.random.Generator) -> SDF:
    rad, hh, wall = r.uniform(0.18, 0.28), r.uniform(0.2, 0.38), r.uniform(0.015, 0.035)
    body = subtract(cylinder((0, 0, 0), rad, hh), cylinder((0, wall + 0.05, 0), rad - wall, hh))
    handle_r = r.uniform(0.08, 0.12)
    handle = torus((rad + handle_r * 0.6, 0, 0), handle_r, r.uniform(0.015, 0.03), axis=2)
    return union(body, subtract(handle, cylinder((0, 0, 0), rad - wall, hh)))


def _vase(r: np.random.Generator) -> SDF:
    ys = np.linspace(-0.42, 0.42, 6)
    radii = np.clip(r.uniform(0.08, 0.4, size=6), 0.06, 0.42)
    profile = [(0.0, -0.42)] + [(float(a), float(b)) for a, b in zip(radii, ys, strict=True)]
    return revolved_polyline(profile, r.uniform(0.012, 0.03))


def _lamp(r: np.random.Generator) -> SDF:
    base = cylinder((0, -0.42, 0), r.uniform(0.12, 0.22), 0.03)
    top = r.uniform(0.05, 0.2)
    pole = capsule((0, -0.4, 0), (0, top, 0), r.uniform(0.012, 0.025))
    lo, hi = r.uniform(0.12, 0.2), r.uniform(0.05, 0.12)
    shade = revolved_polyline([(lo, top), (hi, min(top + r.uniform(0.15, 0.25), 0.45))], 0.012)
    return union(base, pole, shade)


_MAKERS: dict[str, Callable[[np.random.Generator], SDF]] = {
    "chair": _chair,
    "table": _table,
    "bench": _bench,
    "shelf": _shelf,
    "mug": _mug,
    "vase": _vase,
    "lamp": _lamp,
}
#: the procedural classes, in label order
CLASSES: tuple[str, ...] = tuple(_MAKERS)


def check_classes(classes: str | list[str] | tuple[str, ...], option: str = "--class") -> list[str]:
    """``classes`` (a list, or a comma-separated string) checked against :data:`CLASSES`."""
    names = classes.split(",") if isinstance(classes, str) else list(classes)
    names = [c.strip() for c in names if c.strip()]
    bad = [c for c in names if c not in _MAKERS]
    if bad or not names:
        raise InputError(
            f"{option}: unknown class {', '.join(bad) or '(none given)'}; "
            f"expected one of {', '.join(CLASSES)}"
        )
    return names


def make_shape(cls: str, seed: int) -> Shape:
    """The procedural shape of class ``cls`` drawn with ``seed``."""
    (name,) = check_classes([cls], "cls")
    check_int("seed", seed, 0)
    r = np.random.default_rng([CLASSES.index(name), seed])
    return Shape(name, seed, _MAKERS[name](r))


def dataset(
    classes: list[str] | tuple[str, ...] = CLASSES, n: int = 8, *, seed: int = 0
) -> list[Shape]:
    """``n`` shapes of each class (seeds ``seed * 100_000 + i``), class by class."""
    check_int("n", n, 1)
    return [make_shape(c, seed * 100_000 + i) for c in check_classes(classes) for i in range(n)]
