"""Gradient-free classifier guidance on an exact class-conditional Gaussian mixture."""

from __future__ import annotations

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.guidance import GFCG, cfg, gfcg
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import get_sampler, log_snr_grid
from polyfold.core.testing import NULL_LABEL, GaussianMixture

F64 = torch.float64
PATH = VPLinear()
MEANS = [[-1.5, 0.0], [1.5, 0.0], [0.0, 2.0], [0.0, -2.0]]
TRUE = GaussianMixture(MEANS, stds=0.8, labels=[0, 1, 2, 3])
MODEL = GaussianMixture(MEANS, stds=1.3, labels=[0, 1, 2, 3]).model(PATH, "eps")  # too diverse


def classifier(x0: torch.Tensor) -> torch.Tensor:
    """The Bayes classifier of the true mixture (equal class weights)."""
    return torch.stack([TRUE.log_prob(x0, cond=k) for k in range(4)], 1)


def setup(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    return labels, PATH.prior_sample((n, 2), generator=g, dtype=F64)


def sample(den: object, x: torch.Tensor, steps: int = 12) -> torch.Tensor:
    grid = log_snr_grid(PATH, steps, append_zero=True)
    out = get_sampler("dpm_solver_pp")(den, PATH, x, grid).x
    assert isinstance(out, torch.Tensor)
    return out


def accuracy(x: torch.Tensor, labels: torch.Tensor) -> float:
    return float((classifier(x).argmax(1) == labels).double().mean())


def test_exported_from_guidance() -> None:
    import polyfold.core.guidance as guidance

    assert guidance.gfcg is gfcg
    assert "GFCG" in guidance.__all__


def test_scale_zero_is_the_unguided_sampler_bit_for_bit() -> None:
    labels, x = setup(32)
    den = as_denoiser(MODEL, PATH, prediction="eps", cond=labels)
    plain = sample(den, x)
    assert torch.equal(sample(gfcg(den, classifier, 0.0), x), plain)
    with_cfg = sample(cfg(den, NULL_LABEL, 2.0), x)
    both = gfcg(den, classifier, 0.0, uncond=NULL_LABEL, cfg_scale=2.0)
    assert torch.equal(sample(both, x), with_cfg)


def test_gfcg_raises_class_accuracy_and_complements_cfg() -> None:
    labels, x = setup(300)
    den = as_denoiser(MODEL, PATH, prediction="eps", cond=labels)
    base = accuracy(sample(den, x), labels)
    guided = accuracy(sample(gfcg(den, classifier, 2.0), x), labels)
    assert guided > base + 0.1
    with_cfg = accuracy(sample(cfg(den, NULL_LABEL, 1.5), x), labels)
    combined = accuracy(
        sample(gfcg(den, classifier, 0.5, uncond=NULL_LABEL, cfg_scale=1.5), x), labels
    )
    assert combined > with_cfg


def test_reference_is_the_most_confusable_other_class_and_weight_adapts() -> None:
    labels = torch.zeros(3, dtype=torch.long)
    den = as_denoiser(MODEL, PATH, prediction="eps", cond=labels)
    g = gfcg(den, classifier, 3.0)
    x0 = torch.tensor([[-3.0, 0.0], [1.5, 0.0], [0.0, 2.0]], dtype=F64)  # class 0, 1, 2 regions
    ref, w = g._choose(x0, labels)
    assert ref[1] == 1
    assert ref[2] == 2
    assert ref[0] != 0
    assert 0 < w[0] < 0.5 < w[1] <= 3.0  # confident: small weight; confused: large
    probs = classifier(x0).softmax(1)
    expected = 3.0 * probs[1, 1] / (probs[1, 0] + probs[1, 1])
    assert float(w[1]) == pytest.approx(float(expected), rel=1e-9)


def test_two_network_calls_per_step() -> None:
    labels, x = setup(8)
    den = as_denoiser(MODEL, PATH, prediction="eps", cond=labels)
    g = gfcg(den, classifier, 1.0)
    sample(g, x, steps=6)
    assert g.nfe == 12
    assert isinstance(g, GFCG)
    assert g.last_reference is not None
    assert not bool((g.last_reference == labels).any())


def test_bad_input() -> None:
    labels, x = setup(4)
    den = as_denoiser(MODEL, PATH, prediction="eps", cond=torch.full((4,), 3))
    with pytest.raises(InputError, match="class labels must lie in"):  # a 3-class classifier
        sample(gfcg(den, lambda x0: classifier(x0)[:, :3], 1.0), x, steps=2)
    den_f = as_denoiser(MODEL, PATH, prediction="eps", cond=torch.zeros(4))
    with pytest.raises(InputError, match="integer class labels"):
        sample(gfcg(den_f, classifier, 1.0), x, steps=2)
    ok = as_denoiser(MODEL, PATH, prediction="eps", cond=labels)
    with pytest.raises(InputError, match="logits"):
        sample(gfcg(ok, lambda x0: x0[:, 0], 1.0), x, steps=2)
    with pytest.raises(InputError, match="scale"):
        gfcg(ok, classifier, -1.0)
    with pytest.raises(InputError, match="as_denoiser"):
        gfcg(lambda x, t: None, classifier, 1.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="uncond"):
        gfcg(ok, classifier, 1.0, cfg_scale=2.0)
