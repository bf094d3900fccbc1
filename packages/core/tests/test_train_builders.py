"""The trainer's builders, one at a time."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, TensorDataset

from polyfold.core.errors import InputError
from polyfold.core.train.builders import (
    build_ema,
    build_optimizer,
    build_scheduler,
    data_source,
    model_config,
)
from polyfold.core.train.config import TrainConfig, resolve_config
from polyfold.core.train.distributed import DistInfo


def test_resolve_config_builds_overrides_and_names_unknown_options() -> None:
    assert resolve_config(None, {"max_steps": 5}).max_steps == 5
    base = TrainConfig(max_steps=5, lr=1e-3)
    over = resolve_config(base, {"lr": 2e-3})
    assert (over.lr, over.max_steps, base.lr) == (2e-3, 5, 1e-3)
    assert resolve_config(base, {}) is base
    with pytest.raises(InputError, match="learning_rate: not a trainer option"):
        resolve_config(None, {"max_steps": 5, "learning_rate": 1.0})
    with pytest.raises(InputError, match="max_steps"):
        resolve_config(None, {})


def test_optimizer_scheduler_and_ema_from_config() -> None:
    model = nn.Linear(2, 1)
    cfg = TrainConfig(
        max_steps=10, lr=0.5, weight_decay=0.1, lr_schedule="constant", ema_decay=None
    )
    opt = build_optimizer(model, None, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    assert (opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"]) == (0.5, 0.1)
    assert isinstance(build_scheduler(opt, None, cfg), LambdaLR)
    assert build_ema(model, cfg) is None
    sgd = build_optimizer(model, lambda ps: torch.optim.SGD(ps, lr=0.1), cfg)
    assert isinstance(sgd, torch.optim.SGD)
    with pytest.raises(InputError, match="model's own parameters"):
        build_optimizer(model, torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1), cfg)


def test_data_source_tells_map_style_from_iterables() -> None:
    ds = TensorDataset(torch.arange(10.0))
    one = DistInfo()
    mapped = data_source(ds, TrainConfig(max_steps=1, batch_size=4), one)
    assert mapped.dataset is ds
    assert mapped.index_batches is not None
    assert mapped.iterable is None
    loader = DataLoader(ds, batch_size=4)
    assert data_source(loader, TrainConfig(max_steps=1), one).iterable is loader
    with pytest.raises(InputError, match="batch_size"):
        data_source(ds, TrainConfig(max_steps=1), one)


def test_model_config_from_a_dataclass_and_refused_when_not_json() -> None:
    @dataclass
    class Cfg:
        width: int = 3

    model = nn.Linear(1, 1)
    model.config = Cfg()  # type: ignore[assignment]
    assert model_config(model, None) == {"width": 3}
    assert model_config(nn.Linear(1, 1), None) is None
    with pytest.raises(InputError, match="JSON"):
        model_config(model, {"f": object()})
