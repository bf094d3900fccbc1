"""The in-house prior-fitted network: prior tasks, in-context forward, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.train import latest_checkpoint, load_checkpoint
from polyfold.tabular import TabEBM, pfn
from polyfold.tabular.pfn import (
    PFN,
    PFNBackbone,
    PFNConfig,
    PriorTasks,
    load_pfn,
    prior_loss,
    sample_task,
    save_pfn,
    train_prior,
)

SMALL = PFNConfig(max_features=8, max_classes=4, d_model=32, n_heads=2, n_layers=2, d_ff=64)


def test_prior_tasks_have_the_asked_shape_and_every_class() -> None:
    gen = torch.Generator().manual_seed(0)
    for n, d, k in [(50, 1, 2), (80, 7, 4), (30, 12, 3)]:
        X, y = sample_task(n, d, k, gen)
        assert X.shape == (n, d)
        assert y.shape == (n,)
        assert torch.isfinite(X).all()
        assert set(y.tolist()) <= set(range(k))
    a = sample_task(40, 5, 3, torch.Generator().manual_seed(7))
    b = sample_task(40, 5, 3, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


def test_queries_attend_only_to_the_context() -> None:
    model = PFN(SMALL).eval()
    x_ctx, y_ctx = torch.randn(1, 20, 5), torch.randint(0, 3, (1, 20))
    q = torch.randn(1, 6, 5)
    with torch.no_grad():
        full = model(x_ctx, y_ctx, q)
        alone = model(x_ctx, y_ctx, q[:, 2:3])
        changed_ctx = model(x_ctx, (y_ctx + 1) % 3, q)
    assert full.shape == (1, 6, SMALL.max_classes)
    torch.testing.assert_close(full[:, 2:3], alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(full, changed_ctx)
    cache = model.context_cache(x_ctx, y_ctx)
    torch.testing.assert_close(model.query_logits(cache, q), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="at most 8"):
        model(torch.randn(1, 4, 9), torch.zeros(1, 4, dtype=torch.long), torch.randn(1, 2, 9))


def test_checkpoint_round_trip_and_tabebm_backbone(tmp_path: Path) -> None:
    model = PFN(SMALL).eval()
    weights, config = save_pfn(model, tmp_path, {"steps": 0})
    assert weights.name == "pfn.safetensors"
    assert config.is_file()
    loaded = load_pfn(weights)
    x_ctx, y_ctx, q = torch.randn(1, 10, 3), torch.randint(0, 2, (1, 10)), torch.randn(1, 4, 3)
    torch.testing.assert_close(loaded(x_ctx, y_ctx, q), model(x_ctx, y_ctx, q))
    X = torch.randn(12, 3)
    ebm = TabEBM(PFNBackbone(weights), sgld_steps=5).fit(X.numpy(), [0] * 6 + [1] * 6)
    X_syn, y_syn = ebm.sample(4, seed=0)
    assert X_syn.shape == (8, 3)
    assert y_syn.tolist() == [0] * 4 + [1] * 4


def test_missing_checkpoint_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"none\.json: missing; expected a polyfold model card"):
        load_pfn(tmp_path / "none.safetensors")


def test_a_few_training_steps_run_and_log(tmp_path: Path) -> None:
    model, log = train_prior(
        SMALL, steps=40, out_dir=tmp_path, seed=0, tasks_per_step=4, max_rows=48, log_every=20
    )
    assert [h["step"] for h in log["history"]] == [20, 40]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in log["history"])
    assert log["history"][0]["seconds"] <= log["history"][1]["seconds"] == log["seconds"]
    assert not model.training
    assert latest_checkpoint(tmp_path) is not None  # the Trainer's checkpoint of step 40


def test_train_prior_cli_refuses_to_replace_a_checkpoint(tmp_path: Path, capsys) -> None:
    from polyfold.core.cli import run_app
    from polyfold.tabular.cli import app

    (tmp_path / "pfn.safetensors").write_bytes(b"mine")
    with pytest.raises(SystemExit) as exit_:
        run_app(app, ["train-prior", "--out", str(tmp_path), "--steps", "1"])
    assert exit_.value.code == 2
    assert "pass --force" in capsys.readouterr().err
    assert (tmp_path / "pfn.safetensors").read_bytes() == b"mine"


def test_default_backbone_follows_the_shipped_checkpoint() -> None:
    from polyfold.tabular.backbones import default_backbone
    from polyfold.tabular.pfn import default_checkpoint

    expected = "pfn" if default_checkpoint() is not None else "mlp"
    assert default_backbone() == expected
    assert TabEBM().backbone.name == expected


def test_training_is_deterministic_under_a_seed(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"steps": 5, "seed": 3, "tasks_per_step": 2, "max_rows": 40}
    a, _ = train_prior(SMALL, out_dir=tmp_path / "a", **kw)
    b, _ = train_prior(SMALL, out_dir=tmp_path / "b", **kw)
    _assert_same_weights(a, b)


def _assert_same_weights(a: PFN, b: PFN) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def _dying_loss(at_call: int) -> Any:
    """prior_loss that kills the run when called for the ``at_call``-th time."""
    calls = [0]

    def loss(model: Any, batch: Any, generator: torch.Generator) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == at_call:
            raise KeyboardInterrupt
        return prior_loss(model, batch, generator)

    return loss


def test_prior_batches_depend_only_on_seed_and_step() -> None:
    data = PriorTasks(SMALL, length=10, seed=4, tasks_per_step=2, max_rows=40)
    again = PriorTasks(SMALL, length=99, seed=4, tasks_per_step=2, max_rows=40)
    for i in (7, 2):  # any order, any length
        for u, v in zip(data[i], again[i], strict=True):
            assert torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v
    assert not torch.equal(data[1][0], data[2][0])


def test_stopped_training_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kw: dict[str, Any] = {
        "steps": 6,
        "seed": 1,
        "tasks_per_step": 2,
        "max_rows": 40,
        "log_every": 1,
        "checkpoint_every": 3,
    }
    ref, ref_log = train_prior(SMALL, out_dir=tmp_path / "ref", **kw)
    run = tmp_path / "run"
    monkeypatch.setattr(pfn, "prior_loss", _dying_loss(5))  # killed in step 5
    with pytest.raises(KeyboardInterrupt):
        train_prior(SMALL, out_dir=run, **kw)
    monkeypatch.undo()
    assert load_checkpoint(run).step == 3
    with pytest.raises(InputError, match="pass resume=True"):
        train_prior(SMALL, out_dir=run, **kw)
    with pytest.raises(InputError, match=r"steps: the run in .* was started with 6"):
        train_prior(SMALL, out_dir=run, resume=True, **{**kw, "steps": 12})
    torch.manual_seed(1234)  # the global RNG moved on: resume must not depend on it
    said: list[str] = []
    model, log = train_prior(SMALL, out_dir=run, resume=True, log=said.append, **kw)
    assert said == ["resuming from step 3"]
    _assert_same_weights(model, ref)  # bit for bit
    assert [h["step"] for h in log["history"]] == [1, 2, 3, 4, 5, 6]
    assert [h["loss"] for h in log["history"]] == [h["loss"] for h in ref_log["history"]]
