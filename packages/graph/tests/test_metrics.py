"""Graph and molecule metrics: orbit counts, NSPDK, benchmark MMDs, FCD, molecule table."""

import math

import networkx as nx
import numpy as np
import pytest
import torch
from rdkit import Chem

from polyfold.core.errors import InputError
from polyfold.graph import metrics
from polyfold.graph.data import community_small


@pytest.mark.parametrize(
    "graph",
    [
        nx.gnp_random_graph(11, 0.35, seed=1),
        nx.gnp_random_graph(10, 0.7, seed=2),
        nx.barabasi_albert_graph(12, 2, seed=3),
        nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 4)),
        nx.lollipop_graph(4, 3),
        nx.Graph([(0, 1), (2, 3), (3, 4), (4, 2), (5, 5)]),  # disconnected, isolated, self-loop
    ],
)
def test_orbit_counts_match_brute_force(graph):
    fast = metrics.orbit_counts(graph)
    assert fast.shape == (graph.number_of_nodes(), 15)
    np.testing.assert_array_equal(fast, metrics.orbit_counts_bruteforce(graph))


def test_orbit_counts_known_graphlets():
    k4 = metrics.orbit_counts(nx.complete_graph(4))
    assert (k4[:, 14] == 1).all()
    assert (k4[:, 3] == 3).all()
    assert (k4[:, 0] == 3).all()
    c4 = metrics.orbit_counts(nx.cycle_graph(4))
    assert (c4[:, 8] == 1).all()
    assert (c4[:, 1] == 2).all()
    assert (c4[:, 2] == 1).all()
    star = metrics.orbit_counts(nx.star_graph(3))
    assert star[0, 7] == 1
    assert (star[1:, 6] == 1).all()
    assert star[0, 2] == 3
    paw = metrics.orbit_counts(nx.Graph([(0, 1), (1, 2), (2, 0), (2, 3)]))
    assert paw[3, 9] == 1
    assert paw[2, 11] == 1
    assert paw[0, 10] == paw[1, 10] == 1


def _mol_graphs(smiles):
    return metrics.mols_to_nx([Chem.MolFromSmiles(s) for s in smiles])


SET_A = ["CCO", "c1ccccc1", "CC(=O)N", "C#CC", "OC1CC1", "CN(C)C=O"]
SET_B = ["FC(F)F", "CCCCCC", "N#N", "O=C=O", "CC(C)(C)C", "NCCN"]


def test_nspdk_features_are_normalised_and_permutation_invariant():
    g = _mol_graphs(["CC(=O)Nc1ccccc1"])[0]
    feats = metrics.nspdk_features(g)
    assert math.isclose(sum(v * v for v in feats.values()), 1.0, rel_tol=1e-12)
    perm = np.random.default_rng(0).permutation(g.number_of_nodes())
    relabelled = nx.relabel_nodes(g, dict(enumerate(perm.tolist())))
    other = metrics.nspdk_features(relabelled)
    assert set(other) == set(feats)
    assert all(math.isclose(other[k], feats[k]) for k in feats)


def test_nspdk_sees_labels():
    a = metrics.nspdk_features(_mol_graphs(["CCO"])[0])
    b = metrics.nspdk_features(_mol_graphs(["CCN"])[0])
    assert a != b


def test_nspdk_mmd_zero_on_itself_positive_otherwise():
    ga, gb = _mol_graphs(SET_A), _mol_graphs(SET_B)
    assert metrics.nspdk_mmd(ga, list(reversed(ga))) == pytest.approx(0.0, abs=1e-15)
    d_ab = metrics.nspdk_mmd(ga, gb)
    assert d_ab > 0.05
    assert metrics.nspdk_mmd(ga, ga[:3] + gb[:3]) < d_ab  # a half-way set is closer


def test_nspdk_mmd_is_linear_kernel_mmd():
    ga, gb = _mol_graphs(SET_A), _mol_graphs(SET_B)
    keys = sorted({k for g in ga + gb for k in metrics.nspdk_features(g)})
    pos = {k: i for i, k in enumerate(keys)}

    def mat(gs):
        m = np.zeros((len(gs), len(keys)))
        for r, g in enumerate(gs):
            for k, v in metrics.nspdk_features(g).items():
                m[r, pos[k]] = v
        return m

    x, y = mat(ga), mat(gb)
    expected = (x @ x.T).mean() + (y @ y.T).mean() - 2 * (x @ y.T).mean()
    assert metrics.nspdk_mmd(ga, gb) == pytest.approx(expected, rel=1e-10)


def test_graph_mmds_zero_for_identical_sets_positive_for_different():
    comm = community_small(20, seed=0)
    same = metrics.graph_mmds(comm, list(reversed(comm)))
    assert set(same) == {"degree", "clustering", "orbit", "spectral"}
    assert all(abs(v) < 1e-12 for v in same.values())
    trees = [nx.random_labeled_tree(16, seed=k) for k in range(20)]
    diff = metrics.graph_mmds(trees, comm)
    assert all(v > 1e-3 for v in diff.values()), diff


def test_degree_mmd_closed_form():
    # pmfs [0, 1] (one edge) and [1, 0] (two isolated nodes): EMD 1, k = exp(-1/2)
    edge, isolated = nx.Graph([(0, 1)]), nx.empty_graph(2)
    assert metrics.degree_mmd([edge], [isolated]) == pytest.approx(2 - 2 * math.exp(-0.5))


def test_spectral_mmd_saturates_when_spectra_are_bins_apart():
    # K6 spectra are identical (k(ref, ref) = 1); stars of 4, 6 and 9 nodes are tens of bins
    # from K6 and from each other, so only the diagonal of k(gen, gen) survives: 1 + 1/3.
    ref = [nx.complete_graph(6)] * 3
    gen = [nx.star_graph(k) for k in (3, 5, 8)]
    assert metrics.spectral_mmd(ref, gen) == pytest.approx(1 + 1 / 3, abs=1e-9)


def test_mmd_rejects_empty_sets():
    with pytest.raises(InputError, match="non-empty"):
        metrics.degree_mmd([nx.Graph()], [nx.path_graph(3)])


def test_molecule_metrics_counts():
    train = ["CCO", "CCN"]
    test = ["CCO", "CCC", "C=O", "CN"]
    raw = ["OCC", "CCO", None, "CCC", "not a smiles"]
    out = metrics.molecule_metrics(raw, train, test, fcd=False)
    assert out["validity_wo_correction"] == pytest.approx(3 / 5)
    assert out["uniqueness"] == pytest.approx(2 / 3)  # {CCO, CCC} among 3 valid
    assert out["novelty"] == pytest.approx(1 / 2)  # CCC is new, CCO is not
    assert math.isnan(out["fcd"])
    corrected = ["CCO", "CCO", "C", "CCC", "CC"]
    out2 = metrics.molecule_metrics(raw, train, test, corrected=corrected, fcd=False)
    assert out2["validity_wo_correction"] == pytest.approx(3 / 5)
    assert out2["uniqueness"] == pytest.approx(4 / 5)
    same = metrics.molecule_metrics(test, train, test, fcd=False)
    assert same["nspdk"] == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(InputError, match="test_smiles"):
        metrics.molecule_metrics(raw, train, ["C1C"], fcd=False)


def test_fcd_uses_weights_only_loading(monkeypatch):
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    scorer = metrics.FCDScorer()
    assert seen == [True]
    ref = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCC", "C1CCCCC1", "CN", "OCCO"]
    far = ["FC(F)(F)C(F)(F)F", "ClCCl", "BrCBr", "IC", "FC(F)F", "ClC(Cl)Cl", "BrC(Br)Br", "ICI"]
    act = scorer.activations(ref)
    assert act.shape == (8, 512)
    d_same = scorer(ref, list(reversed(ref)))
    d_far = scorer(far, ref)
    assert abs(d_same) < 1e-3
    assert d_far > 1.0
