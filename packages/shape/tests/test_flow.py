import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.export import load_model, save_model
from polyfold.shape.flow import FlowConfig, ShapeFlow, from_tokens, to_tokens
from polyfold.shape.msdf import MSDF


def _model(**kw):
    torch.manual_seed(0)
    cfg = FlowConfig(classes=["chair", "mug"], n=12, k=3, width=32, depth=2, heads=2, **kw)
    m = ShapeFlow(cfg)
    torch.nn.init.normal_(m.net.out.weight, std=0.1)  # zero-initialised output would hide bugs
    return m.eval()


def test_transformer_is_permutation_equivariant():
    m = _model()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 12, m.config.dim, generator=g)
    t, y = torch.rand(3, generator=g), torch.tensor([0, 1, 2])
    perm = torch.randperm(12, generator=g)
    out = m(x, t, y)
    assert out.abs().max() > 0
    assert torch.allclose(m(x[:, perm], t, y), out[:, perm], atol=1e-5)
    assert not torch.allclose(m(x, t, torch.tensor([1, 0, 2])), out)


def test_tokens_round_trip():
    g = torch.Generator().manual_seed(0)
    ms = [
        MSDF(
            torch.rand(5, 3, generator=g) - 0.5,
            0.05 + 0.1 * torch.rand(5, generator=g),
            torch.randn(5, 3, 3, 3, generator=g),
        )
    ]
    back = from_tokens(to_tokens(ms), 3)[0]
    assert torch.allclose(back.values, ms[0].values, atol=1e-5)
    assert torch.allclose(back.scales, ms[0].scales, atol=1e-6)


@pytest.mark.parametrize("coupling", ["independent", "ot"])
def test_loss_trains_and_sampling_is_seeded(coupling):
    m = _model(coupling=coupling).train()
    x0 = torch.randn(4, 12, m.config.dim)
    y = torch.tensor([0, 1, 0, 1])
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    first = None
    for i in range(30):
        loss = m.loss(x0, y, torch.Generator().manual_seed(i % 3))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    m.eval()
    a = m.sample(y, generator=torch.Generator().manual_seed(1), steps=2, sampler="euler")
    b = m.sample(y, generator=torch.Generator().manual_seed(1), steps=2, sampler="euler")
    assert torch.equal(a, b)
    assert a.shape == (4, 12, m.config.dim)


def test_model_file_round_trip_and_unknown_class(tmp_path):
    m = _model()
    m.mean.fill_(0.5)
    save_model(m, tmp_path / "model", config=m.config.to_dict())
    r = load_model(tmp_path / "model").model
    assert torch.equal(r.mean, m.mean)
    with pytest.raises(InputError, match="unknown sofa; this model knows chair, mug"):
        r.labels(["sofa"])
    with pytest.raises(InputError, match="sampler"):
        FlowConfig(sampler="nope")


def test_geometry_weight_scales_the_standardised_centres_and_round_trips():
    g = torch.Generator().manual_seed(3)
    ms = [
        MSDF(
            torch.rand(12, 3, generator=g) - 0.5,
            0.05 + 0.1 * torch.rand(12, generator=g),
            torch.randn(12, 3, 3, 3, generator=g),
        )
        for _ in range(6)
    ]
    m = _model(geometry_weight=4.0)
    raw = to_tokens(ms, m.config.value_tau)
    m.fit_normalisation(raw)
    x = m.encode(ms).reshape(-1, m.config.dim)
    assert x[:, :4].std(0) == pytest.approx([4.0] * 4, rel=1e-4)
    assert x[:, 4:].std(0) == pytest.approx([1.0] * 27, rel=1e-4)
    back = m.decode(m.encode(ms[:1]))[0]
    assert torch.allclose(back.centres, ms[0].centres, atol=1e-5)
    assert torch.allclose(back.values, ms[0].values, atol=1e-4)
    points = ShapeFlow(FlowConfig(classes=["a"], tokens="points", n=8, geometry_weight=4.0))
    points.fit_normalisation(torch.randn(5, 8, 3))
    assert points.std.min() > 0.5  # the weight applies to M-SDF tokens only
    with pytest.raises(InputError, match="geometry_weight"):
        FlowConfig(geometry_weight=0)
