"""The two ArtifactGen models: shapes, conditional sampling, presets, model files, training and
exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.export import load_model, save_model
from polyfold.eeg.data import Windows
from polyfold.eeg.diffusion import PRESETS, DiffusionConfig, EEGDiffusion
from polyfold.eeg.generate import load_synthesizer, synthesize
from polyfold.eeg.train import fit_model
from polyfold.eeg.unet1d import UNet1d
from polyfold.eeg.wgan import Critic, WGANConfig, WGANGenerator

TINY_WGAN = {"z_dim": 8, "width": 16, "critic_width": 8, "n_up": 2, "batch_size": 4}
TINY_DDPM = {"base": 8, "mults": [1, 2], "emb": 16, "batch_size": 4, "sample_steps": 3}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


def tiny_windows(n_times: int = 50, per: int = 2) -> Windows:
    """Random labelled windows: 3 subjects, every class ``per`` times each."""
    rng = np.random.default_rng(0)
    y = np.tile(np.repeat(np.arange(5), per), 3)
    subject = np.repeat(np.arange(3), 5 * per)
    x = rng.normal(0, 20, (len(y), 8, n_times)) + 30 * y[:, None, None]
    return Windows(x.astype(np.float32), y, subject)


@pytest.mark.parametrize("n_times", [50, 250, 500])
def test_wgan_shapes(n_times: int) -> None:
    cfg = WGANConfig(n_times=n_times, **TINY_WGAN)
    gen, critic = WGANGenerator(cfg), Critic(cfg)
    y = torch.tensor([0, 4, 2])
    x = gen(torch.randn(3, cfg.z_dim), y)
    assert x.shape == (3, 8, n_times)
    assert critic(x, y).shape == (3,)


def test_wgan_noise_inputs_vary_windows_of_one_latent() -> None:
    cfg = WGANConfig(n_times=50, **TINY_WGAN)
    gen = WGANGenerator(cfg)
    z, y = torch.randn(1, cfg.z_dim).expand(2, -1), torch.tensor([1, 1])
    a = gen(z, y, torch.Generator().manual_seed(0))
    assert not torch.allclose(a[0], a[1])  # same latent, different injected noise
    assert torch.equal(a, gen(z, y, torch.Generator().manual_seed(0)))  # seeded: reproducible
    quiet = WGANGenerator(WGANConfig(n_times=50, noise=False, **TINY_WGAN))
    b = quiet(z, y)
    torch.testing.assert_close(b[0], b[1])


def test_wgan_critic_projection_depends_on_class() -> None:
    cfg = WGANConfig(n_times=50, **TINY_WGAN)
    critic = Critic(cfg)
    x = torch.randn(1, 8, 50).expand(2, -1, -1)
    s = critic(x, torch.tensor([0, 1]))
    assert not torch.isclose(s[0], s[1])


@pytest.mark.parametrize(("layers", "reach"), [(4, 61), (6, 253)])
def test_wgan_critic_receptive_field(layers: int, reach: int) -> None:
    """A deepest critic feature sees ``reach`` samples: at position 0, centred on sample 0, the
    window's first ``(reach + 1) // 2``."""
    critic = Critic(WGANConfig(n_times=300, critic_width=4, critic_layers=layers))
    x = torch.randn(1, 8, 300, requires_grad=True)
    h = x
    for conv in critic.convs:
        h = torch.nn.functional.leaky_relu(conv(h), 0.2)
    h[0, :, 0].sum().backward()
    assert x.grad is not None
    seen = (x.grad[0].abs().sum(0) > 0).nonzero().max().item() + 1
    assert seen == (reach + 1) // 2
    with pytest.raises(InputError, match="critic_layers"):
        WGANConfig(critic_layers=0)


@pytest.mark.parametrize("n_times", [37, 250, 500])
def test_unet_keeps_shape_for_any_length(n_times: int) -> None:
    net = UNet1d(8, 5, base=8, mults=(1, 2, 2), emb=16)
    x = torch.randn(2, 8, n_times)
    out = net(x, torch.tensor([0.3, 0.9]), torch.tensor([1, 5]))  # 5: the null label
    assert out.shape == x.shape


def test_presets_match_paper_and_config() -> None:
    paper = EEGDiffusion(DiffusionConfig.from_preset("paper", **TINY_DDPM))
    config = EEGDiffusion(DiffusionConfig.from_preset("config", **TINY_DDPM))
    assert paper.path.kind == "linear"
    assert paper.config.prediction == "eps"
    assert config.path.kind == "squaredcos_cap_v2"
    assert config.config.prediction == "v"
    for p in PRESETS.values():
        assert (p["sampler"], p["sample_steps"], p["guidance"]) == ("ddim", 50, 3.5)
    with pytest.raises(InputError, match="preset: expected one of paper, config"):
        DiffusionConfig.from_preset("nope")
    with pytest.raises(InputError, match="sampler: expected one of"):
        DiffusionConfig(sampler="nope")
    with pytest.raises(InputError, match="base: expected level widths"):
        DiffusionConfig(base=12)  # 12 channels cannot take 8 norm groups


def test_diffusion_loss_and_conditional_sampling() -> None:
    model = EEGDiffusion(DiffusionConfig(n_times=40, **TINY_DDPM))
    x0, y = torch.randn(6, 8, 40), torch.tensor([0, 1, 2, 3, 4, 0])
    loss = model.loss(x0, y, torch.Generator().manual_seed(0))
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    calls: list[int] = []
    out = model.sample(
        torch.tensor([2, 2, 3]),
        generator=torch.Generator().manual_seed(1),
        sampler="dpm_solver_pp",
        steps=4,
        guidance=2.0,
        callback=lambda step, t, x, x0: calls.append(step),
    )
    assert out.shape == (3, 8, 40)
    assert torch.isfinite(out).all()
    assert len(calls) == 4


def test_null_label_dropout_uses_generator() -> None:
    model = EEGDiffusion(DiffusionConfig(n_times=40, p_uncond=0.5, **TINY_DDPM))
    seen: list[torch.Tensor] = []

    def net(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(y)
        return torch.zeros_like(x)

    model.loss(torch.randn(64, 8, 40), torch.zeros(64, dtype=torch.long), net=net)
    dropped = (seen[0] == model.null_label).float().mean()
    assert 0.3 < float(dropped) < 0.7


@pytest.mark.parametrize(
    ("cls", "cfg"),
    [
        (WGANGenerator, WGANConfig(n_times=50, **TINY_WGAN)),
        (EEGDiffusion, DiffusionConfig(n_times=50, **TINY_DDPM)),
    ],
)
def test_model_file_round_trip(tmp_path: Path, cls: type, cfg: object) -> None:
    model = cls(cfg)
    save_model(model, tmp_path / "m", config=cfg.to_dict(), card={"kind": "x"})  # type: ignore[attr-defined]
    loaded = load_model(tmp_path / "m").model
    assert type(loaded) is cls
    y = torch.tensor([1, 3])
    a = model.eval().sample(y, generator=torch.Generator().manual_seed(0))
    b = loaded.sample(y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    w = tiny_windows()
    out = {}
    for kind, cfg in (
        ("wgan", WGANConfig(n_times=50, steps=3, **TINY_WGAN)),
        ("ddpm", DiffusionConfig(n_times=50, steps=3, **TINY_DDPM)),
    ):
        folder = tmp_path_factory.mktemp(kind)
        fit_model(kind, w, folder, config=cfg, test_subjects=[9], data_card="test")
        out[kind] = folder
    return out


@pytest.mark.parametrize("kind", ["wgan", "ddpm"])
def test_generation_returns_asked_classes_in_microvolts(
    trained: dict[str, Path], kind: str
) -> None:
    synth = load_synthesizer(trained[kind] / "model")
    assert synth.kind == kind
    assert synth.card["test_subjects"] == [9]
    assert synth.card["preprocessing"]["kind"] == "per-channel spectral whitening"
    w = synthesize(synth, ["musc", "shiv"], 3, seed=2, batch=4)
    assert w.x.shape == (6, 8, 50)
    assert w.counts() == {"eyem": 0, "musc": 3, "elec": 0, "chew": 0, "shiv": 3}
    # back in microvolts: the training data's scale (about 20 uV around class offsets)
    assert 1.0 < float(np.abs(w.x).mean()) < 1000.0
    again = synthesize(synth, ["musc", "shiv"], 3, seed=2, batch=4)
    assert np.array_equal(w.x, again.x)
    with pytest.raises(InputError, match="unknown class 'blink'"):
        synthesize(synth, ["blink"], 3)
    with pytest.raises(InputError, match="n: expected an integer >= 1"):
        synthesize(synth, ["musc"], 0)


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no model file"):
        load_synthesizer(tmp_path / "nothing")


@pytest.mark.parametrize("kind", ["wgan", "ddpm"])
def test_resume_continues_the_run_exactly(tmp_path: Path, kind: str) -> None:
    import shutil

    w = tiny_windows()
    cfg: object = (
        WGANConfig(n_times=50, steps=4, **TINY_WGAN)
        if kind == "wgan"
        else DiffusionConfig(n_times=50, steps=4, **TINY_DDPM)
    )
    fit_model(kind, w, tmp_path / "a", config=cfg, checkpoint_every=2)
    # an interrupted copy of the run: its last checkpoint and model file never written
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "run" / "step_00000004")
    for f in (tmp_path / "b").glob("model.*"):
        f.unlink()
    fit_model(kind, w, tmp_path / "b", config=cfg, checkpoint_every=2, resume=True)
    a = load_model(tmp_path / "a" / "model").model.state_dict()
    b = load_model(tmp_path / "b" / "model").model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(InputError, match="already holds checkpoints"):
        fit_model(kind, w, tmp_path / "a", config=cfg)
