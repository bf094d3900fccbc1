"""End to end: progressive distillation of the analytic Gaussian-mixture teacher."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.distill import pd_grid, progressive_distillation_loss
from polyfold.core.metrics import sliced_wasserstein
from polyfold.core.paths import VPCosine
from polyfold.core.samplers import ddim
from polyfold.core.testing import GaussianMixture


class Student(nn.Module):
    """x0 predictor ``net(x, t)``."""

    def __init__(self, h: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 2)
        )

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        out: Tensor = self.net(torch.cat([x, tt], dim=1))
        return out


def test_pd_student_one_step_beats_teacher_one_step() -> None:
    path = VPCosine()
    angles = [2 * math.pi * k / 4 for k in range(4)]
    g = GaussianMixture([[2 * math.cos(a), 2 * math.sin(a)] for a in angles], stds=0.2)
    teacher = as_denoiser(g.model(path, "x0"), path, prediction="x0")
    net = Student()
    student = as_denoiser(net, path, prediction="x0")
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):  # 2-step teacher -> 1-step student
        loss = progressive_distillation_loss(
            student,
            teacher,
            g.sample(256, generator=gen),
            path=path,
            student_steps=1,
            generator=gen,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen = torch.Generator().manual_seed(1)
    target = g.sample(4000, generator=gen)
    x_T = path.prior_sample((4000, 2), generator=gen)
    grid = pd_grid(path, 1)
    with torch.no_grad():
        one_teacher = ddim(teacher, path, x_T, grid).x
        one_student = ddim(student, path, x_T, grid).x
        two_teacher = ddim(teacher, path, x_T, pd_grid(path, 2)).x
    sw_teacher = sliced_wasserstein(one_teacher, target)  # type: ignore[arg-type]
    sw_student = sliced_wasserstein(one_student, target)  # type: ignore[arg-type]
    sw_two = sliced_wasserstein(two_teacher, target)  # type: ignore[arg-type]
    assert sw_student < 0.5 * sw_teacher, (sw_student, sw_teacher, sw_two)
    assert sw_student < 2.0 * sw_two + 0.05, (sw_student, sw_two)
