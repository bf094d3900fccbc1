"""The trainer: exact resume, accumulation, clipping, logs, progress bar and argument checks."""

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from polyfold.core.errors import InputError, NonFiniteError
from polyfold.core.losses import dsm_loss
from polyfold.core.paths import VPCosine
from polyfold.core.train import TrainConfig, Trainer, load_checkpoint


class Interrupt(Exception):
    pass


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These are CPU tests: the trainer's default device must not pick a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _data(n: int = 40) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g)
    return TensorDataset(x, torch.tanh(x @ torch.randn(3, 2, generator=g)))


class Net(nn.Module):
    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.config = {"width": 16, "dropout": dropout}
        self.body = nn.Sequential(
            nn.Linear(3, 16), nn.SiLU(), nn.Dropout(dropout), nn.Linear(16, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out


def _noisy_loss(model: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
    x, y = batch
    loss: torch.Tensor = ((model(x + 0.1 * torch.randn(x.shape, generator=g)) - y) ** 2).mean()
    return loss


def _mse(model: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
    x, y = batch
    loss: torch.Tensor = ((model(x) - y) ** 2).mean()
    return loss


def _interrupt_at(loss_fn: Any, trainer_ref: list, step: int) -> Any:
    def wrapped(model: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
        if trainer_ref[0].step == step:
            raise Interrupt
        loss: torch.Tensor = loss_fn(model, batch, g)
        return loss

    return wrapped


OPTS: dict[str, Any] = {
    "max_steps": 12,
    "batch_size": 8,  # 40 samples: 5 steps per epoch, so the run crosses epochs
    "lr": 3e-2,
    "warmup_steps": 3,
    "min_lr_ratio": 0.1,
    "ema_decay": 0.95,
    "grad_clip": 0.5,
    "checkpoint_every": 6,
    "log_every": 1,
    "quiet": True,
    "keep_last": None,
    "device": "cpu",
}


def _fresh(out: Path, loss_fn: Any, seed: int, **kw: Any) -> Trainer:
    torch.manual_seed(seed)  # a different init each time: resume must overwrite it
    return Trainer(Net(), loss_fn, _data(), out_dir=out, **{**OPTS, **kw})


def _first_weight(t: Trainer) -> torch.Tensor:
    w: torch.Tensor = t.model.state_dict()["body.0.weight"]
    return w


def _assert_same(a: Trainer, b: Trainer) -> None:
    assert a.step == b.step
    for (na, pa), (nb, pb) in zip(
        a.model.named_parameters(), b.model.named_parameters(), strict=True
    ):
        assert na == nb
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)
    assert a.ema is not None
    assert b.ema is not None
    assert a.ema.num_updates == b.ema.num_updates
    for k, v in a.ema.shadow.items():
        torch.testing.assert_close(v, b.ema.shadow[k], rtol=1e-6, atol=1e-7)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i, st in sa["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(v, sb["state"][i][k], rtol=1e-6, atol=1e-7)
    assert a.scheduler.state_dict()["last_epoch"] == b.scheduler.state_dict()["last_epoch"]


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path: Path) -> None:
    ref = _fresh(tmp_path / "ref", _noisy_loss, seed=5)
    ref.fit()

    out = tmp_path / "run"
    box: list = [None]
    first = _fresh(out, _interrupt_at(_noisy_loss, box, 7), seed=5)
    box[0] = first
    with pytest.raises(Interrupt):
        first.fit()
    assert first.step == 7  # died during step 8, after logging step 7, checkpoint at 6
    torch.rand(100)  # the global RNG moves on before the restart (dropout must not notice)

    second = _fresh(out, _noisy_loss, seed=99)
    result = second.fit(resume=True)
    assert result.step == 12
    _assert_same(second, ref)
    assert load_checkpoint(out).step == 12
    with open(out / "metrics.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == list(range(1, 13)), "the re-run step 7 is logged once"


def test_fresh_trainer_without_resume_differs(tmp_path: Path) -> None:
    # guards the test above: an unresumed fresh run does not coincidentally match
    ref = _fresh(tmp_path / "a", _noisy_loss, seed=5)
    ref.fit()
    other = _fresh(tmp_path / "b", _noisy_loss, seed=99)
    other.fit()
    assert not torch.allclose(_first_weight(ref), _first_weight(other))


def test_resume_with_iterable_data(tmp_path: Path) -> None:
    def loader() -> DataLoader:
        return DataLoader(_data(), batch_size=4, shuffle=False)

    kw = {"batch_size": None, "accumulate": 2}
    torch.manual_seed(5)
    ref = Trainer(Net(0.0), _noisy_loss, loader(), out_dir=tmp_path / "ref", **{**OPTS, **kw})
    ref.fit()
    box: list = [None]
    torch.manual_seed(5)
    first = Trainer(
        Net(0.0),
        _interrupt_at(_noisy_loss, box, 8),
        loader(),
        out_dir=tmp_path / "r",
        **{**OPTS, **kw},
    )
    box[0] = first
    with pytest.raises(Interrupt):
        first.fit()
    ck = load_checkpoint(tmp_path / "r")
    # 6 steps x 2 micro-batches of 4 over 10 loader batches per epoch: epoch 1, 2 used
    assert ck.config["data_position"] == {"epoch": 1, "items_consumed": 2}
    torch.manual_seed(1)
    second = Trainer(Net(0.0), _noisy_loss, loader(), out_dir=tmp_path / "r", **{**OPTS, **kw})
    second.fit(resume=True)
    _assert_same(second, ref)


def test_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    seen: list[int] = []

    def recording(model: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
        seen.append(batch[0].shape[0])
        return _mse(model, batch, g)

    runs = []
    for k, fn in ((1, _mse), (4, recording)):
        torch.manual_seed(0)
        tr = Trainer(
            Net(0.0),
            fn,
            _data(),
            out_dir=tmp_path / f"acc{k}",
            max_steps=3,
            batch_size=8,
            accumulate=k,
            optimizer=lambda ps: torch.optim.SGD(ps, lr=0.5),
            lr_schedule="constant",
            ema_decay=None,
            grad_clip=None,
            quiet=True,
        )
        tr.fit()
        runs.append(tr)
    assert seen == [2] * 12
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(_first_weight(runs[0]), Net(0.0).state_dict()["body.0.weight"])


@pytest.mark.parametrize("clip", [0.05, None])
def test_clipping_caps_the_update_norm(tmp_path: Path, clip: float | None) -> None:
    torch.manual_seed(0)
    model = Net(0.0)
    before = [p.detach().clone() for p in model.parameters()]

    def big(model: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
        return 100.0 * _mse(model, batch, g)

    tr = Trainer(
        model,
        big,
        _data(),
        out_dir=tmp_path,
        max_steps=1,
        batch_size=8,
        grad_clip=clip,
        optimizer=lambda ps: torch.optim.SGD(ps, lr=1.0),
        lr_schedule="constant",
        ema_decay=None,
        quiet=True,
        log_every=1,
    )
    result = tr.fit()
    moved = [(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)]
    step = torch.cat(moved).norm()
    if clip is None:
        assert float(step) > 1.0  # the raw gradient is large
    else:
        assert float(step) == pytest.approx(clip, rel=1e-4)
        assert result.metrics["grad_norm"] > 10 * clip  # the norm before clipping is logged


def test_core_loss_plugs_in(tmp_path: Path) -> None:
    path = VPCosine()

    class Eps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
            out: torch.Tensor = self.lin(torch.cat([x, t.reshape(-1, 1)], dim=-1))
            return out

    x = torch.randn(32, 2)
    tr = Trainer(
        Eps(),
        lambda m, b, g: dsm_loss(m, b, path=path, generator=g),
        x,
        out_dir=tmp_path,
        max_steps=4,
        batch_size=8,
        quiet=True,
    )
    result = tr.fit()
    assert result.step == 4
    assert result.loss is not None
    assert result.loss > 0


def test_progress_bar_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for quiet in (True, False):
        torch.manual_seed(0)
        Trainer(
            Net(),
            _mse,
            _data(),
            out_dir=tmp_path / str(quiet),
            max_steps=2,
            batch_size=8,
            quiet=quiet,
        ).fit()
        out = capsys.readouterr()
        text = out.out + out.err
        if quiet:
            assert text == ""
        else:
            assert "steps/s" in text
            assert "loss" in text


def test_metrics_csv_columns(tmp_path: Path) -> None:
    Trainer(
        Net(),
        _mse,
        _data(),
        out_dir=tmp_path,
        max_steps=4,
        batch_size=8,
        log_every=2,
        quiet=True,
        warmup_steps=2,
        lr=1e-2,
    ).fit()
    with open(tmp_path / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert {"loss", "lr", "steps_per_s", "grad_norm", "ema_decay"} <= set(rows[0])
    assert float(rows[0]["lr"]) == pytest.approx(1e-2)  # step 2 ran at the end of warmup


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"batch_size": None}, "batch_size"),
        ({"batch_size": 6, "accumulate": 4}, "batch_size"),
        ({"batch_size": 80}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"max_steps": 0}, "max_steps"),
        ({"warmup_steps": 50}, "warmup_steps"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"ema_warmup": "fast"}, "ema_warmup"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"accumulate": 0}, "accumulate"),
        ({"device": "nonsense"}, "device"),
        ({"quiet": "yes"}, "quiet"),
        ({"learning_rate": 1.0}, "learning_rate"),
    ],
)
def test_bad_options_raise_input_error(tmp_path: Path, kw: dict, name: str) -> None:
    opts = {"max_steps": 4, "batch_size": 8, **kw}
    with pytest.raises(InputError, match=name):
        Trainer(Net(), _mse, _data(), out_dir=tmp_path, **opts)


def test_bad_inputs_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model"):
        Trainer("net", _mse, _data(), out_dir=tmp_path, max_steps=1, batch_size=8)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="loss_fn"):
        Trainer(Net(), 3, _data(), out_dir=tmp_path, max_steps=1, batch_size=8)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="data"):
        Trainer(Net(), _mse, 42, out_dir=tmp_path, max_steps=1, batch_size=8)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_steps"):
        Trainer(Net(), _mse, _data(), out_dir=tmp_path)
    with pytest.raises(InputError, match="config"):
        Trainer(Net(), _mse, _data(), {"max_steps": 1}, out_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="optimizer"):
        Trainer(
            Net(),
            _mse,
            _data(),
            out_dir=tmp_path,
            max_steps=1,
            batch_size=8,
            optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
        )
    vec = Trainer(
        Net(),
        lambda m, b, g: (m(b[0]) - b[1]) ** 2,
        _data(),
        out_dir=tmp_path / "v",
        max_steps=1,
        batch_size=8,
        quiet=True,
    )
    with pytest.raises(InputError, match="loss_fn: expected a scalar"):
        vec.fit()
    with pytest.raises(InputError, match="checkpoint"):
        Trainer(
            Net(), _mse, _data(), out_dir=tmp_path / "w", max_steps=1, batch_size=8, quiet=True
        ).fit(resume=tmp_path / "missing")


def test_existing_run_is_not_overwritten_and_resume_checks_batch(tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=2, batch_size=8, quiet=True)
    Trainer(Net(), _mse, _data(), cfg, out_dir=tmp_path).fit()
    before = (tmp_path / "step_00000002" / "model.safetensors").read_bytes()
    with pytest.raises(InputError, match="out_dir"):
        Trainer(Net(), _mse, _data(), cfg, out_dir=tmp_path).fit()
    with pytest.raises(InputError, match="batch_size"):
        Trainer(Net(), _mse, _data(), cfg, out_dir=tmp_path, batch_size=4).fit(resume=True)
    with pytest.raises(InputError, match="accumulate"):
        Trainer(Net(), _mse, _data(), cfg, out_dir=tmp_path, accumulate=2).fit(resume=True)
    assert (tmp_path / "step_00000002" / "model.safetensors").read_bytes() == before
    # extending a finished run continues it
    longer = Trainer(Net(), _mse, _data(), cfg, out_dir=tmp_path, max_steps=3)
    assert longer.fit(resume=True).step == 3
    assert load_checkpoint(tmp_path).config["model_config"] == {"width": 16, "dropout": 0.2}


def test_cpu_runs_float32_and_compile_flag_wraps_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[nn.Module] = []

    def fake_compile(module: nn.Module) -> nn.Module:
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    seen: list[tuple[bool, torch.dtype]] = []

    def probe(model: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
        out = model(batch[0])
        seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        loss: torch.Tensor = ((out - batch[1]) ** 2).mean()
        return loss

    net = Net()
    tr = Trainer(
        net,
        probe,
        _data(),
        out_dir=tmp_path,
        max_steps=2,
        batch_size=8,
        quiet=True,
        device="cpu",
        mixed_precision=True,
        compile=True,
    )
    assert compiled == [net]
    tr.fit()
    assert seen == [(False, torch.float32)] * 2


def test_worker_processes_read_the_same_batches(tmp_path: Path) -> None:
    runs = []
    for workers in (0, 1):
        torch.manual_seed(0)
        tr = Trainer(
            Net(0.0),
            _mse,
            _data(),
            out_dir=tmp_path / str(workers),
            max_steps=6,
            batch_size=8,
            num_workers=workers,
            quiet=True,
            ema_decay=None,
        )
        tr.fit()
        runs.append(tr)
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_tensorboard_requested_but_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    tr = Trainer(
        Net(),
        _mse,
        _data(),
        out_dir=tmp_path,
        max_steps=1,
        batch_size=8,
        quiet=True,
        tensorboard=True,
    )
    with pytest.raises(InputError, match="tensorboard"):
        tr.fit()


def test_fit_reports_every_step_to_a_progress_callback_instead_of_the_bar(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    data = torch.utils.data.TensorDataset(torch.randn(16, 2), torch.randn(16, 1))

    def loss_fn(m, batch, generator):
        x, y = batch
        return ((m(x) - y) ** 2).mean()

    seen: list[tuple[int, float, float]] = []
    trainer = Trainer(model, loss_fn, data, out_dir=tmp_path / "run", max_steps=5, batch_size=4)
    result = trainer.fit(progress=lambda step, loss, rate: seen.append((step, loss, rate)))
    assert [s for s, _, _ in seen] == [1, 2, 3, 4, 5]
    assert seen[-1][1] == pytest.approx(result.loss)
    again = Trainer(model, loss_fn, data, out_dir=tmp_path / "run", max_steps=5, batch_size=4)
    with pytest.raises(InputError, match=r"--resume on the command line, resume=True in Python"):
        again.fit()


def _nan_from(step: int, trainer_ref: list) -> Any:
    """``_mse``, but NaN from optimizer step ``step`` (1-based) on."""

    def loss(model: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
        out = _mse(model, batch, g)
        return out * torch.nan if trainer_ref[0].step + 1 >= step else out

    return loss


@pytest.mark.parametrize("log_every", [1, 5])
def test_a_nan_loss_stops_training_and_names_the_step_and_last_checkpoint(
    tmp_path: Path, log_every: int
) -> None:
    ref: list = []
    tr = _fresh(tmp_path / "run", _nan_from(8, ref), 0, log_every=log_every, grad_clip=None)
    ref.append(tr)
    with pytest.raises(NonFiniteError, match=r"not finite \(NaN or inf\) at step 8;") as err:
        tr.fit()
    assert "step_00000006" in str(err.value).split("last finite checkpoint is")[1]
    # nothing from the broken steps was saved: the newest checkpoint is still step 6's, finite
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.step == 6
    assert all(torch.isfinite(v).all() for t in ckpt.tensors.values() for v in t.values())
    logged = (tmp_path / "run" / "metrics.csv").read_text()
    assert "nan" not in logged.lower()


def test_a_nan_before_any_checkpoint_says_so(tmp_path: Path) -> None:
    ref: list = []
    tr = _fresh(tmp_path / "run", _nan_from(2, ref), 0)
    ref.append(tr)
    with pytest.raises(NonFiniteError, match=r"at step 2; .* no checkpoint was written"):
        tr.fit()
