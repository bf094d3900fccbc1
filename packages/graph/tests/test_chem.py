"""Molecules <-> GDSS tensors: round trips, valency handling, correction, PyG, errors."""

import pytest
import torch
from rdkit import Chem

from polyfold.core.errors import InputError
from polyfold.graph import chem
from polyfold.graph.data import load_qm9_smiles


def canon(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def smiles_of(mols):
    return [None if m is None else Chem.MolToSmiles(m) for m in mols]


@pytest.fixture(scope="module")
def qm9_smiles() -> list[str]:
    return load_qm9_smiles("train", limit=300)


def test_round_trip_on_qm9_molecules(qm9_smiles):
    neutral = [s for s in qm9_smiles if "+" not in s and "-" not in s]
    assert len(neutral) > 250
    batch = chem.encode_smiles(neutral, chem.QM9_ATOMS, 9)
    assert batch.x.shape == (len(neutral), 9, 4)
    for correct in (False, True):
        decoded = smiles_of(chem.tensors_to_mols(batch.x, batch.adj, batch.mask, correct=correct))
        assert decoded == [canon(s) for s in neutral]


def test_encoding_is_kekulised_bond_order_over_three():
    batch = chem.encode_smiles(["c1ccccc1", "C#N", "O=CO"], chem.QM9_ATOMS, 9)
    orders = torch.round(batch.adj * 3).long()
    benzene = orders[0][:6, :6]
    assert sorted(benzene[benzene > 0].tolist()) == [1] * 6 + [2] * 6  # alternating
    assert orders[1, 0, 1] == 3
    assert batch.adj[1, 0, 1] == 1.0
    assert torch.equal(batch.adj, batch.adj.transpose(1, 2))
    # one-hot rows on real atoms, zero rows on padding
    assert torch.equal(batch.x.sum(-1) > 0, batch.mask)
    assert batch.mask.sum(-1).tolist() == [6, 2, 3]


def test_zwitterions_decode_to_their_neutral_form(qm9_smiles):
    charged = [s for s in qm9_smiles if "+" in s]
    assert charged  # QM9 holds a few zwitterions; GDSS does not encode charges
    batch = chem.encode_smiles(charged, chem.QM9_ATOMS, 9)
    out = smiles_of(chem.tensors_to_mols(batch.x, batch.adj, batch.mask, correct=False))
    assert all(s is not None and "+" not in s and "-" not in s for s in out)


def test_valence_rule_gives_positive_nitrogen():
    batch = chem.encode_smiles(["C[N+](C)(C)C", "C[N+](C)=O"], chem.ZINC_ATOMS, 38)
    out = smiles_of(
        chem.tensors_to_mols(batch.x, batch.adj, batch.mask, atoms=chem.ZINC_ATOMS, correct=False)
    )
    assert out[0] == canon("C[N+](C)(C)C")
    assert out[1] == canon("C[N+](C)=O")


def test_quantisation_thresholds_absorb_noise():
    batch = chem.encode_smiles(["CC(=O)N", "C#CC"], chem.QM9_ATOMS, 9)
    gen = torch.Generator().manual_seed(0)
    noise = (torch.rand(batch.adj.shape, generator=gen) - 0.5) * (2 / 6 - 1e-3)  # < 1/6 each
    noise = (noise + noise.transpose(1, 2)) / 2
    x = batch.x * 0.9 + 0.04  # every class below 0.5 except the true one
    out = smiles_of(chem.tensors_to_mols(x, batch.adj + noise, batch.mask, correct=False))
    assert out == [canon("CC(=O)N"), canon("C#CC")]


def _graph(symbols, bonds, atoms=chem.QM9_ATOMS, n=9):
    x = torch.zeros(1, n, len(atoms))
    adj = torch.zeros(1, n, n)
    mask = torch.zeros(1, n, dtype=torch.bool)
    for i, s in enumerate(symbols):
        x[0, i, atoms.index(s)] = 1.0
        mask[0, i] = True
    for i, j, order in bonds:
        adj[0, i, j] = adj[0, j, i] = order / 3
    return x, adj, mask


def test_correction_repairs_an_overvalent_carbon():
    # a carbon with a double and three single bonds plus one more: valence 6
    x, adj, mask = _graph(
        ["C", "C", "C", "C", "O", "C"], [(0, 1, 1), (0, 2, 1), (0, 3, 1), (0, 4, 2), (0, 5, 1)]
    )
    assert chem.tensors_to_mols(x, adj, mask, correct=False) == [None]
    (fixed,) = chem.tensors_to_mols(x, adj, mask, correct=True)
    assert fixed is not None
    Chem.SanitizeMol(fixed)  # raises if any valence were still wrong
    assert max(a.GetTotalValence() for a in fixed.GetAtoms() if a.GetSymbol() == "C") <= 4


def test_correction_keeps_the_largest_fragment():
    x, adj, mask = _graph(["C", "C", "C", "O", "N"], [(0, 1, 1), (1, 2, 1), (3, 4, 1)])
    (whole,) = chem.tensors_to_mols(x, adj, mask, correct=False)
    assert Chem.MolToSmiles(whole) == canon("CCC.NO")
    (fixed,) = chem.tensors_to_mols(x, adj, mask, correct=True)
    assert Chem.MolToSmiles(fixed) == "CCC"


def test_empty_decoded_graph_is_none():
    x, adj, mask = _graph([], [])
    assert chem.tensors_to_mols(x, adj, mask, correct=False) == [None]
    assert chem.tensors_to_mols(x, adj, mask, correct=True) == [None]


@pytest.mark.parametrize(
    ("smiles", "message"),
    [
        (["CC", "C1CC"], r"smiles\[1\].*cannot parse"),
        (["C(C"], r"smiles\[0\].*cannot parse"),
        ([""], r"smiles\[0\].*non-empty"),
        (["[H][H]"], r"empty"),
        (["CCl"], r"'Cl' is not one of"),
        (["CCCCCCCCCC"], r"10 heavy atoms, more than max_nodes=9"),
        ([], r"at least one"),
    ],
)
def test_bad_smiles_raise_input_error(smiles, message):
    with pytest.raises(InputError, match=message):
        chem.encode_smiles(smiles, chem.QM9_ATOMS, 9)


def test_empty_molecule_raises():
    with pytest.raises(InputError, match="empty"):
        chem.encode_mol(Chem.Mol(), chem.QM9_ATOMS, 9)


def test_decoding_checks_shapes():
    with pytest.raises(InputError, match="features but atoms"):
        chem.tensors_to_mols(torch.zeros(1, 9, 5), torch.zeros(1, 9, 9), correct=False)
    with pytest.raises(InputError, match="expected shapes"):
        chem.tensors_to_mols(torch.zeros(1, 9, 4), torch.zeros(1, 8, 8), correct=False)


@pytest.mark.parametrize(
    "smiles", ["c1ccccc1O", "C[N+](C)(C)CC(=O)[O-]", "FC(Cl)(Br)I", "CS(=O)(=O)N"]
)
def test_pyg_round_trip(smiles):
    mol = Chem.MolFromSmiles(smiles)
    data = chem.mol_to_pyg(mol)
    n, e = mol.GetNumAtoms(), mol.GetNumBonds()
    assert data.x.shape == (n, len(chem.ZINC_ATOMS))
    assert data.edge_index.shape == (2, 2 * e)
    assert data.edge_attr.shape == (2 * e, 3)
    assert Chem.MolToSmiles(chem.pyg_to_mol(data)) == canon(smiles)


def test_pyg_errors():
    with pytest.raises(InputError, match="empty"):
        chem.mol_to_pyg(Chem.MolFromSmiles("[H][H]"))
    data = chem.mol_to_pyg(Chem.MolFromSmiles("CC"))
    data.edge_attr = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # make it C#C, fine
    assert Chem.MolToSmiles(chem.pyg_to_mol(data)) == "C#C"
    bad = chem.mol_to_pyg(Chem.MolFromSmiles("FC"))
    bad.edge_attr = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # F=C: over-valent F
    with pytest.raises(InputError, match="not a valid molecule"):
        chem.pyg_to_mol(bad)
