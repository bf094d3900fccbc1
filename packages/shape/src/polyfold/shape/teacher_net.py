"""The learned 2D teacher's network: a small conv UNet over renders, conditioned on class and
camera.

:class:`TeacherUNet` predicts ``eps`` of ``(B, 2, H, W)`` renders (:meth:`Render.image`) on a
three-level UNet (``H``, ``H/2``, ``H/4`` with ``width``, twice and four times as many
channels; ``H`` divisible by 4) of residual blocks (GroupNorm,
SiLU, 3x3 convolutions), each modulated by FiLM from one embedding of the time (core's
:func:`~polyfold.core.timesteps.sinusoidal_embedding`), the class (a learned embedding with one
extra row, :attr:`TeacherUNet.null`, the unconditional label of classifier-free guidance) and
the camera (:meth:`Cameras.embedding`, sin/cos of elevation and azimuth). Its condition is a
dict ``{"label": (B,) long, "camera": (B, 4)}`` so core's :func:`~polyfold.core.guidance.cfg`
batches the conditional and null predictions in one call.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError, check_int
from polyfold.core.export import register_model
from polyfold.core.timesteps import sinusoidal_embedding

__all__ = ["TeacherUNet"]


class _Block(nn.Module):
    """A residual block: GN-SiLU-conv, FiLM by the embedding, GN-SiLU-conv, plus a skip."""

    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.n1, self.n2 = nn.GroupNorm(8, cin), nn.GroupNorm(8, cout)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.film = nn.Linear(emb, 2 * cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.c1(F.silu(self.n1(x)))
        s, b = self.film(e)[:, :, None, None].chunk(2, 1)
        h = self.c2(F.silu(self.n2(h) * (1 + s) + b))
        out: Tensor = h + self.skip(x)
        return out


@register_model("shape.TeacherUNet")
class TeacherUNet(nn.Module):
    """``eps``-prediction UNet of ``channels x res x res`` renders of ``classes`` (see the
    module docstring); ``render`` records the renderer settings of its training data."""

    def __init__(
        self,
        classes: list[str],
        *,
        res: int = 24,
        width: int = 32,
        channels: int = 2,
        render: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not classes or len(set(classes)) != len(classes):
            raise InputError(f"classes: expected distinct class names, got {classes!r}")
        check_int("res", res, 4)
        if res % 4:
            raise InputError(f"--res: expected a multiple of 4 (two downsamplings), got {res}")
        if check_int("--width", width, 8) % 8:
            raise InputError(f"--width: expected a multiple of 8 (GroupNorm), got {width}")
        self.classes, self.res, self.width = list(classes), res, width
        self.channels = check_int("channels", channels, 1)
        self.render = dict(render or {})
        c, e = width, 4 * width
        self.label = nn.Embedding(len(classes) + 1, e)
        self.emb = nn.Sequential(nn.Linear(e + 4, e), nn.SiLU(), nn.Linear(e, e))
        self.inp = nn.Conv2d(channels, c, 3, padding=1)
        self.b1, self.b2, self.b3 = _Block(c, c, e), _Block(c, 2 * c, e), _Block(2 * c, 4 * c, e)
        self.mid = _Block(4 * c, 4 * c, e)
        self.u2, self.u1 = _Block(6 * c, 2 * c, e), _Block(3 * c, c, e)
        self.norm = nn.GroupNorm(8, c)
        self.out = nn.Conv2d(c, channels, 3, padding=1)
        for p in self.out.parameters():  # starts predicting zero noise
            nn.init.zeros_(p)

    @property
    def null(self) -> int:
        """The unconditional label (classifier-free guidance)."""
        return len(self.classes)

    def config(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "res": self.res,
            "width": self.width,
            "channels": self.channels,
            "render": self.render,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TeacherUNet:
        return cls(**config)

    def forward(self, x: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.channels, self.res, self.res):
            raise InputError(
                f"x: expected renders (B, {self.channels}, {self.res}, {self.res}), "
                f"got {tuple(x.shape)}"
            )
        b = x.shape[0]
        tt = torch.as_tensor(t).reshape(-1).expand(b)
        e = self.label(cond["label"].long().reshape(-1).expand(b))
        e = e + sinusoidal_embedding(tt, e.shape[1], scale=1000.0)
        e = self.emb(torch.cat([e, cond["camera"].float().expand(b, 4)], -1))
        h1 = self.b1(self.inp(x.float()), e)
        h2 = self.b2(F.avg_pool2d(h1, 2), e)
        h3 = self.mid(self.b3(F.avg_pool2d(h2, 2), e), e)
        u = self.u2(torch.cat([F.interpolate(h3, scale_factor=2.0), h2], 1), e)
        u = self.u1(torch.cat([F.interpolate(u, scale_factor=2.0), h1], 1), e)
        eps: Tensor = self.out(F.silu(self.norm(u))).to(x.dtype)
        return eps
