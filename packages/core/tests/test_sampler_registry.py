"""The sampler registry: names, one keyword set, options checked, results equal direct calls."""

from __future__ import annotations

import pytest
import torch

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.discrete import LinearSchedule, MaskedProcess, sample_ancestral
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import available_samplers, get_sampler, register_sampler, registry
from polyfold.core.testing import GaussianMixture

PATH = VPLinear()
GMM = GaussianMixture([[-1.0, 0.5], [1.0, -0.5]], stds=[0.6, 0.8], weights=[0.4, 0.6])


def _den():
    return as_denoiser(GMM.model(PATH, "eps"), PATH, prediction="eps")


def test_every_core_sampler_is_registered_by_its_kind():
    gaussian = set(available_samplers("gaussian"))
    masked = set(available_samplers("masked"))
    assert {"ddim", "ddpm", "heun", "dpm_solver_pp", "unipc", "predictor_corrector"} <= gaussian
    assert masked == {"ancestral", "first_hitting", "confidence", "blockwise"}
    assert not gaussian & masked
    assert set(available_samplers()) == gaussian | masked


def test_unknown_name_and_wrong_kind_list_the_choices():
    with pytest.raises(InputError, match=r"expected one of .*ddim.*got 'dddim'"):
        get_sampler("dddim")
    with pytest.raises(InputError, match=r"expected one of ancestral, blockwise.*got 'ddim'"):
        get_sampler("ddim", kind="masked")


def test_registry_call_equals_direct_call_and_drops_unused_common_keywords():
    x = PATH.prior_sample((64, 2), generator=torch.Generator().manual_seed(0))
    grid = S.uniform_t_grid(PATH, 10)
    gen = torch.Generator().manual_seed(1)
    # heun is deterministic: generator and noise are accepted and dropped
    via = get_sampler("heun")(_den(), PATH, x, grid, generator=gen, noise=None, mask=None)
    direct = S.heun(_den(), PATH, x, grid)
    torch.testing.assert_close(via.x, direct.x, rtol=0, atol=0)
    assert via.nfe == direct.nfe
    spec = get_sampler("ddim")
    a = spec(_den(), PATH, x, grid, eta=0.5, generator=torch.Generator().manual_seed(3))
    b = S.ddim(_den(), PATH, x, grid, eta=0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)


def test_unknown_option_names_the_sampler_and_its_options():
    x = torch.zeros(4, 2)
    grid = S.uniform_t_grid(PATH, 4)
    with pytest.raises(InputError, match=r"'ddim': unknown option\(s\) order .*eta"):
        get_sampler("ddim")(_den(), PATH, x, grid, order=2)
    assert get_sampler("unipc").options["order"] == 2
    assert "steps" not in get_sampler("first_hitting").options


def test_masked_sampler_through_the_registry():
    process = MaskedProcess(LinearSchedule(), mask_id=3)

    def model(x, t, cond=None):
        logits = torch.zeros(*x.shape, 4)
        logits[..., 1] = 5.0
        return logits

    x = torch.full((2, 5), 3)
    got = get_sampler("ancestral")(
        model, process, x, steps=8, generator=torch.Generator().manual_seed(0), fixed=None
    )
    want = sample_ancestral(model, process, x, steps=8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got.tokens, want.tokens)


def test_register_refuses_a_taken_name_unless_replacing():
    def my_sampler(denoiser, paths, x, grid, *, generator=None, boost: float = 1.0):
        """A test sampler."""
        return (x, boost)

    spec = register_sampler("test_only_sampler", my_sampler, kind="gaussian")
    try:
        assert spec.options == {"boost": 1.0}
        assert spec.summary == "A test sampler."
        assert spec(None, None, 1, None, boost=2.0, mask=None) == (1, 2.0)
        with pytest.raises(InputError, match="already registered"):
            register_sampler("test_only_sampler", my_sampler, kind="gaussian")
        register_sampler("test_only_sampler", my_sampler, kind="gaussian", replace=True)
    finally:
        registry._REGISTRY.pop("test_only_sampler")
