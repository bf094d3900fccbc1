"""A 2-process DDP run on CPU (gloo, launched through torchrun) equals one process."""

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.train import load_checkpoint
from polyfold.core.train.distributed import detect_distributed

SCRIPT = Path(__file__).with_name("train_ddp_script.py")


def _script() -> object:
    spec = importlib.util.spec_from_file_location("train_ddp_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(SCRIPT),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 0 world 2 step 8" in proc.stdout
    assert "rank 1 world 2 step 8" in proc.stdout

    ddp = load_checkpoint(out)
    assert ddp.step == 8
    assert ddp.config["hyperparameters"]["world_size"] == 2
    with open(out / "metrics.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [2, 4, 6, 8], "rank 0 alone writes the log"

    ref = _script().run(tmp_path / "single", accumulate=2)  # type: ignore[attr-defined]
    assert ref.dist.world_size == 1
    for name, value in ref.model.state_dict().items():
        torch.testing.assert_close(ddp.tensors["model"][name], value, rtol=1e-5, atol=1e-6)
    assert ref.ema is not None
    for name, value in ref.ema.shadow.items():
        torch.testing.assert_close(ddp.tensors["ema"][name], value, rtol=1e-5, atol=1e-6)
    # the DDP checkpoint at step 4 resumes in one process (accumulate 2: same slices) to the
    # same end point
    script = _script()
    resumed = script.run(  # type: ignore[attr-defined]
        tmp_path / "resumed", accumulate=2, resume=out / "step_00000004"
    )
    assert resumed.step == 8
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(ddp.tensors["model"][name], value, rtol=1e-5, atol=1e-6)
    # and the run really trained
    assert not torch.allclose(ref.model.state_dict()["0.weight"], _script().model()[0].weight)  # type: ignore[attr-defined]


def test_detect_distributed_reads_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = detect_distributed()
    assert (info.rank, info.world_size, info.local_rank) == (3, 4, 1)
    assert info.enabled
    assert not info.is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InputError, match="RANK"):
        detect_distributed()
