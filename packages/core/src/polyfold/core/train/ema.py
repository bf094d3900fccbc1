"""Exponential moving average of a model's parameters, with a decay warmup.

After the ``n``-th update (``n`` = 0 for the first) the shadow weights are
``shadow <- d_n * shadow + (1 - d_n) * param`` with ``d_n`` from the warmup rule:

- ``"ratio"`` (default): ``d_n = min(max_decay, (1 + n) / (10 + n))`` -- the rule of
  TensorFlow's ``ExponentialMovingAverage(num_updates=...)``. The first update takes 90 % of
  the live weights, so an early EMA is not stuck near the random initialisation.
- ``"power"``: k-diffusion's power-law warmup ``d_n = 1 - (1 + n / inv_gamma) ** -power``,
  clipped to ``[min_decay, max_decay]`` (``inv_gamma=1, power=2/3`` suits runs of ~100k steps,
  ``power=3/4`` longer ones).
- ``"none"``: ``d_n = max_decay`` throughout.

Buffers (batch-norm statistics and the like) are copied, not averaged. The shadow copy keeps
each parameter's dtype and device.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from polyfold.core.errors import InputError

__all__ = ["EMA", "EMAWarmup", "ema_decay"]

EMAWarmup = Literal["ratio", "power", "none"]


def ema_decay(
    n: int,
    *,
    max_decay: float,
    warmup: EMAWarmup = "ratio",
    inv_gamma: float = 1.0,
    power: float = 2.0 / 3.0,
    min_decay: float = 0.0,
) -> float:
    """The decay used by the ``n``-th EMA update (0-based); see the module docstring."""
    if warmup == "none":
        return max_decay
    if warmup == "ratio":
        return min(max_decay, (1.0 + n) / (10.0 + n))
    if warmup == "power":
        value = 1.0 - (1.0 + n / inv_gamma) ** -power
        return float(min(max_decay, max(min_decay, value)))
    raise InputError(f"ema_warmup: expected 'ratio', 'power' or 'none', got {warmup!r}")


class EMA:
    """Shadow weights of ``model`` updated by :meth:`update` after each optimizer step."""

    def __init__(
        self,
        model: nn.Module,
        *,
        max_decay: float = 0.999,
        warmup: EMAWarmup = "ratio",
        inv_gamma: float = 1.0,
        power: float = 2.0 / 3.0,
        min_decay: float = 0.0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(max_decay, int | float) or not 0.0 <= float(max_decay) < 1.0:
            raise InputError(f"ema_decay: expected a number in [0, 1), got {max_decay!r}")
        if warmup not in ("ratio", "power", "none"):
            raise InputError(f"ema_warmup: expected 'ratio', 'power' or 'none', got {warmup!r}")
        if not inv_gamma > 0:
            raise InputError(f"ema_inv_gamma: expected a positive number, got {inv_gamma!r}")
        if not power > 0:
            raise InputError(f"ema_power: expected a positive number, got {power!r}")
        if not 0.0 <= min_decay <= max_decay:
            raise InputError(
                f"ema_min_decay: expected a number in [0, max_decay], got {min_decay!r}"
            )
        self.max_decay = float(max_decay)
        self.warmup: EMAWarmup = warmup
        self.inv_gamma = float(inv_gamma)
        self.power = float(power)
        self.min_decay = float(min_decay)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict(keep_vars=False).items()
        }
        self._param_names = {name for name, _ in model.named_parameters()}

    def decay(self, n: int | None = None) -> float:
        """The decay of update ``n`` (default: the next update)."""
        return ema_decay(
            self.num_updates if n is None else n,
            max_decay=self.max_decay,
            warmup=self.warmup,
            inv_gamma=self.inv_gamma,
            power=self.power,
            min_decay=self.min_decay,
        )

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Move the shadow towards ``model``'s current weights; returns the decay used."""
        d = self.decay()
        for name, value in model.state_dict().items():
            if name not in self.shadow:
                raise InputError(f"model: parameter {name!r} is not tracked by this EMA")
            s = self.shadow[name]
            if name in self._param_names and s.is_floating_point():
                s.mul_(d).add_(value.detach().to(s.dtype), alpha=1.0 - d)
            else:
                s.copy_(value.detach())
        self.num_updates += 1
        return d

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the shadow weights into ``model`` (e.g. a copy used for sampling)."""
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, Any]:
        """Settings and counter (JSON-friendly); the shadow tensors are :attr:`shadow`."""
        return {
            "max_decay": self.max_decay,
            "warmup": self.warmup,
            "inv_gamma": self.inv_gamma,
            "power": self.power,
            "min_decay": self.min_decay,
            "num_updates": self.num_updates,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any], shadow: dict[str, Tensor]) -> None:
        """Restore from :meth:`state_dict` and the saved shadow tensors."""
        missing = set(self.shadow) - set(shadow)
        unexpected = set(shadow) - set(self.shadow)
        if missing or unexpected:
            raise InputError(
                f"ema weights: expected the model's keys; missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        for k, v in shadow.items():
            self.shadow[k].copy_(v)
        self.num_updates = int(state["num_updates"])
        self.max_decay = float(state["max_decay"])
        self.warmup = state["warmup"]
        self.inv_gamma = float(state["inv_gamma"])
        self.power = float(state["power"])
        self.min_decay = float(state["min_decay"])
