"""Weightings, time samplers, DSM and flow-matching losses, minibatch OT coupling."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.core.losses import (
    cfm_loss,
    dsm_loss,
    hungarian,
    linear_assignment,
    ot_coupling,
    pairwise_sq_cost,
    target_scale2,
    target_weight,
    x0_weight,
)
from polyfold.core.paths import (
    EDM,
    VE,
    GaussianPath,
    LinearInterpolant,
    PFGMPath,
    TrigInterpolant,
    VPLinear,
)
from polyfold.core.predictions import PREDICTIONS, Prediction, convert
from polyfold.core.state import apply_mask
from polyfold.core.testing import GaussianMixture, ks_critical, ks_statistic
from polyfold.core.timesteps import Antithetic, EDMLogNormal, LogitNormal, Uniform

F64 = torch.float64


def _coefs(path: GaussianPath, t: Tensor) -> dict[str, Tensor]:
    return {
        "alpha": path.alpha(t),
        "sigma": path.sigma(t),
        "d_alpha": path.d_alpha(t),
        "d_sigma": path.d_sigma(t),
    }


# -- weightings -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [VPLinear(), VE(), LinearInterpolant()], ids=repr)
def test_target_scale_is_the_error_ratio(path: GaussianPath) -> None:
    # at fixed x_t, an x0 error delta becomes a target error of norm^2 = c^2 ||delta||^2
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0.1, 0.4, 0.8], dtype=F64)
    x_t = torch.randn(3, 5, generator=g, dtype=F64)
    x0 = torch.randn(3, 5, generator=g, dtype=F64)
    delta = torch.randn(3, 5, generator=g, dtype=F64)
    c = _coefs(path, t)
    for pred in PREDICTIONS:
        a = convert(x0, source="x0", target=pred, x_t=x_t, **c)
        b = convert(x0 + delta, source="x0", target=pred, x_t=x_t, **c)
        ratio = (a - b).pow(2).sum(1) / delta.pow(2).sum(1)
        torch.testing.assert_close(ratio, target_scale2(pred, **c))


def test_weightings_are_consistent() -> None:
    path = VPLinear()
    t = torch.linspace(0.01, 0.99, 50, dtype=F64)
    lam, c = path.log_snr(t), _coefs(path, t)
    snr = lam.exp()
    torch.testing.assert_close(
        x0_weight(lam, "min_snr", min_snr_gamma=math.inf), x0_weight(lam, "snr")
    )
    torch.testing.assert_close(x0_weight(lam, "min_snr", min_snr_gamma=5.0), snr.clamp(max=5.0))
    torch.testing.assert_close(x0_weight(lam, "max_snr"), snr.clamp(min=1.0))
    s = (-0.5 * lam).exp()  # sigma / alpha
    torch.testing.assert_close(
        x0_weight(lam, "edm", sigma_data=0.5), (s**2 + 0.25) / (s * 0.5) ** 2
    )
    torch.testing.assert_close(
        x0_weight(lam, "sigmoid", sigmoid_bias=2.0), snr * torch.sigmoid(2.0 - lam)
    )
    # snr weighting on an eps model is the plain eps-MSE; min-SNR on v is Hang et al.'s
    # min(SNR, gamma) / (SNR + 1) on VP paths
    w = target_weight("eps", "snr", log_snr=lam, **c)
    torch.testing.assert_close(w, torch.ones_like(lam))
    w = target_weight("v", "min_snr", log_snr=lam, min_snr_gamma=5.0, **c)
    torch.testing.assert_close(w, snr.clamp(max=5.0) / (snr + 1))
    assert torch.equal(target_weight("velocity", "target", log_snr=lam, **c), torch.ones_like(lam))
    with pytest.raises(InputError, match="weighting"):
        x0_weight(lam, "p2")  # type: ignore[arg-type]


# -- time samplers ----------------------------------------------------------------------------


def test_uniform_and_antithetic_times() -> None:
    path = VPLinear()
    g = torch.Generator().manual_seed(0)
    t = Uniform()(4000, path=path, generator=g)
    assert t.dtype == F64
    assert t.shape == (4000,)
    lo, hi = path.t_min, path.t_max
    assert ks_statistic(t, lambda x: (x - lo) / (hi - lo)) < ks_critical(4000)
    t = Antithetic(t_min=0.0, t_max=1.0)(64, path=path, generator=g)
    gaps = t.sort().values.diff()
    torch.testing.assert_close(gaps, torch.full_like(gaps, 1 / 64))
    # each draw is marginally uniform: the first element over many batches
    firsts = torch.stack([Antithetic()(8, path=path, generator=g)[0] for _ in range(1500)])
    assert ks_statistic(firsts, lambda x: (x - lo) / (hi - lo)) < ks_critical(1500)
    with pytest.raises(InputError, match="t_min"):
        Uniform(t_min=0.5, t_max=0.2)(3, path=path)


def test_logit_normal_times() -> None:
    t = LogitNormal(mean=0.5, std=0.8)(4000, path=LinearInterpolant(), generator=torch.Generator())
    logit = torch.log(t / (1 - t))
    stat = ks_statistic(logit, lambda x: torch.special.ndtr((x - 0.5) / 0.8))
    assert stat < ks_critical(4000)


@pytest.mark.parametrize("path", [EDM(), VPLinear(), LinearInterpolant()], ids=repr)
def test_edm_lognormal_times_through_the_path_inverse(path: GaussianPath) -> None:
    g = torch.Generator().manual_seed(1)
    t = EDMLogNormal()(4000, path=path, generator=g)
    assert (t >= path.t_min).all()
    assert (t <= path.t_max).all()
    log_ratio = -0.5 * path.log_snr(t)  # log(sigma / alpha)
    stat = ks_statistic(log_ratio, lambda x: torch.special.ndtr((x + 1.2) / 1.2))
    assert stat < ks_critical(4000)


# -- denoising score matching -----------------------------------------------------------------


class _Affine:
    """An imperfect x0-predictor, reported in any prediction type."""

    def __init__(self, path: GaussianPath, prediction: Prediction, scale: float = 0.7) -> None:
        self.path, self.prediction, self.scale = path, prediction, scale

    def __call__(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        t = t.to(F64)
        x0_hat = self.scale * torch.tanh(x_t) + 0.1 * t[:, None]
        c = _coefs(self.path, t)
        out = convert(x0_hat, source="x0", target=self.prediction, x_t=x_t, **c)
        return out.to(x_t.dtype)


@pytest.mark.parametrize("path", [VPLinear(), EDM(), TrigInterpolant()], ids=repr)
@pytest.mark.parametrize("weighting", ["uniform", "snr", "min_snr", "edm"])
def test_weighting_means_the_same_objective_for_every_prediction(
    path: GaussianPath, weighting: str
) -> None:
    x0 = torch.randn(16, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    losses = [
        dsm_loss(
            _Affine(path, pred),
            x0,
            path=path,
            prediction=pred,
            weighting=weighting,  # type: ignore[arg-type]
            generator=torch.Generator().manual_seed(1),
        )
        for pred in PREDICTIONS
    ]
    for value in losses[1:]:
        torch.testing.assert_close(value, losses[0], rtol=1e-9, atol=0)


def test_dsm_matches_a_hand_computation() -> None:
    path = VPLinear()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 3, generator=g)
    model = _Affine(path, "eps")
    loss = dsm_loss(
        model, x0, path=path, weighting="uniform", generator=torch.Generator().manual_seed(5)
    )
    default = dsm_loss(model, x0, path=path, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(8, 3, generator=g)  # noise first, then t
    t = path.t_min + (path.t_max - path.t_min) * torch.rand(8, generator=g, dtype=F64)
    x_t = path.alpha(t).float()[:, None] * x0 + path.sigma(t).float()[:, None] * noise
    out = model(x_t, t.float())
    # "uniform" is weight 1 on the x0-MSE, i.e. 1/SNR on the eps-MSE
    expected = ((out - noise) ** 2).mean(1) / path.log_snr(t).exp()
    torch.testing.assert_close(loss, expected.float().mean())
    # the default ("target") is the plain eps-MSE, DDPM's simple loss
    torch.testing.assert_close(default, ((out - noise) ** 2).mean())


def test_exact_denoiser_reaches_the_irreducible_loss() -> None:
    # x0 ~ N(0, s^2 I): E||x0 - E[x0|x_t]||^2 / d = s^2 sigma^2 / (alpha^2 s^2 + sigma^2)
    s, path, t = 0.8, VPLinear(), 0.35
    gmm = GaussianMixture(torch.zeros(1, 4), stds=s)
    x0 = gmm.sample(20000, generator=torch.Generator().manual_seed(0), dtype=F64)
    a, sg = float(path.alpha(t)), float(path.sigma(t))
    irreducible = s * s * sg * sg / (a * a * s * s + sg * sg)
    exact = gmm.model(path, "x0")
    loss = dsm_loss(exact, x0, path=path, prediction="x0", t=t, generator=torch.Generator())
    assert loss.item() == pytest.approx(irreducible, rel=0.03)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_exact_model_beats_perturbed_models(prediction: Prediction) -> None:
    gmm = GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], stds=[0.3, 0.6])
    path = VPLinear()
    x0 = gmm.sample(4096, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = gmm.model(path, prediction)

    def loss_of(model: Any) -> float:
        value = dsm_loss(
            model,
            x0,
            path=path,
            prediction=prediction,
            weighting="min_snr",
            generator=torch.Generator().manual_seed(1),
        )
        return value.item()

    best = loss_of(exact)
    for bump in (0.05, -0.05):
        assert loss_of(lambda x, t, c, b=bump: exact(x, t, c) + b) > best
    assert loss_of(lambda x, t, c: 1.1 * exact(x, t, c)) > best


def test_dsm_masks_exclude_padding() -> None:
    path = VPLinear()
    lengths = torch.tensor([5, 3, 1])
    mask = torch.arange(5)[None, :] < lengths[:, None]
    x0 = apply_mask(torch.randn(3, 5, 2), mask)
    seen: list[Tensor] = []

    def model(x_t: Tensor, t: Tensor, cond: Any, pad: float = 0.0) -> Tensor:
        seen.append(x_t)
        out = torch.zeros_like(x_t)
        out[~mask] = pad
        return out

    def run(pad: float) -> Tensor:
        return dsm_loss(
            lambda x, t, c: model(x, t, c, pad),
            x0,
            path=path,
            mask=mask,
            generator=torch.Generator().manual_seed(0),
            reduction="none",
        )

    base, garbage = run(0.0), run(1e6)
    assert torch.equal(base, garbage)
    assert (seen[0][~mask] == 0).all()
    # the valid part alone gives the same per-example losses
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(3, 5, 2, generator=g)
    t = path.t_min + (path.t_max - path.t_min) * torch.rand(3, generator=g, dtype=F64)
    for i, n in enumerate(lengths.tolist()):
        one = dsm_loss(
            lambda x, tt, c: torch.zeros_like(x),
            x0[i : i + 1, :n],
            path=path,
            t=t[i],
            noise=noise[i : i + 1, :n],
        )
        torch.testing.assert_close(base[i], one)


def test_dict_state_sums_per_key_losses() -> None:
    paths = {"x": VPLinear(), "adj": VE()}
    g = torch.Generator().manual_seed(0)
    state = {"x": torch.randn(4, 3, 2, generator=g), "adj": torch.randn(4, 3, 3, generator=g)}
    noise = {k: torch.randn(v.shape, generator=g) for k, v in state.items()}
    t = torch.tensor([0.2, 0.4, 0.6, 0.8])
    preds = {"x": "eps", "adj": "x0"}

    def model(x_t: dict[str, Tensor], tt: Tensor, cond: Any) -> dict[str, Tensor]:
        return {k: 0.5 * v for k, v in x_t.items()}

    total = dsm_loss(model, state, path=paths, prediction=preds, t=t, noise=noise, weighting="snr")  # type: ignore[arg-type]
    parts = [
        dsm_loss(
            lambda x, tt, c: 0.5 * x,
            state[k],
            path=paths[k],
            prediction=preds[k],  # type: ignore[arg-type]
            t=t,
            noise=noise[k],
            weighting="snr",
        )
        for k in state
    ]
    torch.testing.assert_close(total, parts[0] + parts[1])
    with pytest.raises(InputError, match="structure"):
        dsm_loss(lambda x, tt, c: x["x"], state, path=paths, t=t)


def test_dsm_is_reproducible_and_validates() -> None:
    x0 = torch.randn(6, 2)
    model = _Affine(VPLinear(), "eps")
    one = dsm_loss(model, x0, path=VPLinear(), generator=torch.Generator().manual_seed(3))
    two = dsm_loss(model, x0, path=VPLinear(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(one, two)
    assert one.ndim == 0
    assert one.dtype == torch.float32
    with pytest.raises(InputError, match="reduction"):
        dsm_loss(model, x0, path=VPLinear(), reduction="sum")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="score"):
        dsm_loss(model, x0, path=PFGMPath(8), prediction="score")
    with pytest.raises(InputError, match="model output"):
        dsm_loss(lambda x, t, c: x[:, :1], x0, path=VPLinear())


def test_pfgm_trains_with_the_x0_target() -> None:
    path = PFGMPath(16)
    gmm = GaussianMixture(torch.zeros(1, 3), stds=0.5)
    x0 = gmm.sample(512, generator=torch.Generator().manual_seed(0))
    # the identity denoiser's x0 loss is the kernel's mean squared radius per dim, sigma^2 D/(D-2)
    loss = dsm_loss(
        lambda x, t, c: x,
        x0,
        path=path,
        prediction="x0",
        t=0.5,
        generator=torch.Generator().manual_seed(1),
    )
    sigma = float(path.sigma(0.5))
    assert loss.item() == pytest.approx(sigma**2 * 16 / 14, rel=0.1)


# -- flow matching and OT ---------------------------------------------------------------------


def test_cfm_matches_a_hand_computation() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 3, generator=g)

    def model(x: Tensor, t: Tensor, cond: Any) -> Tensor:
        return 0.3 * x + t[:, None]

    loss = cfm_loss(model, x0, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    x1 = torch.randn(8, 3, generator=g)
    t = torch.rand(8, generator=g, dtype=F64).float()
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
    torch.testing.assert_close(loss, ((model(x_t, t, None) - (x1 - x0)) ** 2).mean())


def test_cfm_exact_velocity_beats_perturbed() -> None:
    gmm = GaussianMixture([[-1.5, 0.0], [1.5, 0.5]], stds=0.4)
    path = LinearInterpolant()
    x0 = gmm.sample(4096, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = gmm.model(path, "velocity")

    def loss_of(model: Any) -> float:
        kw = {"generator": torch.Generator().manual_seed(1), "time_sampler": Uniform(0.01, 0.99)}
        return cfm_loss(model, x0, **kw).item()

    best = loss_of(exact)
    assert loss_of(lambda x, t, c: exact(x, t, c) + 0.05) > best
    assert loss_of(lambda x, t, c: 0.9 * exact(x, t, c)) > best


def _brute_force(cost: np.ndarray) -> float:
    n = cost.shape[0]
    return min(cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n)))


def test_hungarian_is_optimal() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 6):
        for _ in range(4):
            cost = rng.normal(size=(n, n))
            col = hungarian(cost)
            assert sorted(col.tolist()) == list(range(n))
            assert cost[np.arange(n), col].sum() == pytest.approx(_brute_force(cost))
    # ties and integer costs
    cost = rng.integers(0, 3, size=(6, 6)).astype(float)
    assert cost[np.arange(6), hungarian(cost)].sum() == pytest.approx(_brute_force(cost))


def test_hungarian_agrees_with_scipy() -> None:
    optimize = pytest.importorskip("scipy.optimize")
    cost = np.random.default_rng(1).normal(size=(40, 40))
    rows, cols = optimize.linear_sum_assignment(cost)
    ours = hungarian(cost)
    assert cost[np.arange(40), ours].sum() == pytest.approx(cost[rows, cols].sum())


def test_ot_coupling_is_the_minibatch_optimum() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 2, 2, generator=g) + 3.0
    noise = torch.randn(6, 2, 2, generator=g)
    cost = pairwise_sq_cost(x0, noise).numpy()
    direct = ((x0.double()[:, None] - noise.double()[None]) ** 2).flatten(2).sum(2).numpy()
    np.testing.assert_allclose(cost, direct, rtol=1e-10, atol=1e-10)
    perm = ot_coupling(x0, noise)
    chosen = float(((x0 - noise[perm]) ** 2).sum())
    assert chosen == pytest.approx(_brute_force(direct), rel=1e-6)
    assert chosen <= float(((x0 - noise) ** 2).sum())
    # larger batch: lower transport cost than the independent pairing
    x0 = torch.randn(128, 4, generator=g) + torch.tensor([2.0, 0, 0, 0])
    noise = torch.randn(128, 4, generator=g)
    perm = ot_coupling(x0, noise)
    assert ((x0 - noise[perm]) ** 2).sum() < 0.7 * ((x0 - noise) ** 2).sum()
    assert torch.equal(linear_assignment(torch.zeros(3, 3)).sort().values, torch.arange(3))


def test_ot_cost_uses_valid_entries_and_all_keys() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True]])
    x0 = apply_mask(torch.randn(3, 3, 2, generator=g), mask)
    noise = torch.randn(3, 3, 2, generator=g)
    cost = pairwise_sq_cost(x0, noise, mask)
    for i, j in itertools.product(range(3), range(3)):
        m = mask[i][:, None].double()
        assert cost[i, j].item() == pytest.approx(float((m * (x0[i] - noise[j]) ** 2).sum()))
    both = pairwise_sq_cost({"a": x0, "b": x0[:, :, :1]}, {"a": noise, "b": noise[:, :, :1]}, mask)
    torch.testing.assert_close(both, cost + pairwise_sq_cost(x0[:, :, :1], noise[:, :, :1], mask))


def test_cfm_with_ot_coupling_masks_and_dicts() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(4)[None, :] < torch.tensor([4, 2, 3, 1, 4, 2])[:, None]
    state = {"x": apply_mask(torch.randn(6, 4, 2, generator=g), mask), "y": torch.randn(6, 3)}
    masks = {"x": mask, "y": None}

    def model(x_t: dict[str, Tensor], t: Tensor, cond: Any) -> dict[str, Tensor]:
        return {k: torch.zeros_like(v) for k, v in x_t.items()}

    kw: dict[str, Any] = {"mask": masks, "coupling": "ot", "reduction": "none"}
    ot = cfm_loss(model, state, generator=torch.Generator().manual_seed(1), **kw)
    ind = cfm_loss(
        model, state, generator=torch.Generator().manual_seed(1), mask=masks, reduction="none"
    )
    assert ot.shape == (6,)
    assert torch.isfinite(ot).all()
    assert not torch.equal(ot, ind)
    with pytest.raises(InputError, match="coupling"):
        cfm_loss(model, state, coupling="sinkhorn")  # type: ignore[arg-type]
