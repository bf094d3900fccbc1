"""The warmup-cosine LR schedule and the EMA with decay warmup, against hand computations."""

import math

import pytest
import torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.core.train import EMA, ema_decay, warmup_cosine, warmup_cosine_schedule


def test_warmup_is_linear_and_reaches_one() -> None:
    vals = [warmup_cosine(s, warmup_steps=4, total_steps=14) for s in range(4)]
    assert vals == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert warmup_cosine(4, warmup_steps=4, total_steps=14) == pytest.approx(1.0)


def test_cosine_midpoint_end_and_floor() -> None:
    # 10 decay steps after 4 warmup steps: half way at step 9, floor at step 14 and after
    assert warmup_cosine(9, warmup_steps=4, total_steps=14) == pytest.approx(0.5)
    assert warmup_cosine(14, warmup_steps=4, total_steps=14) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(50, warmup_steps=4, total_steps=14) == pytest.approx(0.0, abs=1e-12)
    r = 0.1
    mid = warmup_cosine(9, warmup_steps=4, total_steps=14, min_ratio=r)
    assert mid == pytest.approx(r + (1 - r) * 0.5)
    s = 6
    expect = r + (1 - r) * 0.5 * (1 + math.cos(math.pi * (s - 4) / 10))
    assert warmup_cosine(s, warmup_steps=4, total_steps=14, min_ratio=r) == pytest.approx(expect)
    assert warmup_cosine(0, warmup_steps=0, total_steps=10) == pytest.approx(1.0)


def test_lambda_lr_applies_the_schedule() -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = warmup_cosine_schedule(opt, warmup_steps=2, total_steps=6)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expect = [2.0 * warmup_cosine(s, warmup_steps=2, total_steps=6) for s in range(6)]
    assert seen == pytest.approx(expect)
    assert seen[:3] == pytest.approx([1.0, 2.0, 2.0])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"warmup_steps": 5, "total_steps": 4}, "warmup_steps"),
        ({"warmup_steps": -1, "total_steps": 4}, "warmup_steps"),
        ({"warmup_steps": 0, "total_steps": 0}, "total_steps"),
        ({"warmup_steps": 0, "total_steps": 4, "min_ratio": 1.5}, "min_lr_ratio"),
    ],
)
def test_schedule_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(InputError, match=name):
        warmup_cosine(0, **kwargs)


def test_ema_decay_rules() -> None:
    assert ema_decay(0, max_decay=0.999) == pytest.approx(0.1)
    assert ema_decay(10, max_decay=0.999) == pytest.approx(11 / 20)
    assert ema_decay(10**6, max_decay=0.999) == pytest.approx(0.999)
    assert ema_decay(0, max_decay=0.9, warmup="power") == pytest.approx(0.0)
    assert ema_decay(7, max_decay=0.9999, warmup="power", power=0.5) == pytest.approx(1 - 8**-0.5)
    assert ema_decay(10**9, max_decay=0.99, warmup="power") == pytest.approx(0.99)
    assert ema_decay(3, max_decay=0.5, warmup="none") == 0.5
    with pytest.raises(InputError, match="ema_warmup"):
        ema_decay(0, max_decay=0.5, warmup="cubic")  # type: ignore[arg-type]


def test_ema_update_matches_hand_computation() -> None:
    bn = nn.BatchNorm1d(2)
    model = nn.Sequential(nn.Linear(3, 2), bn)
    ema = EMA(model, max_decay=0.6)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    hand = {k: v.clone() for k, v in start.items()}
    for n in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            assert bn.running_mean is not None
            bn.running_mean.add_(1.0)  # a buffer: copied, not averaged
        d = ema.update(model)
        expect_d = min(0.6, (1 + n) / (10 + n))
        assert d == pytest.approx(expect_d)
        for name, p in model.named_parameters():
            hand[name] = expect_d * hand[name] + (1 - expect_d) * p.detach()
    assert ema.num_updates == 5
    for name, _ in model.named_parameters():
        torch.testing.assert_close(ema.shadow[name], hand[name])
        assert not torch.equal(ema.shadow[name], model.state_dict()[name])
    torch.testing.assert_close(ema.shadow["1.running_mean"], bn.running_mean)
    # the shadow is a copy: the live model is untouched until copy_to
    other = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema.copy_to(other)
    torch.testing.assert_close(other[0].weight, hand["0.weight"])


def test_ema_power_warmup_first_update_copies_weights() -> None:
    model = nn.Linear(2, 2)
    ema = EMA(model, max_decay=0.999, warmup="power")
    with torch.no_grad():
        model.weight.add_(5.0)
    ema.update(model)  # decay 0 at n = 0: the shadow becomes the live weights
    torch.testing.assert_close(ema.shadow["weight"], model.weight.detach())


def test_ema_bad_arguments() -> None:
    with pytest.raises(InputError, match="ema_decay"):
        EMA(nn.Linear(1, 1), max_decay=1.0)
    with pytest.raises(InputError, match="model"):
        EMA("not a model")  # type: ignore[arg-type]
