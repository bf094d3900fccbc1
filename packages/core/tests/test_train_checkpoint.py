"""Checkpoints: atomic under failure, pickle-free, and a faithful round trip of nested state."""

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import safetensors
import torch
from torch import nn
from torch.utils.data import TensorDataset

from polyfold.core.errors import InputError
from polyfold.core.train import Trainer, latest_checkpoint, load_checkpoint, load_weights
from polyfold.core.train import checkpoint as ckpt_mod
from polyfold.core.train.checkpoint import join_tree, split_tree


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These are CPU tests: the trainer's default device must not pick a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 3, generator=g)
    return TensorDataset(x, x @ torch.randn(3, 2, generator=g))


def _loss(model: nn.Module, batch: tuple, g: torch.Generator) -> torch.Tensor:
    x, y = batch
    loss: torch.Tensor = ((model(x + 0.1 * torch.randn(x.shape, generator=g)) - y) ** 2).mean()
    return loss


def _trainer(out: Path, **kw: object) -> Trainer:
    torch.manual_seed(3)
    opts: dict = {
        "max_steps": 6,
        "batch_size": 4,
        "checkpoint_every": 3,
        "quiet": True,
        "lr": 1e-2,
        "log_every": 1,
    }
    opts.update(kw)
    return Trainer(nn.Linear(3, 2), _loss, _data(), out_dir=out, **opts)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_split_join_round_trip() -> None:
    tree = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}, 5: {}},
        "groups": [{"betas": (0.9, 0.99), "params": [0, 5], "foreach": None, "lr": 1e-3}],
        "__odd": "key",
    }
    tensors: dict[str, torch.Tensor] = {}
    js = split_tree(tree, "opt", tensors)
    back = join_tree(json.loads(json.dumps(js)), tensors)
    assert set(back["state"]) == {0, 5}
    assert back["groups"][0]["betas"] == (0.9, 0.99)
    assert back["__odd"] == "key"
    torch.testing.assert_close(back["state"][0]["exp_avg"], torch.ones(2))
    with pytest.raises(InputError, match="cannot store"):
        split_tree({"f": object()}, "x", {})


def test_failed_write_leaves_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    tr = _trainer(out)
    real = ckpt_mod._write_fully
    calls = {"n": 0}

    def flaky(fh: object, data: bytes) -> None:
        calls["n"] += 1
        if tr.step == 6 and calls["n"] > 6:  # second checkpoint, second file: die midway
            real(fh, data[: len(data) // 2])
            raise OSError("disk full (simulated)")
        real(fh, data)

    monkeypatch.setattr(ckpt_mod, "_write_fully", flaky)
    good: dict[str, str] = {}

    orig_save = tr.save_checkpoint

    def save_and_remember() -> Path | None:
        path = orig_save()
        if tr.step == 3:
            assert path is not None
            good.update(_digest(path))
        return path

    monkeypatch.setattr(tr, "save_checkpoint", save_and_remember)
    with pytest.raises(OSError, match="simulated"):
        tr.fit()
    assert good, "the first checkpoint was written"
    assert latest_checkpoint(out) == out / "step_00000003"
    assert not (out / "step_00000006").exists()
    assert not list(out.glob(".tmp-*")), "the failed temporary folder is cleaned up"
    assert _digest(out / "step_00000003") == good
    ck = load_checkpoint(out)
    assert ck.step == 3
    assert set(ck.tensors) == {"model", "ema", "state"}

    # a fresh trainer resumes from it and finishes like an uninterrupted run
    monkeypatch.setattr(ckpt_mod, "_write_fully", real)
    resumed = _trainer(out)
    resumed.fit(resume=True)
    ref = _trainer(tmp_path / "ref")
    ref.fit()
    for a, b in zip(resumed.model.parameters(), ref.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_crash_leftovers_are_ignored(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _trainer(out, max_steps=3).fit()
    # what a process killed mid-write leaves: a partial hidden folder and a partial pointer
    junk = out / ".tmp-step_00000006-4242"
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"\x00\x01partial")
    (out / ".tmp-latest-4242").write_text("step_0000")
    assert latest_checkpoint(out) == out / "step_00000003"
    assert load_checkpoint(out).step == 3
    # a later save cleans the leftovers
    tr = _trainer(out, max_steps=6)
    tr.fit(resume=True)
    assert not list(out.glob(".tmp-*"))
    assert latest_checkpoint(out) == out / "step_00000006"


def test_pointer_lost_falls_back_to_newest_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _trainer(out).fit()
    (out / "latest").unlink()
    assert latest_checkpoint(out) == out / "step_00000006"


def test_checkpoint_holds_no_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    tr = _trainer(out, optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-2))
    tr.fit()
    folder = out / "step_00000006"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "ema.safetensors", "model.safetensors", "state.safetensors"]
    for p in folder.iterdir():
        head = p.read_bytes()[:2]
        assert head[:1] != b"\x80", f"{p.name} looks like a pickle"
        assert head != b"PK", f"{p.name} looks like a zip (torch.save) archive"
        if p.suffix == ".safetensors":
            with safetensors.safe_open(str(p), framework="pt") as f:
                assert len(list(f.keys())) > 0
    cfg = json.loads((folder / "config.json").read_text())
    for key in (
        "model_class",
        "model_config",
        "data_card",
        "polyfold_version",
        "command",
        "hyperparameters",
        "step",
        "data_position",
        "optimizer",
        "rng",
        "ema",
    ):
        assert key in cfg
    assert cfg["model_class"] == "torch.nn.modules.linear.Linear"
    assert cfg["step"] == 6

    def no_unpickling(*a: object, **k: object) -> None:
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    again = _trainer(out, optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-2))
    again.load_checkpoint(folder)
    for a, b in zip(again.model.parameters(), tr.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    sa, sb = again.optimizer.state_dict(), tr.optimizer.state_dict()
    for i in sb["state"]:
        for k, v in sb["state"][i].items():
            torch.testing.assert_close(sa["state"][i][k], v)
    m = nn.Linear(3, 2)
    w = load_weights(out, m)
    assert tr.ema is not None
    torch.testing.assert_close(m.weight, tr.ema.shadow["weight"])
    torch.testing.assert_close(w["bias"], tr.ema.shadow["bias"])
    load_weights(out, m, ema=False)
    torch.testing.assert_close(m.weight, tr.model.weight)


def test_load_checkpoint_bad_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_keep_last_prunes_old_checkpoints(tmp_path: Path) -> None:
    _trainer(tmp_path, max_steps=5, checkpoint_every=1, keep_last=2).fit()
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000004", "step_00000005"]
    assert load_checkpoint(tmp_path).step == 5


@pytest.mark.slow
def test_process_killed_while_writing(tmp_path: Path) -> None:
    import importlib.util
    import os
    import signal
    import subprocess
    import sys

    script = Path(__file__).with_name("train_kill_script.py")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    leftovers = list(out.glob(".tmp-*"))
    assert leftovers, "the kill left a partial temporary folder behind"
    assert not (out / "step_00000004").exists()
    assert latest_checkpoint(out) == out / "step_00000002"
    assert load_checkpoint(out).step == 2

    spec = importlib.util.spec_from_file_location("train_kill_script", script)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    resumed = mod.trainer(str(out))
    assert resumed.fit(resume=True).step == 6
    assert not list(out.glob(".tmp-*"))
    ref = mod.trainer(str(tmp_path / "ref"))
    ref.fit()
    torch.testing.assert_close(resumed.model.weight, ref.model.weight)


def test_atomic_write_replaces_whole_files_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyfold.core.train import atomic_write

    target = tmp_path / "new" / "out.csv"
    assert atomic_write(target, "a,b\n1,é\n") == target  # the parent folder is created
    assert target.read_bytes() == "a,b\n1,é\n".encode()
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"

    def dying(fh: object, data: bytes) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt_mod, "_write_fully", dying)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(target, "never")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]
