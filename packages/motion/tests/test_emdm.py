import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.losses import wgan_gp_critic_loss
from polyfold.motion.dataset import DatasetConfig, build_dataset
from polyfold.motion.denoiser import MotionCritic, MotionDenoiser
from polyfold.motion.emdm import (
    TrainSettings,
    _emdm_loss,
    _EMDMPair,
    drop_captions,
    load_motion_model,
    motion_path,
    posterior_step,
    train_motion_model,
)
from polyfold.motion.generate import frames_for, generate_motion, write_motions


def test_posterior_step_reproduces_the_forward_marginal():
    # x_t ~ q(x_t | x0), then x_s ~ q(x_s | x_t, x0) must be distributed as q(x_s | x0)
    path, n = motion_path(), 200_000
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((n, 1), 0.7)
    s, t = 0.25, torch.full((n,), 0.5)
    x_t = path.alpha(0.5).float() * x0 + path.sigma(0.5).float() * torch.randn(n, 1, generator=g)
    x_s = posterior_step(path, x_t, x0, s, t, torch.randn(n, 1, generator=g))
    assert float(x_s.mean()) == pytest.approx(0.7 * float(path.alpha(s)), abs=5e-3)
    assert float(x_s.std()) == pytest.approx(float(path.sigma(s)), abs=5e-3)
    # the last step (s = 0) lands on the predicted x0 exactly
    last = posterior_step(path, x_t[:5], x0[:5], 0.0, t[:5], torch.randn(5, 1, generator=g))
    torch.testing.assert_close(last, x0[:5])


def test_denoiser_and_critic_shapes_and_errors():
    net = MotionDenoiser(feature_dim=10, text_dim=6, width=16, layers=1, heads=2, z_dim=3)
    x, c, t = torch.randn(2, 12, 10), torch.randn(2, 6), torch.rand(2)
    assert net(x, t, c, torch.randn(2, 3)).shape == (2, 12, 10)
    assert net(torch.randn(2, 7, 10), t, c).shape == (2, 7, 10)  # any length
    with pytest.raises(InputError, match="cond: expected"):
        net(x, t, torch.randn(2, 5))
    with pytest.raises(InputError, match="x_t: expected"):
        net(torch.randn(2, 12, 9), t, c)
    critic = MotionCritic(feature_dim=10, text_dim=6, width=8)
    assert critic(x, (x, t, c)).shape == (2,)
    loss, parts = wgan_gp_critic_loss(critic, x, torch.randn(2, 12, 10), (x, t, c))
    assert torch.isfinite(loss)
    assert parts["gradient_penalty"] >= 0


@pytest.fixture(scope="module")
def tiny():
    cfg = DatasetConfig(length=16, train_windows_per_clip=1, test_windows_per_clip=1,
                        train_then=2, test_then=2)  # fmt: skip
    data = build_dataset(cfg)
    text = np.random.default_rng(0).normal(size=(len(data), 384)).astype(np.float32)
    return data, text


@pytest.mark.parametrize(("kind", "calls"), [("emdm", 4), ("ddpm", 50)])
def test_train_save_load_sample(tiny, tmp_path, kind, calls):
    data, text = tiny
    train_motion_model(kind, data, text, tmp_path, TrainSettings(steps=3, batch_size=4),
                       width=16, layers=1, quiet=True)  # fmt: skip
    model = load_motion_model(tmp_path / "model")
    assert model.kind == kind
    assert model.card["sample_steps"] == calls
    n_calls = []
    model.net.register_forward_hook(lambda *a: n_calls.append(1))
    out = model.sample(text[:3], 16, seed=1)
    assert out.shape == (3, 16, data.features.shape[-1])
    assert np.isfinite(out).all()
    assert len(n_calls) == calls  # EMDM: 4 network calls; the DDPM baseline: 50
    np.testing.assert_array_equal(out, model.sample(text[:3], 16, seed=1))  # seeded


def test_emdm_guidance_zero_ignores_the_caption(tiny, tmp_path):
    data, text = tiny
    settings = TrainSettings(steps=2, batch_size=4, p_uncond=0.5, guidance=3.0)
    train_motion_model("emdm", data, text, tmp_path, settings, width=16, layers=1, quiet=True)
    model = load_motion_model(tmp_path / "model")
    assert model.card["guidance"] == 3.0
    a = model.sample(text[:2], 8, seed=3, guidance=0.0)  # unconditional only
    b = model.sample(text[2:4], 8, seed=3, guidance=0.0)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(model.sample(text[:2], 8, seed=3), model.sample(text[2:4], 8, seed=3))


def test_emdm_geometric_terms_are_logged_and_change_training(tiny, tmp_path):
    data, text = tiny
    plain = TrainSettings(steps=2, batch_size=4)
    geo = TrainSettings(steps=2, batch_size=4, geo_weight=1.0, foot_weight=1.0)
    train_motion_model("emdm", data, text, tmp_path / "a", plain, width=16, layers=1, quiet=True)
    train_motion_model("emdm", data, text, tmp_path / "b", geo, width=16, layers=1, quiet=True)
    a, b = load_motion_model(tmp_path / "a" / "model"), load_motion_model(tmp_path / "b" / "model")
    assert "joint_m" not in a.card["final_parts"]
    assert {"joint_m", "foot"} <= set(b.card["final_parts"])
    assert b.card["train"]["geo_weight"] == 1.0
    assert not torch.equal(a.net.out.weight, b.net.out.weight)


def test_train_rejects_unknown_kind(tiny, tmp_path):
    with pytest.raises(InputError, match="--model: expected one of emdm, ddpm"):
        train_motion_model("gan", *tiny, tmp_path)


def test_generate_checks_and_writes(tiny, tmp_path):
    data, text = tiny
    train_motion_model("emdm", data, text, tmp_path / "m", TrainSettings(steps=2, batch_size=4),
                       width=16, layers=1, quiet=True)  # fmt: skip
    for bad in (0, -1.0, float("nan"), 1000):
        with pytest.raises(InputError, match="--seconds"):
            frames_for(bad)
    with pytest.raises(InputError, match="caption 0: expected non-empty text"):
        generate_motion(["  "], 1.0, model=tmp_path / "m" / "model")
    feats = generate_motion(["a person walks"], 1.0, model=tmp_path / "m" / "model")
    assert feats.shape == (1, 20, data.features.shape[-1])
    (tmp_path / "out").mkdir()
    paths = write_motions(tmp_path / "out", ["a person walks"], feats)
    assert {p.name for p in paths} == {"00_a_person_walks.npy", "00_a_person_walks.bvh",
                                       "preview.svg", "preview.gif"}  # fmt: skip
    assert np.load(tmp_path / "out" / "00_a_person_walks.npy").shape == (20, 15, 3)


def _cli(monkeypatch, capsys, *args):
    from polyfold.motion.cli import main

    monkeypatch.setattr("sys.argv", ["polyfold-motion", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def test_cli_generate_with_the_shipped_emdm(monkeypatch, capsys, tmp_path):
    out = str(tmp_path / "g")
    code, text = _cli(monkeypatch, capsys, "generate", "a person walks", "--seconds", "0",
                      "--out", out)  # fmt: skip
    assert code == 2
    assert "--seconds: expected a positive number" in text
    code, text = _cli(monkeypatch, capsys, "generate", " ", "--out", out)
    assert code == 2
    assert "caption 0: expected non-empty text" in text
    code, text = _cli(monkeypatch, capsys, "generate", "a person cartwheels then walks",
                      "--seconds", "1.5", "--out", out)  # fmt: skip
    assert code == 0, text
    assert np.load(tmp_path / "g" / "00_a_person_cartwheels_then_walks.npy").shape == (30, 15, 3)
    assert (tmp_path / "g" / "preview.gif").is_file()


def test_drop_captions_rate_and_errors():
    g = torch.Generator().manual_seed(0)
    text = torch.randn(4000, 6) + 3.0
    assert drop_captions(text, 0.0, g) is text  # p = 0 draws nothing
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())
    out = drop_captions(text, 0.25, g)
    dropped = (out == 0).all(dim=1)
    assert float(dropped.float().mean()) == pytest.approx(0.25, abs=0.03)
    torch.testing.assert_close(out[~dropped], text[~dropped])  # kept rows unchanged
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(InputError, match="p_uncond: expected a number in"):
            drop_captions(text, bad, g)


@pytest.mark.parametrize("kind", ["emdm", "ddpm"])
def test_caption_dropout_trains_the_null_caption_branch(tiny, tmp_path, kind):
    data, text = tiny
    seen: list[torch.Tensor] = []

    def record(_module, args, _out):
        seen.append(args[2].detach().clone())

    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, a, o: record(m, a, o) if isinstance(m, MotionDenoiser) else None
    )
    try:
        for p, sub in ((0.0, "plain"), (0.5, "cfg")):
            seen.clear()
            settings = TrainSettings(steps=4, batch_size=8, p_uncond=p, guidance=2.5)
            train_motion_model(kind, data, text, tmp_path / sub, settings, width=16, layers=1,
                               quiet=True)  # fmt: skip
            null_rows = int(sum(int((c == 0).all(dim=1).sum()) for c in seen))
            assert (null_rows > 0) == (p > 0)  # the network saw the null caption only with p > 0
    finally:
        hook.remove()
    assert load_motion_model(tmp_path / "cfg" / "model").card["train"]["p_uncond"] == 0.5
    with pytest.raises(InputError, match="p_uncond"):
        train_motion_model(kind, data, text, tmp_path / "bad", TrainSettings(steps=1, p_uncond=1.0))


def test_ddpm_guidance_one_is_the_conditional_sampler_and_zero_ignores_the_caption(tiny, tmp_path):
    from polyfold.core.denoiser import as_denoiser
    from polyfold.core.samplers import get_sampler, uniform_t_grid

    data, text = tiny
    settings = TrainSettings(steps=3, batch_size=4, p_uncond=0.5, guidance=2.5)
    train_motion_model("ddpm", data, text, tmp_path, settings, width=16, layers=1, quiet=True)
    model = load_motion_model(tmp_path / "model")
    assert model.card["guidance"] == 2.5
    # guidance 1: exactly core's ddpm sampler on the plain conditional network
    c = torch.from_numpy(text[:2])
    g = torch.Generator().manual_seed(5)
    path = motion_path()
    x = path.prior_sample((2, 8, data.features.shape[-1]), generator=g)
    den = as_denoiser(model.net, path, prediction="x0", cond=c)
    ref = get_sampler("ddpm", kind="gaussian")(
        den, path, x, uniform_t_grid(path, 50, append_zero=True), generator=g
    ).x
    ref = ref.detach().numpy().astype(np.float64) * model.std + model.mean
    np.testing.assert_allclose(
        model.sample(text[:2], 8, seed=5, guidance=1.0), ref, rtol=1e-5, atol=1e-5
    )
    # guidance 0: the null-caption model alone, the same for any caption
    a = model.sample(text[:2], 8, seed=3, guidance=0.0)
    np.testing.assert_allclose(a, model.sample(text[2:4], 8, seed=3, guidance=0.0), atol=1e-5)
    # the card's 2.5 differs from both, still one (2B-batched) network call per step
    calls: list[int] = []
    model.net.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    guided = model.sample(text[:2], 8, seed=5)
    assert calls == [4] * 50
    assert not np.allclose(guided, ref)
    with pytest.raises(InputError, match="guidance: expected a finite number"):
        model.sample(text[:2], 8, guidance=float("nan"))


def _pair_and_batch(d: int = 10, text_dim: int = 6):
    torch.manual_seed(0)
    net = MotionDenoiser(feature_dim=d, text_dim=text_dim, width=16, layers=1, heads=2, z_dim=3)
    pair = _EMDMPair(net, MotionCritic(feature_dim=d, text_dim=text_dim, width=8))
    g = torch.Generator().manual_seed(1)
    return pair, torch.randn(4, 8, d, generator=g), torch.randn(4, text_dim, generator=g)


def test_emdm_default_objective_is_ddgans_with_lazy_r1():
    s = TrainSettings()
    assert (s.gan_loss, s.r1_gamma, s.r1_every, s.adv_weight) == ("ns-r1", 0.02, 15, 0.02)
    pair, x0, text = _pair_and_batch()
    s = TrainSettings(r1_gamma=50.0, r1_every=3)
    loss = {}
    for step in (0, 1, 3):
        value, parts = _emdm_loss(pair, x0, text, torch.Generator().manual_seed(7), s, step=step)
        loss[step] = float(value.detach())
        assert {"d_real", "d_fake", "rec", "vel"} <= set(parts)
        assert ("r1" in parts) == (step % 3 == 0)  # R1 on every third step only
        if step == 0:
            r1 = parts["r1"]
    # the same draws: the R1 step adds exactly gamma / 2 * R1
    assert r1 > 0
    assert loss[0] - loss[1] == pytest.approx(25.0 * r1, rel=1e-3)
    assert loss[3] == pytest.approx(loss[0], rel=1e-6)


def test_emdm_objective_trains_both_networks_and_wgan_gp_is_an_option():
    losses = {}
    for name in ("ns-r1", "wgan-gp"):
        pair, x0, text = _pair_and_batch()
        s = TrainSettings(gan_loss=name)
        loss, parts = _emdm_loss(pair, x0, text, torch.Generator().manual_seed(7), s)
        assert ("wasserstein" in parts) == (name == "wgan-gp")
        assert ("d_fake" in parts) == (name == "ns-r1")
        loss.backward()
        for net in (pair.generator, pair.critic):
            assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
        losses[name] = float(loss.detach())
    assert losses["ns-r1"] != losses["wgan-gp"]


def test_emdm_card_records_the_objective(tiny, tmp_path):
    data, text = tiny
    settings = TrainSettings(steps=2, batch_size=4, gan_loss="wgan-gp")
    train_motion_model("emdm", data, text, tmp_path, settings, width=16, layers=1, quiet=True)
    card = load_motion_model(tmp_path / "model").card
    assert card["train"]["gan_loss"] == "wgan-gp"
    assert card["train"]["adv_weight"] == 0.02
    assert "gradient_penalty" in card["final_parts"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("gan_loss", "hinge", "gan_loss: expected one of ns-r1, wgan-gp, got 'hinge'"),
     ("r1_every", 0, "r1_every: expected an integer >= 1"),
     ("r1_gamma", -0.1, "r1_gamma: expected a finite number >= 0"),
     ("geo_weight", -1.0, "geo_weight: expected a finite number >= 0"),
     ("adv_weight", float("nan"), "adv_weight: expected a finite number >= 0"),
     ("lr", 0.0, "lr: expected a finite number > 0"),
     ("emdm_steps", 0, "emdm_steps: expected an integer >= 1")],
)  # fmt: skip
def test_train_settings_refuse_bad_values(field: str, value: float, message: str) -> None:
    with pytest.raises(InputError, match=message):
        TrainSettings(**{field: value})  # type: ignore[arg-type]


def test_cli_train_refuses_an_unknown_gan_loss_before_writing(monkeypatch, capsys, tmp_path):
    out = tmp_path / "never"
    code, text = _cli(monkeypatch, capsys, "train", "--model", "emdm", "--gan-loss", "hinge",
                      "--out", str(out))  # fmt: skip
    assert code == 2
    assert "gan_loss: expected one of ns-r1, wgan-gp, got 'hinge'" in text
    assert "Traceback" not in text
    assert not out.exists()
