"""TabEBM: the energy's definition, surrogate negatives, sampling, determinism, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.tabular import TabEBM, energy_from_logits, surrogate_negatives
from polyfold.tabular.sgld import (
    TABEBM_SGLD_NOISE_STD,
    TABEBM_SGLD_STEP_SIZE,
    TABEBM_SGLD_STEPS,
    TABEBM_START_NOISE_STD,
)


class FixedLogits:
    """A backbone whose logits are a known function of x: f(x) = [a . x, b . x + c]."""

    name = "fixed"

    def __init__(self) -> None:
        self.fits: list[tuple[torch.Tensor, torch.Tensor]] = []

    def fit(self, X, y, *, seed):
        self.fits.append((X.clone(), y.clone()))
        d = X.shape[1]
        a = torch.linspace(-1.0, 1.0, d)
        b = torch.linspace(0.5, -0.5, d)

        def logits(x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x @ a, x @ b + 0.3], dim=1)

        return logits


class QuadraticLogits:
    """Logits [-|x - m|^2 / 2, -inf-ish]: energy |x - m|^2 / 2, a Gaussian around m."""

    name = "quadratic"

    def fit(self, X, y, *, seed):
        m = X[y == 0].mean(0)

        def logits(x: torch.Tensor) -> torch.Tensor:
            e = 0.5 * (x - m).pow(2).sum(1)
            return torch.stack([-e, torch.full_like(e, -50.0)], dim=1)

        return logits


def test_energy_is_minus_logsumexp_of_the_two_logits() -> None:
    logits = torch.tensor([[0.0, 0.0], [2.0, -1.0], [-3.0, 4.0]])
    expected = [
        -math.log(2.0),
        -math.log(math.exp(2) + math.exp(-1)),
        -math.log(math.exp(-3) + math.exp(4)),
    ]
    assert energy_from_logits(logits).tolist() == pytest.approx(expected, rel=1e-6)


def test_class_energy_reads_the_backbones_logits() -> None:
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
    y = np.array([0, 0, 1, 1])
    model = TabEBM(FixedLogits()).fit(X, y)
    z = torch.tensor([[0.3, -0.7], [1.5, 2.0]])
    a, b = torch.linspace(-1, 1, 2), torch.linspace(0.5, -0.5, 2)
    manual = -torch.logsumexp(torch.stack([z @ a, z @ b + 0.3], 1), 1)
    assert torch.allclose(model.class_energy(0)(z), manual)
    # energy() of a table encodes it first (standardisation with the fit's mean and std)
    mean, std = X.mean(0), X.std(0)
    zt = torch.as_tensor((X[:2] - mean) / std, dtype=torch.float32)
    expected = -torch.logsumexp(torch.stack([zt @ a, zt @ b + 0.3], 1), 1)
    assert model.energy(X[:2], 1) == pytest.approx(expected.numpy(), rel=1e-5)


def test_surrogate_task_is_class_rows_against_corners() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    y = np.repeat([0, 1, 2], 10)
    backbone = FixedLogits()
    TabEBM(backbone, alpha=4.0).fit(X, y)
    assert len(backbone.fits) == 3
    for (Xe, ye), cls in zip(backbone.fits, (0, 1, 2), strict=True):
        assert ye.tolist() == [0] * 10 + [1] * 4
        Z = (X - X.mean(0)) / X.std(0)
        np.testing.assert_allclose(Xe[:10].numpy(), Z[y == cls], rtol=1e-5, atol=1e-6)
        negatives = Xe[10:].numpy()
        assert np.all(np.abs(negatives) == 4.0)


@pytest.mark.parametrize("d", [3, 7, 20])
def test_surrogate_negatives_are_two_antipodal_pairs_of_corners(d: int) -> None:
    neg = surrogate_negatives(d, 5.0, np.random.default_rng(d))
    assert neg.shape == (4, d)
    assert np.all(np.abs(neg) == 5.0)
    assert len({tuple(r) for r in neg}) == 4
    for row in neg:
        assert any(np.array_equal(-row, other) for other in neg)


def test_surrogate_negatives_low_dimensions() -> None:
    two = surrogate_negatives(2, 5.0, np.random.default_rng(0))
    assert {tuple(r) for r in two} == {(-5, -5), (5, 5), (-5, 5), (5, -5)}
    one = surrogate_negatives(1, 2.0, np.random.default_rng(0))
    assert sorted(one[:, 0].tolist()) == [-2.0, 2.0]
    with pytest.raises(InputError, match="alpha"):
        surrogate_negatives(3, -1.0, np.random.default_rng(0))


def test_defaults_are_the_reference_implementations() -> None:
    model = TabEBM()
    assert model.alpha == 5.0
    assert model.sgld_steps == TABEBM_SGLD_STEPS == 200
    assert model.sgld_step_size == TABEBM_SGLD_STEP_SIZE == 0.1
    assert model.sgld_noise_std == TABEBM_SGLD_NOISE_STD == 0.01
    assert model.start_noise_std == TABEBM_START_NOISE_STD == 0.01


def test_sgld_moves_chains_down_the_energy() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 3)) * 2.0
    y = np.zeros(20, dtype=int)
    # big steps so that 200 steps reach the quadratic energy's minimum (the class mean)
    model = TabEBM(QuadraticLogits(), sgld_step_size=50.0, sgld_noise_std=0.0).fit(X, y)
    gen = torch.Generator().manual_seed(0)
    z = model.sample_encoded(0, 50, gen)
    start_energy = model.class_energy(0)(model.class_rows_[0]).mean()
    assert model.class_energy(0)(z).mean() < 0.1 * start_energy
    assert z.abs().max() < 0.2  # standardised class mean is 0


def test_zero_steps_returns_jittered_real_rows() -> None:
    X = np.arange(20.0).reshape(10, 2)
    y = np.repeat([0, 1], 5)
    model = TabEBM(FixedLogits(), sgld_steps=0, start_noise_std=0.0).fit(X, y)
    X_syn, y_syn = model.sample(7, seed=3)
    for row, label in zip(X_syn, y_syn, strict=True):
        assert any(np.allclose(row, r, atol=1e-5) for r in X[y == label])


def test_sample_shapes_dtypes_and_labels_numpy(mixed_table) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = np.repeat([3, 7, 9], 10)
    X_syn, y_syn = TabEBM(sgld_steps=20).fit(X, y).sample(11, seed=0)
    assert isinstance(X_syn, np.ndarray)
    assert X_syn.dtype == np.float32
    assert X_syn.shape == (33, 4)
    assert isinstance(y_syn, np.ndarray)
    assert y_syn.dtype == y.dtype
    assert y_syn.tolist() == [3] * 11 + [7] * 11 + [9] * 11
    assert np.isfinite(X_syn).all()


def test_sample_per_class_counts_mapping() -> None:
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.array(["u"] * 12 + ["v"] * 8)
    X_syn, y_syn = TabEBM(sgld_steps=5).fit(X, y).sample({"u": 2, "v": 5}, seed=0)
    assert X_syn.shape == (7, 3)
    assert y_syn.tolist() == ["u", "u", "v", "v", "v", "v", "v"]
    with pytest.raises(InputError, match="not seen in fit"):
        TabEBM(sgld_steps=5).fit(X, y).sample({"w": 2})


def test_synthetic_rows_stay_near_their_class() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 0.5, size=(25, 2)), rng.normal(3, 0.5, size=(25, 2))])
    y = np.repeat([0, 1], 25)
    X_syn, y_syn = TabEBM().fit(X, y).sample(100, seed=0)
    assert (X_syn[y_syn == 0].mean(0) < -2).all()
    assert (X_syn[y_syn == 1].mean(0) > 2).all()
    # new rows, not copies of the training rows
    assert not any(np.isclose(r, X, atol=1e-6).all(axis=1).any() for r in X_syn[:10])


def test_same_seed_same_rows_other_seed_other_rows(mixed_table) -> None:
    X, y = mixed_table
    model = TabEBM(sgld_steps=30, seed=1).fit(X, y)
    a, ya = model.sample(15, seed=5)
    b, yb = model.sample(15, seed=5)
    c, _ = model.sample(15, seed=6)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_series_equal(ya, yb)
    assert not a["x"].equals(c["x"])
    refit, _ = TabEBM(sgld_steps=30, seed=1).fit(X, y).sample(15, seed=5)
    pd.testing.assert_frame_equal(a, refit)
    gen = torch.Generator().manual_seed(5)
    via_gen, _ = model.sample(15, generator=gen)
    pd.testing.assert_frame_equal(a, via_gen)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]), [0, 0, 1], "missing values"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0]]), [0, 0, 1], "non-finite"),
        (np.zeros((4, 2)), [0, 0, 0, 1], r"class\(es\) \[1\] have a single row"),
        (np.zeros(5), [0, 0, 1, 1, 1], "2-D table"),
        (np.zeros((5, 2, 2)), [0, 0, 1, 1, 1], "2-D table"),
        (np.zeros((5, 0)), [0, 0, 1, 1, 1], "no feature columns"),
        (np.zeros((4, 2)), [0, 0, 1], "has 3 labels but X has 4 rows"),
        (np.zeros((4, 2)), [[0, 0], [1, 1]], "1-D array of class labels"),
        (np.zeros((4, 2)), [0.5, 0.5, 1.2, 1.2], "continuous target"),
        (np.zeros((4, 2)), [0, None, 1, 1], "missing label"),
    ],
)
def test_bad_input_raises_input_error(X, y, match) -> None:
    with pytest.raises(InputError, match=match):
        TabEBM().fit(X, y)


def test_missing_values_in_a_dataframe_name_the_column(mixed_table) -> None:
    X, y = mixed_table
    X = X.copy()
    X.loc[3, "colour"] = None
    with pytest.raises(InputError, match=r"'colour' \(1\)"):
        TabEBM().fit(X, y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"sgld_steps": -1}, "sgld_steps"),
        ({"sgld_step_size": float("nan")}, "sgld_step_size"),
        ({"seed": 1.5}, "seed"),
        ({"backbone": "nope"}, "unknown name 'nope'"),
        ({"backbone": object()}, "backbone: expected a name"),
    ],
)
def test_bad_settings_raise_input_error(kwargs, match) -> None:
    with pytest.raises(InputError, match=match):
        TabEBM(**kwargs)


def test_sample_before_fit_and_bad_counts() -> None:
    with pytest.raises(InputError, match="call fit"):
        TabEBM().sample(3)
    model = TabEBM(sgld_steps=1).fit(np.zeros((4, 2)) + np.arange(4)[:, None], [0, 0, 1, 1])
    with pytest.raises(InputError, match="n_per_class"):
        model.sample(0)
    with pytest.raises(InputError, match="not both"):
        model.sample(2, seed=1, generator=torch.Generator())


def test_tabpfn_backbone_needs_local_weights(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("TABPFN_MODEL_PATH", raising=False)
    with pytest.raises(InputError, match="never downloads"):
        TabEBM("tabpfn")
    with pytest.raises(InputError, match="is not a file"):
        TabEBM("tabpfn", backbone_kwargs={"model_path": tmp_path / "missing.ckpt"})
    ckpt = tmp_path / "tabpfn.ckpt"
    ckpt.write_bytes(b"")
    monkeypatch.setitem(__import__("sys").modules, "tabpfn", None)  # as if not installed
    with pytest.raises(InputError, match="needs the tabpfn package"):
        TabEBM("tabpfn", backbone_kwargs={"model_path": ckpt})


def test_default_backbone_falls_back_to_mlp_for_wide_tables() -> None:
    from polyfold.tabular.pfn import default_checkpoint

    X = np.random.default_rng(0).normal(size=(12, 70))
    y = [0] * 6 + [1] * 6
    if default_checkpoint() is None:  # the default is the MLP ensemble already
        assert TabEBM().fit(X, y).backbone.name == "mlp"
        return
    with pytest.warns(UserWarning, match="70 encoded features"):
        model = TabEBM(sgld_steps=2).fit(X, y)
    assert model.backbone.name == "mlp"
    assert model.sample(3, seed=0)[0].shape == (6, 70)
    with pytest.raises(InputError, match="at most 64"):
        TabEBM("pfn").fit(X, y)


def test_sample_on_step_counts_each_class_steps_and_keeps_the_rows(mixed_table) -> None:
    X, y = mixed_table
    model = TabEBM("logistic", sgld_steps=5, seed=0).fit(X, y)
    calls: list[tuple[object, int]] = []
    X_a, _ = model.sample(3, seed=1)
    X_b, _ = model.sample(3, seed=1, on_step=lambda c, k: calls.append((c, k)))
    assert calls == [(c, k) for c in ("a", "b") for k in range(1, 6)]
    pd.testing.assert_frame_equal(X_a, X_b)
