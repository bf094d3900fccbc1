"""Progress display, sampler/Trainer adapters and the resume line."""

import io

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.progress import (
    Progress,
    check_steps_left,
    checkpoint_step,
    prepare_training_out,
    resuming_line,
)


def fake_sampler(x, steps, callback=None):
    """A stand-in for a core sampler: calls ``callback(step, t, x, x0)`` once per step."""
    for k in range(steps):
        x = x * 0.5
        if callback is not None:
            callback(k, 1 - (k + 1) / steps, x, x)
    return x


def test_plain_lines_every_tenth_when_not_a_terminal():
    stream = io.StringIO()
    with Progress(20, "sample", stream=stream) as bar:
        fake_sampler(torch.ones(2), 20, callback=bar.step_callback())
    lines = stream.getvalue().splitlines()
    assert lines[0] == "sample: 0/20 (0%)"
    assert lines[-1] == "sample: 20/20 (100%)"
    assert len(lines) == 11  # 0, 2, 4, ..., 20
    assert bar.completed == 20


def test_plain_lines_also_come_on_time_when_work_is_slow(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("polyfold.core.progress.time.monotonic", lambda: clock[0])
    stream = io.StringIO()
    with Progress(1000, "augment", stream=stream, interval=30.0) as bar:
        for _ in range(5):  # five slow units, far from a tenth of the work
            clock[0] += 31.0
            bar.advance()
        bar.advance()  # a quick one: not due yet
    lines = stream.getvalue().splitlines()
    assert lines == ["augment: 0/1000 (0%)"] + [f"augment: {k}/1000 (0%)" for k in range(1, 6)]


def test_quiet_prints_nothing_and_counts_still():
    stream = io.StringIO()
    with Progress(5, "sample", quiet=True, stream=stream) as bar:
        fake_sampler(torch.ones(1), 5, callback=bar.step_callback())
    assert stream.getvalue() == ""
    assert bar.completed == 5


def test_trainer_update_shows_loss_and_clips():
    stream = io.StringIO()
    with Progress(4, "train", stream=stream) as bar:
        bar.trainer_update(2, 0.25, 10.0)
        bar.trainer_update(9, float("nan"), 10.0)
    out = stream.getvalue().splitlines()
    assert "train: 2/4 (50%)  loss 0.25" in out
    assert out[-1].startswith("train: 4/4 (100%)")


def test_rich_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    with Progress(3, "forecast", stream=stream) as bar:
        bar.advance(3)
    assert "forecast" in stream.getvalue()


def test_total_must_be_positive():
    with pytest.raises(InputError, match="total"):
        Progress(0, "x")


def test_checkpoint_step_and_resuming_line(tmp_path):
    from polyfold.core.train import Trainer

    assert checkpoint_step(tmp_path / "none") is None
    data = torch.randn(16, 2)
    model = torch.nn.Linear(2, 2)
    trainer = Trainer(
        model,
        lambda m, b, g: (m(b) ** 2).mean(),
        data,
        out_dir=tmp_path,
        max_steps=3,
        batch_size=4,
        quiet=True,
        tensorboard=False,
        device="cpu",
    )
    trainer.fit()
    assert checkpoint_step(tmp_path) == 3
    assert resuming_line(3, 10, "runs/x") == "resuming from step 3 of 10 (runs/x)"
    assert resuming_line(3) == "resuming from step 3"


def test_resume_without_a_checkpoint_says_whether_the_run_folder_exists(tmp_path):
    with pytest.raises(InputError, match=r"holds no checkpoint to continue \(no "):
        prepare_training_out(tmp_path / "fresh", resume=True)
    (tmp_path / "killed" / "run").mkdir(parents=True)  # killed before its first checkpoint
    with pytest.raises(InputError, match="none saved yet in"):
        prepare_training_out(tmp_path / "killed", resume=True)


def test_check_steps_left_refuses_a_finished_run_and_names_the_steps():
    check_steps_left("runs/a", 3, 4)
    with pytest.raises(InputError, match=r"runs/a already reached step 4 of 4; pass a larger"):
        check_steps_left("runs/a", 4, 4)


def test_a_resumed_bar_starts_at_the_units_done():
    stream = io.StringIO()
    with Progress(4, "train", stream=stream, done=4):
        pass
    assert stream.getvalue().splitlines()[0].startswith("train: 4/4")
