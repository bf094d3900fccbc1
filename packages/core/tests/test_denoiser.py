"""The denoiser protocol and the network adapter ``as_denoiser``."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser, NFECounter, as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import EDM, VE, GaussianPath, LinearInterpolant, VPCosine, VPLinear
from polyfold.core.predictions import PREDICTIONS
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
GMM = GaussianMixture([[-1.0, 0.5], [1.0, -0.5]], stds=[0.6, 0.9], weights=[0.3, 0.7])


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(path: GaussianPath) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0.1, 0.9, 6, dtype=F64)
    x0 = GMM.sample(6, generator=g, dtype=F64)
    return path.perturb(x0, t, torch.randn(6, 2, generator=g, dtype=F64)), t


@pytest.mark.parametrize(
    "path", [VPLinear(), VPCosine(), VE(), EDM(), LinearInterpolant()], ids=repr
)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_every_prediction_type_gives_the_exact_pair(path: GaussianPath, prediction: str) -> None:
    x, t = _batch(path)
    den = as_denoiser(GMM.model(path, prediction), path, prediction=prediction)
    out = den(x, t)
    assert isinstance(out, Denoised)
    torch.testing.assert_close(out.x0, GMM.x0_mean(x, t, path), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(out.eps, GMM.eps(x, t, path), rtol=1e-7, atol=1e-7)
    a, s = path.alpha(t)[:, None], path.sigma(t)[:, None]
    torch.testing.assert_close(a * out.x0 + s * out.eps, x)  # a consistent pair
    assert isinstance(den, Denoiser)


def test_dict_state_uses_each_keys_path_and_prediction() -> None:
    paths = {"a": VPLinear(), "b": VE()}
    xa, t = _batch(paths["a"])
    xb, _ = _batch(paths["b"])
    gmm_b = GaussianMixture([[2.0, 0.0, 1.0]], stds=0.5)
    xb = torch.cat([xb, xb[:, :1]], dim=1)

    def model(x: dict[str, Tensor], t: Tensor, cond: object) -> dict[str, Tensor]:
        return {
            "a": GMM.predict(x["a"], t, paths["a"], "v"),
            "b": gmm_b.predict(x["b"], t, paths["b"], "x0"),
        }

    den = as_denoiser(model, paths, prediction={"a": "v", "b": "x0"})
    out = den({"a": xa, "b": xb}, t)
    assert isinstance(out.x0, dict)
    assert isinstance(out.eps, dict)
    torch.testing.assert_close(out.x0["a"], GMM.x0_mean(xa, t, paths["a"]))
    torch.testing.assert_close(out.eps["b"], gmm_b.eps(xb, t, paths["b"]))


def test_calls_are_counted_and_cond_is_passed() -> None:
    path = VPLinear()
    seen = []

    def model(x: Tensor, t: Tensor, cond: object) -> Tensor:
        seen.append(cond)
        return torch.zeros_like(x)

    counter = NFECounter()
    den = as_denoiser(model, path, prediction="eps", cond="label", counter=counter)
    x, t = _batch(path)
    for _ in range(3):
        den(x, t)
    assert den.nfe == counter.count == 3
    assert seen == ["label"] * 3
    counter.reset()
    assert den.nfe == 0


def test_padded_entries_pass_through_elementwise() -> None:
    path = VPLinear()
    x = torch.randn(2, 5, 2, dtype=F64)
    x[1, 3:] = 0.0  # padding
    den = as_denoiser(lambda xt, t, c: 0.5 * xt, path, prediction="eps")
    out = den(x, torch.full((2,), 0.4, dtype=F64))
    assert torch.isfinite(out.x0).all()
    assert torch.equal(out.eps, 0.5 * x)


def test_float32_states_stay_float32() -> None:
    path = VPLinear()
    x, t = _batch(path)
    den = as_denoiser(lambda xt, tt, c: xt.float() * 0.1, path, prediction="v")
    out = den(x.float(), t.float())
    assert out.x0.dtype == torch.float32
    assert out.eps.dtype == torch.float32


def test_bad_inputs_raise_input_error() -> None:
    path = VPLinear()
    x, t = _batch(path)
    with pytest.raises(InputError, match="prediction"):
        as_denoiser(lambda *a: a[0], path, prediction="noise")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="paths"):
        as_denoiser(lambda *a: a[0], "vp", prediction="eps")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="model"):
        as_denoiser(42, path, prediction="eps")  # type: ignore[arg-type]
    den = as_denoiser(lambda xt, tt, c: xt[:, :1], path, prediction="eps")
    with pytest.raises(InputError, match="shape"):
        den(x, t)
    den = as_denoiser(lambda xt, tt, c: xt["a"], path, prediction="eps")
    with pytest.raises(InputError, match="dict"):
        den({"a": x}, t)
    den = as_denoiser(lambda xt, tt, c: xt, {"a": path, "b": path}, prediction="eps")
    with pytest.raises(InputError, match="keys"):
        den({"a": x}, t)


def test_lazy_pair_computes_each_member_once_on_demand() -> None:
    calls = {"x0": 0, "eps": 0}

    def make(name: str, value: float):
        def fn() -> Tensor:
            calls[name] += 1
            return torch.full((2,), value)

        return fn

    d = Denoised.lazy(make("x0", 1.0), make("eps", 2.0))
    assert calls == {"x0": 0, "eps": 0}
    assert float(d.eps.sum()) == 4.0
    assert float(d.eps.sum()) == 4.0
    assert calls == {"x0": 0, "eps": 1}
    assert float(d.x0.sum()) == 2.0
    assert calls == {"x0": 1, "eps": 1}


def test_eps_model_output_is_not_converted_unless_x0_is_read() -> None:
    path = VPLinear()
    x, t = _batch(path)
    out = torch.randn_like(x)
    den = as_denoiser(lambda xt, tt, c: out, path, prediction="eps")
    d = den(x, t)
    assert d.eps is out  # the model's own output, no arithmetic
    a, s = path.alpha(t)[:, None], path.sigma(t)[:, None]
    torch.testing.assert_close(d.x0, (x - s * out) / a)


def test_given_levels_match_the_paths() -> None:
    path = VPCosine()
    x, _ = _batch(path)
    t = torch.full((6,), 0.37, dtype=F64)
    lv = (float(path.alpha(0.37)), float(path.sigma(0.37)), float(path.d_alpha(0.37)))
    for pred in PREDICTIONS:
        den = as_denoiser(GMM.model(path, pred), path, prediction=pred)
        ref = den(x, t)
        got = den.at_levels(x, t, (*lv, float(path.d_sigma(0.37))))
        torch.testing.assert_close(got.x0, ref.x0)
        torch.testing.assert_close(got.eps, ref.eps)
        if pred == "velocity":  # without derivatives the path supplies them
            torch.testing.assert_close(den.at_levels(x, t, lv[:2]).x0, ref.x0)
