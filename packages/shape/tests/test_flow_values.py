import inspect

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.shape import cli
from polyfold.shape.evaluation import msdf_pieces
from polyfold.shape.flow import FlowConfig, ShapeFlow, from_tokens, to_tokens
from polyfold.shape.generate import load_flow, sample_msdfs
from polyfold.shape.msdf import MSDF


def _msdfs(count=3, n=6, k=3):
    g = torch.Generator().manual_seed(5)
    return [
        MSDF(
            torch.rand(n, 3, generator=g) - 0.5,
            0.05 + 0.1 * torch.rand(n, generator=g),
            0.2 * torch.randn(n, k, k, k, generator=g),
        )
        for _ in range(count)
    ]


def test_asinh_values_round_trip_and_are_linear_near_the_surface():
    ms = _msdfs()
    raw = to_tokens(ms, 0.1)
    back = from_tokens(raw, 3, value_tau=0.1)
    for a, b in zip(back, ms, strict=True):
        assert torch.allclose(a.values, b.values, atol=1e-5)
    rel = ms[0].values.reshape(6, -1) / ms[0].scales[:, None]
    assert torch.allclose(raw[0, :, 4:], torch.asinh(rel / 0.1), atol=1e-5)
    small = rel.abs() < 0.01  # within a tenth of tau: token = v / (tau s) to x^2 / 6 relative
    assert small.any()
    assert torch.allclose(raw[0, :, 4:][small], (rel / 0.1)[small], rtol=2e-3, atol=1e-7)
    assert torch.allclose(to_tokens(ms)[..., 4:], torch.sinh(raw[..., 4:]) * 0.1, atol=1e-4)


def test_model_files_without_value_tau_keep_plain_values():
    cfg = FlowConfig(classes=["a"], n=6, k=3, width=8, depth=1, heads=2).to_dict()
    assert cfg["value_tau"] == 0.1
    del cfg["value_tau"]
    old = ShapeFlow.from_config(cfg)
    assert old.config.value_tau == 0.0
    old.fit_normalisation(to_tokens(_msdfs()))
    back = old.decode(old.encode(_msdfs()[:1]))[0]
    assert torch.allclose(back.values, _msdfs()[0].values, atol=1e-5)
    with pytest.raises(InputError, match="value_tau"):
        FlowConfig(value_tau=-0.1)


def test_train_defaults_match_the_shipped_recipe():
    model, card = load_flow()
    params = inspect.signature(cli.train).parameters
    assert params["grids"].default == model.config.n
    assert params["k"].default == model.config.k
    assert model.config.value_tau == FlowConfig().value_tau
    assert f"--grids {model.config.n}" in str(card["command"])


def test_shipped_model_samples_are_not_shattered():
    # the model before the fix gave 20-25 pieces per chair on these seeds
    model, _ = load_flow()
    out = msdf_pieces(sample_msdfs(model, ["chair"] * 4, seed=0), res=64)
    assert out["pieces"] <= 12
    assert out["largest_area"] >= 0.5
