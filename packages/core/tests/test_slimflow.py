"""SlimFlow: reflow pairs, Annealing Reflow, Flow-Guided Distillation and their trainers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.distill import (
    ReflowPairs,
    anneal_noise,
    annealing_randomness,
    annealing_reflow_trainer,
    flow_guided_distillation_loss,
    flow_guided_distillation_trainer,
    one_step_sample,
    reflow_loss,
    reflow_pairs,
)
from polyfold.core.errors import InputError
from polyfold.core.paths import LinearInterpolant

A = 0.5  # the straight coupling x = A z


class StraightVelocity(nn.Module):
    """The exact velocity of the straight coupling ``x = A z`` on the linear path:
    ``x_t = ((1 - t) A + t) z``, so ``v = z - x = (1 - A) x_t / ((1 - t) A + t)``."""

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return (1 - A) * x / ((1 - tt) * A + tt)


def straight_pairs(n: int = 64, d: int = 3) -> tuple[Tensor, Tensor]:
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    return z, A * z


def test_reflow_of_a_straight_coupling_has_zero_loss() -> None:
    z, x = straight_pairs()
    g = torch.Generator().manual_seed(1)
    loss = reflow_loss(StraightVelocity(), z, x, generator=g)
    assert float(loss) < 1e-10
    # annealed towards random pairs the same field no longer fits
    noisy = reflow_loss(StraightVelocity(), z, x, randomness=1.0, generator=g)
    assert float(noisy) > 0.1


def test_reflow_loss_with_x0_prediction_is_zero_at_the_pair() -> None:
    z, x = straight_pairs()

    def x0_model(xt: Tensor, t: Tensor, cond: object = None) -> Tensor:
        tt = t.reshape(-1, 1)
        return A * xt / ((1 - tt) * A + tt)

    assert float(reflow_loss(x0_model, z, x, prediction="x0")) < 1e-10


def test_reflow_pairs_of_a_straight_teacher_are_exact_in_one_euler_step() -> None:
    path = LinearInterpolant()
    z, x = straight_pairs()
    teacher = as_denoiser(StraightVelocity(), path, prediction="velocity")
    pairs = reflow_pairs(teacher, path, z, sampler="euler", steps=1)
    assert isinstance(pairs, ReflowPairs)
    assert len(pairs) == z.shape[0]
    torch.testing.assert_close(pairs.x, x)
    torch.testing.assert_close(one_step_sample(teacher, z), x)
    zi, xi = pairs[3]
    torch.testing.assert_close(xi, A * zi)


def test_annealing_schedule_endpoints() -> None:
    for schedule in ("linear", "cosine"):
        assert annealing_randomness(0, 100, schedule) == 1.0
        assert annealing_randomness(100, 100, schedule) == pytest.approx(0.0, abs=1e-12)
        assert annealing_randomness(500, 100, schedule) == pytest.approx(0.0, abs=1e-12)
    assert annealing_randomness(50, 100, "linear") == 0.5
    assert annealing_randomness(50, 100, "cosine") == pytest.approx(0.5)
    assert annealing_randomness(100, 100, "exp") == pytest.approx(math.exp(-1))
    assert annealing_randomness(7, 0) == 0.0
    with pytest.raises(InputError, match="schedule"):
        annealing_randomness(0, 10, "step")  # type: ignore[arg-type]


def test_anneal_noise_keeps_unit_variance_and_endpoints() -> None:
    z = torch.randn(20000, 2, generator=torch.Generator().manual_seed(2))
    assert anneal_noise(z, 0.0) is z
    mixed = anneal_noise(z, 0.6, torch.Generator().manual_seed(3))
    assert float(mixed.var()) == pytest.approx(1.0, abs=0.03)
    corr = float((mixed * z).mean())
    assert corr == pytest.approx(0.8, abs=0.03)  # sqrt(1 - 0.6^2)
    with pytest.raises(InputError, match="randomness"):
        anneal_noise(z, 1.5)


def test_flow_guided_loss_is_zero_for_a_straight_student_and_guide() -> None:
    path = LinearInterpolant()
    z, x = straight_pairs()
    exact = as_denoiser(StraightVelocity(), path, prediction="velocity")
    loss = flow_guided_distillation_loss(exact, exact, z, x, generator=torch.Generator())
    assert float(loss) < 1e-10
    # a wrong student pays both terms: the pair and the guide's trajectory
    wrong = as_denoiser(lambda xt, t, c=None: torch.zeros_like(xt), path, prediction="velocity")
    d = float(((z - x) ** 2).sum(1).mean())
    both = flow_guided_distillation_loss(wrong, exact, z, x, guide_weight=0.5)
    torch.testing.assert_close(float(both), 1.5 * d, rtol=1e-5, atol=0)
    huber = flow_guided_distillation_loss(wrong, None, z, x, metric="pseudo_huber", huber_c=0.1)
    assert 0 < float(huber) < d


def test_bad_input() -> None:
    z, x = straight_pairs()
    with pytest.raises(InputError, match="shape"):
        reflow_loss(StraightVelocity(), z, x[:, :2])
    with pytest.raises(InputError, match="shape"):
        ReflowPairs(z, x[:10])
    exact = as_denoiser(StraightVelocity(), LinearInterpolant(), prediction="velocity")
    with pytest.raises(InputError, match="split"):
        flow_guided_distillation_loss(exact, exact, z, x, split=(0.8, 0.2))
    with pytest.raises(InputError, match="x: give"):
        flow_guided_distillation_loss(exact, None, z)
    with pytest.raises(InputError, match="guide_weight"):
        flow_guided_distillation_loss(exact, exact, z, x, guide_weight=-1.0)


class SmallFlow(nn.Module):
    def __init__(self, h: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, h), nn.SiLU(), nn.Linear(h, 2))

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        out: Tensor = self.net(torch.cat([x, tt], 1))
        return out


def _pairs() -> ReflowPairs:
    g = torch.Generator().manual_seed(4)
    z = torch.randn(512, 2, generator=g)
    return ReflowPairs(z, 0.3 * z + torch.tensor([1.0, -1.0]))


def test_recipes_train_and_reduce_the_loss(tmp_path: object) -> None:
    torch.manual_seed(0)
    pairs = _pairs()
    student = SmallFlow()
    opts = {"batch_size": 128, "lr": 1e-2, "device": "cpu", "quiet": True, "ema_decay": None}
    g = torch.Generator().manual_seed(5)
    z, x = pairs.z, pairs.x
    with torch.no_grad():
        before = float(reflow_loss(student, z, x, generator=g))
    trainer = annealing_reflow_trainer(
        student, pairs, out_dir=f"{tmp_path}/reflow", anneal_steps=20, max_steps=60, **opts
    )
    trainer.fit()
    with torch.no_grad():
        after = float(reflow_loss(student, z, x, generator=torch.Generator().manual_seed(5)))
    assert after < 0.5 * before
    path = LinearInterpolant()
    one = as_denoiser(student, path, prediction="velocity")
    with torch.no_grad():
        err_before = float(((one_step_sample(one, z) - x) ** 2).sum(1).mean())
    fgd = flow_guided_distillation_trainer(
        student, pairs, out_dir=f"{tmp_path}/fgd", max_steps=40, **opts
    )
    fgd.fit()
    with torch.no_grad():
        err_after = float(((one_step_sample(one, z) - x) ** 2).sum(1).mean())
    assert err_after < err_before
