"""Guided-model distillation: the CFG fixed point, bad input, and both trainer stages."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from polyfold.core.distill import (
    guidance_embedding,
    guided_cond,
    guided_denoiser,
    guided_distillation_loss,
    guided_distillation_trainer,
    guided_progressive_distillation,
    guided_progressive_loss,
)
from polyfold.core.errors import InputError
from polyfold.core.guidance import cfg
from polyfold.core.paths import GaussianPath, LinearInterpolant, VPCosine
from polyfold.core.testing import NULL_LABEL, GaussianMixture


def mixture() -> GaussianMixture:
    return GaussianMixture(
        [[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]], stds=0.3, labels=[0, 1, 0, 1]
    )


class ExactGuidedStudent:
    """The teacher's exact CFG output ``x0_u + w (x0_c - x0_u)``, as a ``w``-conditioned net."""

    def __init__(self, g: GaussianMixture, path: GaussianPath) -> None:
        self.g, self.path = g, path

    def __call__(self, x: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
        c = self.g.predict(x, t, self.path, "x0", cond=cond["cond"])
        u = self.g.predict(x, t, self.path, "x0", cond=NULL_LABEL)
        w = torch.as_tensor(cond["w"], dtype=x.dtype).reshape(-1, 1)
        return u + w * (c - u)


def batch(n: int = 64) -> tuple[Tensor, Tensor]:
    g = mixture()
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    x0 = torch.cat(
        [g.sample(n // 2, cond=0, generator=gen), g.sample(n // 2, cond=1, generator=gen)]
    )
    return x0.double(), torch.cat([labels[::2] * 0, labels[::2] * 0 + 1])


@pytest.mark.parametrize("path", [VPCosine(), LinearInterpolant()])
@pytest.mark.parametrize("target", ["x0", "eps", "v"])
def test_student_equal_to_the_cfg_output_has_zero_loss(path: GaussianPath, target: str) -> None:
    g = mixture()
    teacher = g.model(path, "eps")
    x0, labels = batch()
    student = ExactGuidedStudent(g, path)
    loss = guided_distillation_loss(
        student,
        teacher,
        x0,
        labels,
        path=path,
        prediction="eps",
        student_prediction="x0",
        null_cond=NULL_LABEL,
        w_range=(0.0, 8.0),
        target=target,  # type: ignore[arg-type]
        weighting="uniform",
        generator=torch.Generator().manual_seed(1),
    )
    assert float(loss) < 1e-16
    # the same student read at the wrong weight is not the teacher's output
    wrong = guided_distillation_loss(
        lambda x, t, c: student(x, t, {"cond": c["cond"], "w": c["w"] + 1.0}),
        teacher,
        x0,
        labels,
        path=path,
        prediction="eps",
        student_prediction="x0",
        null_cond=NULL_LABEL,
        w=2.0,
        target=target,  # type: ignore[arg-type]
        weighting="uniform",
        generator=torch.Generator().manual_seed(1),
    )
    assert float(wrong) > 1e-3


def test_guided_denoiser_matches_the_cfg_wrapper() -> None:
    path = VPCosine()
    g = mixture()
    x, labels = batch(16)
    t = torch.full((16,), 0.5, dtype=torch.float64)
    student = guided_denoiser(
        ExactGuidedStudent(g, path), path, prediction="x0", cond=labels, w=3.0
    )
    teacher = cfg(
        guided_denoiser(
            lambda xx, tt, c: g.predict(xx, tt, path, "x0", cond=c["cond"]),
            path,
            prediction="x0",
            cond=labels,
            w=0.0,
        ),
        {"cond": NULL_LABEL, "w": torch.tensor(0.0)},
        3.0,
    )
    torch.testing.assert_close(student(x, t).x0, teacher(x, t).x0)


def test_negative_or_inverted_weights_are_refused() -> None:
    path = VPCosine()
    g = mixture()
    x0, labels = batch(8)
    kw = {"path": path, "prediction": "eps", "null_cond": NULL_LABEL}
    student = ExactGuidedStudent(g, path)
    with pytest.raises(InputError, match="w: expected finite guidance weights >= 0"):
        guided_distillation_loss(student, g.model(path), x0, labels, w=-1.0, **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="w_range: expected guidance weights >= 0"):
        guided_distillation_loss(student, g.model(path), x0, labels, w_range=(-1.0, 2.0), **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="inverted"):
        guided_distillation_loss(student, g.model(path), x0, labels, w_range=(4.0, 1.0), **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="w: expected"):
        guided_cond(labels, -0.5)
    with pytest.raises(InputError, match="w_range"):
        guided_progressive_loss(
            student,
            student,
            x0,
            labels,
            path=path,
            prediction="x0",
            student_steps=2,
            w_range=(3.0, 2.0),
        )


def test_student_shape_disagreeing_with_the_teacher_is_refused() -> None:
    path = VPCosine()
    g = mixture()
    x0, labels = batch(8)
    with pytest.raises(
        InputError, match=r"model output: expected a tensor of the state's shape \(8, 2\)"
    ):
        guided_distillation_loss(
            lambda x, t, c: x[:, :1],
            g.model(path),
            x0,
            labels,
            path=path,
            prediction="eps",
            null_cond=NULL_LABEL,
        )


def test_guidance_embedding() -> None:
    e = guidance_embedding(torch.tensor([0.0, 1.0, 8.0]), 3, dim=8)
    assert e.shape == (3, 8)
    torch.testing.assert_close(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert guidance_embedding(2.0, 5).shape == (5, 16)
    with pytest.raises(InputError, match="dim"):
        guidance_embedding(1.0, 2, dim=7)


class GuidedNet(nn.Module):
    """A small ``w``-conditioned x0 network over labels 0/1."""

    def __init__(self, h: int = 48) -> None:
        super().__init__()
        self.label = nn.Embedding(3, 8)
        self.net = nn.Sequential(nn.Linear(2 + 1 + 8 + 8, h), nn.SiLU(), nn.Linear(h, 2))

    def forward(self, x: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
        b = x.shape[0]
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(b, 1)
        lab = torch.as_tensor(cond["cond"]).long().reshape(-1).expand(b)
        feats = [x, tt, self.label(lab), guidance_embedding(cond["w"], b, 8).to(x.dtype)]
        out: Tensor = self.net(torch.cat(feats, 1))
        return out


class Pairs(torch.utils.data.Dataset[tuple[Tensor, Tensor]]):
    def __init__(self, x: Tensor, c: Tensor) -> None:
        self.x, self.c = x, c

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.c[i]


def test_both_stages_train_with_the_trainer(tmp_path: object) -> None:
    torch.manual_seed(0)
    path = VPCosine()
    g = mixture()
    x0, labels = batch(512)
    data = Pairs(x0.float(), labels)
    teacher = g.model(path, "eps")
    student = GuidedNet()
    kw = {"path": path, "prediction": "eps", "null_cond": NULL_LABEL}

    def loss() -> float:
        with torch.no_grad():
            return float(
                guided_distillation_loss(
                    student,
                    teacher,
                    x0[:256].float(),
                    labels[:256],
                    student_prediction="x0",
                    generator=torch.Generator().manual_seed(3),
                    **kw,  # type: ignore[arg-type]
                )
            )

    before = loss()
    opts = {"batch_size": 128, "lr": 5e-3, "device": "cpu", "quiet": True, "ema_decay": None}
    guided_distillation_trainer(
        student,
        teacher,
        data,
        out_dir=f"{tmp_path}/stage1",
        student_prediction="x0",
        max_steps=80,
        **kw,
        **opts,  # type: ignore[arg-type]
    ).fit()
    assert loss() < 0.6 * before
    ends: list[int] = []
    logs = guided_progressive_distillation(
        student,
        data,
        out_dir=f"{tmp_path}/stage2",
        path=path,
        prediction="x0",
        teacher_steps=4,
        steps_per_round=10,
        on_round_end=ends.append,
        **opts,  # type: ignore[arg-type]
    )
    assert [(s.teacher_steps, s.student_steps) for s in logs] == [(4, 2), (2, 1)]
    assert ends == [2, 1]
    assert all(len(s.values) == 1 and s.values[0] >= 0 for s in logs)
