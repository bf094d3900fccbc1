"""Helper for test_train_checkpoint.py: a run SIGKILLed halfway through writing a checkpoint.

    python train_kill_script.py OUT

checkpoints every 2 steps; while writing the second file of the step-4 checkpoint it writes half
of the bytes and kills its own process (no Python cleanup runs, as with a power cut or OOM kill).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from polyfold.core.train import Trainer
from polyfold.core.train import checkpoint as ckpt_mod


def trainer(out: str) -> Trainer:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(32, 3, generator=g)
    torch.manual_seed(4)
    return Trainer(
        nn.Linear(3, 3),
        lambda m, b, g: ((m(b[0]) - b[0].flip(-1)) ** 2).mean(),
        TensorDataset(x),
        out_dir=out,
        max_steps=6,
        batch_size=8,
        checkpoint_every=2,
        quiet=True,
        device="cpu",
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    t = trainer(sys.argv[1])
    real = ckpt_mod._write_fully
    calls = {"n": 0}

    def dying(fh: Any, data: bytes) -> None:
        calls["n"] += 1
        if t.step == 4 and calls["n"] == 5 + 2:  # 5 writes per checkpoint; step 4, 2nd file
            real(fh, data[: len(data) // 2])
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real(fh, data)

    ckpt_mod._write_fully = dying
    t.fit()
