"""PaD-TS: adaLN-Zero blocks, same-step batches, the population loss, sampling, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.losses import dsm_loss
from polyfold.core.paths import DiscreteDDPM
from polyfold.timeseries.metrics import cc_mmd
from polyfold.timeseries.padts import (
    AdaLNZeroBlock,
    DualChannelEncoder,
    PaDTS,
    PaDTSConfig,
    ablation,
    population_loss,
    same_step_times,
    train_padts,
)
from polyfold.timeseries.sines import sines

L, C = 12, 3


def tiny(**kw: object) -> PaDTSConfig:
    base: dict[str, object] = {
        "seq_len": L,
        "n_features": C,
        "steps": 6,
        "batch_size": 16,
        "lr": 1e-3,
        "warmup_steps": 0,
        "diffusion_steps": 20,
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 1,
        "alpha": 0.5,
    }
    base.update(kw)
    return PaDTSConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return 3.0 * sines(64, L, C, generator=5) - 1.0  # values in [0.5, 2]: a non-unit scale


@pytest.fixture(scope="module")
def trained(windows: np.ndarray) -> PaDTS:
    torch.set_num_threads(1)
    return train_padts(windows, tiny(), quiet=True)


def test_adaln_zero_block_is_the_identity_at_init() -> None:
    torch.manual_seed(0)
    block = AdaLNZeroBlock(16, 2)
    x, c = torch.randn(4, 7, 16), torch.randn(4, 16)
    assert torch.equal(block(x, c), x)
    # and not after its modulation moves off zero
    torch.nn.init.normal_(block.modulation.weight)
    assert not torch.allclose(block(x, c), x)


def test_dual_channel_encoder_shapes_and_both_channels_matter() -> None:
    torch.manual_seed(0)
    net = DualChannelEncoder(L, C, d_model=16, n_heads=2, n_encoder=1, n_layers=2)
    x, k = torch.randn(5, L, C), torch.full((5,), 7.0)
    out = net(x, k)
    assert out.shape == (5, L, C)
    by_time = net.time_channel(x, net.time_step(k))
    by_feature = net.feature_channel(x.mT, net.feature_step(k)).mT
    torch.testing.assert_close(out, by_time + by_feature)
    assert by_time.abs().sum() > 0
    assert by_feature.abs().sum() > 0


def test_same_step_times_share_one_discrete_step() -> None:
    path = DiscreteDDPM(n=50, kind="squaredcos_cap_v2")
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(30):
        t = same_step_times(8, path, generator=g)
        assert t.shape == (8,)
        assert t.dtype == torch.float64
        assert bool((t == t[0]).all())
        k = float(t[0]) * 50 - 1
        assert abs(k - round(k)) < 1e-9
        assert 0 <= round(k) < 50
        seen.add(round(k))
    assert len(seen) > 10  # the step varies between batches


def test_population_loss_is_mse_plus_alpha_cc_mmd_at_one_step() -> None:
    path = DiscreteDDPM(n=20, kind="squaredcos_cap_v2")
    x0 = torch.from_numpy(2 * sines(16, L, C, generator=1) - 1)
    times: list[torch.Tensor] = []
    preds: list[torch.Tensor] = []

    def model(x_t: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        times.append(t)
        preds.append(0.7 * x_t)
        return preds[-1]

    parts: dict[str, float] = {}
    loss = population_loss(
        model, x0, path=path, alpha=0.3, generator=torch.Generator().manual_seed(2), parts=parts
    )
    assert bool((times[0] == times[0][0]).all())  # one diffusion step for the whole batch
    mse = float(((preds[0] - x0) ** 2).mean())
    mmd = float(cc_mmd(x0, preds[0]))
    assert parts["mse"] == pytest.approx(mse, rel=1e-5)
    assert parts["mmd"] == pytest.approx(mmd, rel=1e-5)
    assert mmd > 0
    assert float(loss) == pytest.approx(mse + 0.3 * mmd, rel=1e-5)
    # alpha = 0 is core's x0 DSM loss with the same noise and step
    g = torch.Generator().manual_seed(2)
    plain = population_loss(model, x0, path=path, alpha=0.0, generator=g)
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    t = same_step_times(16, path, generator=g)
    want = dsm_loss(model, x0, path=path, prediction="x0", t=t, noise=noise)
    assert float(plain) == pytest.approx(float(want), rel=1e-6)


def test_train_sample_shapes_scale_and_determinism(trained: PaDTS, windows: np.ndarray) -> None:
    lo, hi = windows.min(axis=(0, 1)), windows.max(axis=(0, 1))
    for sampler in ("ddpm", "ddim", "dpm_solver_pp"):
        a = trained.sample(9, generator=torch.Generator().manual_seed(1), sampler=sampler, steps=5)
        b = trained.sample(9, generator=torch.Generator().manual_seed(1), sampler=sampler, steps=5)
        assert a.shape == (9, L, C)
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        # x0 predictions are clipped to the training range, then mapped back to its scale
        assert bool((a.numpy() >= lo - 1e-5).all() and (a.numpy() <= hi + 1e-5).all())


def test_save_load_round_trip_gives_identical_samples(trained: PaDTS, tmp_path: Path) -> None:
    folder = trained.save(tmp_path / "ckpt", meta={"note": "test"})
    record = json.loads((folder / "padts.json").read_text())
    assert record["config"]["alpha"] == 0.5
    assert record["card"]["meta"] == {"note": "test"}
    assert record["model_class"] == "timeseries.PaDTS"
    loaded = PaDTS.load(folder)
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    a = trained.sample(6, generator=torch.Generator().manual_seed(4), steps=8)
    b = loaded.sample(6, generator=torch.Generator().manual_seed(4), steps=8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not list(folder.glob(".tmp-*"))


def test_same_seed_same_model(windows: np.ndarray) -> None:
    cfg = tiny(steps=3)
    a = train_padts(windows, cfg, quiet=True)
    b = train_padts(windows, cfg, quiet=True)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_model": 15}, "d_model"),
        ({"alpha": -1.0}, "alpha"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 1}, "batch_size"),
        ({"sampler": "euler"}, "sampler"),
        ({"warmup_steps": 100}, "warmup_steps"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"seq_len": "24"}, "seq_len"),
    ],
)
def test_config_errors_name_the_setting(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        tiny(**kwargs)


def test_bad_windows_and_arguments(windows: np.ndarray, trained: PaDTS, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\(N, 12, 3\)"):
        train_padts(windows[:, :10], tiny())
    bad = windows.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        train_padts(bad, tiny())
    with pytest.raises(InputError, match="batch_size=16"):
        train_padts(windows[:8], tiny())
    with pytest.raises(InputError, match="steps"):
        trained.sample(2, steps=999)
    with pytest.raises(InputError, match="sampler"):
        trained.sample(2, sampler="heun")
    with pytest.raises(InputError, match=r"padts\.json"):
        PaDTS.load(tmp_path)
    card = {"format": "polyfold-model", "format_version": 1, "model_class": "timeseries.PaDTS"}
    card.update(config={"x": 1}, card={}, weights_sha256="0")
    (tmp_path / "padts.json").write_text(json.dumps(card))
    (tmp_path / "padts.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="unknown PaD-TS setting"):
        PaDTS.load(tmp_path)


def test_ablation_reports_both_runs(windows: np.ndarray) -> None:
    out = ablation(windows, tiny(steps=2), n_samples=12, sample_steps=4)
    assert [r["alpha"] for r in out["runs"]] == [0.5, 0.0]
    assert out["fdds_ratio"] == pytest.approx(out["fdds"]["padts"] / out["fdds"]["ablation"])
    with pytest.raises(InputError, match="alpha > 0"):
        ablation(windows, tiny(alpha=0.0))


def test_sample_reports_every_step_of_every_chunk(trained: PaDTS) -> None:
    seen: list[tuple[int, int]] = []
    trained.sample(
        5,
        generator=torch.Generator().manual_seed(1),
        sampler="ddim",
        steps=4,
        batch_size=3,
        callback=lambda i, t, x, x0: seen.append((i, x.shape[0])),
    )
    assert seen == [(i, 3) for i in range(4)] + [(i, 2) for i in range(4)]
