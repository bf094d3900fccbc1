"""Molecules as GDSS tensors, through rdkit.

Encoding (GDSS, Jo et al. 2022): hydrogens are implicit, the molecule is kekulised, node ``i``
gets a one-hot row over the dataset's atom types (no padding class: padding rows are all zero and
masked out), and ``adj[i, j]`` is the bond order divided by :data:`BOND_SCALE` (single 1/3,
double 2/3, triple 1, no bond 0). GDSS itself stores the orders 1, 2, 3; the polyfold encoding
divides them by three so both components live on the same [0, 1] scale. Formal charges are not
encoded (GDSS encodes atomic numbers only); they come back on decoding from the valence rule.

Decoding follows GDSS's ``gen_mol`` (itself from MoFlow):

- quantisation: a node exists where the mask is set and some feature is > 0.5, its type is the
  first such feature (GDSS thresholds ``x > 0.5`` and appends a virtual class); bond orders are
  ``round``-ed with the thresholds 0.5 / 1.5 / 2.5 on the bond-order scale;
- valency handling while bonds are added: an N, O or S atom that exceeds its default valence by
  exactly one gets formal charge +1 (``[N+]``, ``[O+]``, ``[S+]``);
- *validity without correction*: the molecule passes rdkit's valence check as built;
- *correction* (MoFlow): while some atom is over-valent, the highest-order bond of that atom loses
  one order (a single bond is removed); then the largest connected fragment is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.graph.tensors import GraphTensors

__all__ = [
    "ATOM_VALENCY",
    "BOND_SCALE",
    "QM9_ATOMS",
    "ZINC_ATOMS",
    "encode_mol",
    "encode_smiles",
    "mol_to_pyg",
    "mols_to_smiles",
    "parse_smiles",
    "pyg_to_mol",
    "tensors_to_mols",
]

RDLogger.DisableLog("rdApp.*")

QM9_ATOMS: tuple[str, ...] = ("C", "N", "O", "F")
ZINC_ATOMS: tuple[str, ...] = ("C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
BOND_SCALE = 3.0
"""Bond order ``k`` is stored as ``k / BOND_SCALE`` in the adjacency."""

ATOM_VALENCY: dict[str, int] = {
    "C": 4, "N": 3, "O": 2, "F": 1, "P": 3, "S": 2, "Cl": 1, "Br": 1, "I": 1,
}  # fmt: skip
_BOND_TYPES = {
    1: Chem.BondType.SINGLE,
    2: Chem.BondType.DOUBLE,
    3: Chem.BondType.TRIPLE,
}
_BOND_ORDER = {bt: k for k, bt in _BOND_TYPES.items()}


# ----------------------------------------------------------------------------------- encoding


def parse_smiles(smiles: str, *, where: str = "smiles") -> Chem.Mol:
    """Parse one SMILES string, raising :class:`InputError` when rdkit cannot read it."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise InputError(f"{where}: expected a non-empty SMILES string, got {smiles!r}")
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None:
        raise InputError(f"{where}: rdkit cannot parse the SMILES {smiles!r}")
    return mol


def _kekulised_heavy(mol: Chem.Mol, where: str) -> Chem.Mol:
    mol = Chem.RemoveHs(Chem.Mol(mol))
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception as err:  # rdkit raises its own KekulizeException
        raise InputError(f"{where}: cannot kekulise the molecule ({err})") from None
    return mol


def encode_mol(mol: Chem.Mol, atoms: Sequence[str], max_nodes: int, *, where: str = "mol"):
    """One molecule as ``(x (max_nodes, F), adj (max_nodes, max_nodes), n_atoms)`` numpy arrays.

    ``x`` is the one-hot atom type, ``adj`` the kekulised bond order over :data:`BOND_SCALE`.
    """
    if mol is None:
        raise InputError(f"{where}: expected an rdkit molecule, got None")
    mol = _kekulised_heavy(mol, where)
    n = mol.GetNumAtoms()
    if n == 0 or all(a.GetAtomicNum() == 1 for a in mol.GetAtoms()):
        raise InputError(f"{where}: the molecule is empty (no heavy atoms)")
    if n > max_nodes:
        raise InputError(f"{where}: {n} heavy atoms, more than max_nodes={max_nodes}")
    index = {sym: k for k, sym in enumerate(atoms)}
    x = np.zeros((max_nodes, len(atoms)), dtype=np.float32)
    adj = np.zeros((max_nodes, max_nodes), dtype=np.float32)
    for atom in mol.GetAtoms():
        sym = atom.GetSymbol()
        if sym not in index:
            raise InputError(f"{where}: atom type {sym!r} is not one of {tuple(atoms)}")
        x[atom.GetIdx(), index[sym]] = 1.0
    for bond in mol.GetBonds():
        order = _BOND_ORDER.get(bond.GetBondType())
        if order is None:
            raise InputError(f"{where}: unsupported bond type {bond.GetBondType()}")
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        adj[i, j] = adj[j, i] = order / BOND_SCALE
    return x, adj, n


def encode_smiles(
    smiles: Sequence[str], atoms: Sequence[str] = QM9_ATOMS, max_nodes: int = 9
) -> GraphTensors:
    """Encode SMILES strings as a :class:`~polyfold.graph.tensors.GraphTensors` batch."""
    if isinstance(smiles, str):
        raise InputError("smiles: expected a list of SMILES strings, got one string")
    if len(smiles) == 0:
        raise InputError("smiles: expected at least one SMILES string, got none")
    if max_nodes < 1:
        raise InputError(f"max_nodes: expected an integer >= 1, got {max_nodes}")
    xs, adjs, mask = [], [], np.zeros((len(smiles), max_nodes), dtype=bool)
    for k, smi in enumerate(smiles):
        where = f"smiles[{k}]"
        x, adj, n = encode_mol(parse_smiles(smi, where=where), atoms, max_nodes, where=where)
        xs.append(x)
        adjs.append(adj)
        mask[k, :n] = True
    return GraphTensors(
        x=torch.from_numpy(np.stack(xs)),
        adj=torch.from_numpy(np.stack(adjs)),
        mask=torch.from_numpy(mask),
    )


# ----------------------------------------------------------------------------------- decoding


def _valence_violation(mol: Chem.RWMol) -> tuple[int, int] | None:
    """``None`` when rdkit's valence check passes, else ``(atom index, its bond-order sum)``.

    The atom comes from rdkit's message (``... atom # 3 N ...``), as in GDSS; its valence is
    counted from the bonds rather than parsed, so the message's exact wording does not matter.
    """
    try:
        Chem.SanitizeMol(mol, sanitizeOps=Chem.SanitizeFlags.SANITIZE_PROPERTIES)
        return None
    except Exception as err:  # AtomValenceException and friends
        found = re.search(r"#\s*(\d+)", str(err))
        if found is None:
            raise RuntimeError(f"unexpected rdkit sanitisation error: {err}") from None
        idx = int(found.group(1))
        bonds = mol.GetAtomWithIdx(idx).GetBonds()
        return idx, round(sum(b.GetBondTypeAsDouble() for b in bonds))


def _construct(symbols: list[str], bonds: np.ndarray) -> Chem.RWMol:
    """GDSS ``construct_mol``: add atoms, then bonds one by one with the +1 charge rule."""
    mol = Chem.RWMol()
    for sym in symbols:
        mol.AddAtom(Chem.Atom(sym))
    for start, end in zip(*np.nonzero(np.tril(bonds, -1)), strict=True):
        mol.AddBond(int(start), int(end), _BOND_TYPES[int(bonds[start, end])])
        bad = _valence_violation(mol)
        if bad is not None:
            idx, valence = bad
            atom = mol.GetAtomWithIdx(idx)
            sym = atom.GetSymbol()
            if sym in ("N", "O", "S") and valence - ATOM_VALENCY[sym] == 1:
                atom.SetFormalCharge(1)
    return mol


def _correct(mol: Chem.RWMol) -> Chem.RWMol:
    """MoFlow/GDSS ``correct_mol``: lower the highest-order bond of an over-valent atom."""
    while (bad := _valence_violation(mol)) is not None:
        idx = bad[0]
        queue = [
            (int(_BOND_ORDER.get(b.GetBondType(), 1)), b.GetBeginAtomIdx(), b.GetEndAtomIdx())
            for b in mol.GetAtomWithIdx(idx).GetBonds()
        ]
        if not queue:  # an isolated atom cannot be over-valent; give up rather than loop
            break
        queue.sort(key=lambda item: item[0], reverse=True)
        order, start, end = queue[0]
        mol.RemoveBond(start, end)
        if order - 1 >= 1:
            mol.AddBond(start, end, _BOND_TYPES[order - 1])
    return mol


def _canonical_mol(mol: Chem.Mol, largest_fragment: bool) -> Chem.Mol | None:
    """GDSS ``valid_mol_can_with_seg``: through SMILES, keeping the longest fragment."""
    smiles = Chem.MolToSmiles(mol, isomericSmiles=True)
    if largest_fragment and "." in smiles:
        smiles = max(smiles.split("."), key=len)
    return Chem.MolFromSmiles(smiles)


def _quantise(x: Tensor, adj: Tensor, mask: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atom-type index (-1: no atom) and integer bond orders, GDSS thresholds."""
    hot = (x > 0.5) & mask.unsqueeze(-1)
    exists = hot.any(-1)
    types = torch.where(
        exists, hot.to(torch.int8).argmax(-1), torch.full_like(exists, -1, dtype=torch.long)
    )
    orders = (adj + adj.transpose(-1, -2)) * (0.5 * BOND_SCALE)
    bonds = torch.zeros_like(orders, dtype=torch.long)
    bonds[orders >= 0.5] = 1
    bonds[orders >= 1.5] = 2
    bonds[orders >= 2.5] = 3
    pair = exists.unsqueeze(-1) & exists.unsqueeze(-2)
    bonds = bonds * pair
    bonds = bonds * (1 - torch.eye(bonds.shape[-1], dtype=torch.long))
    return types.numpy(), bonds.numpy(), exists.numpy()


def tensors_to_mols(
    x: Tensor,
    adj: Tensor,
    mask: Tensor | None = None,
    *,
    atoms: Sequence[str] = QM9_ATOMS,
    correct: bool,
) -> list[Chem.Mol | None]:
    """Decode a batch ``x (G, N, F)``, ``adj (G, N, N)``, ``mask (G, N)`` into molecules.

    With ``correct=False`` a graph that fails the valence check gives ``None`` (the fraction of
    non-``None`` entries is GDSS's *validity without correction*); a passing graph is returned
    whole, possibly with several fragments. With ``correct=True`` every graph goes through the
    valency correction and keeps its largest fragment (``None`` only if rdkit still rejects it).
    A graph with no atom left after quantisation gives ``None`` in both modes.
    """
    x, adj = torch.as_tensor(x).detach().float().cpu(), torch.as_tensor(adj).detach().float().cpu()
    if x.dim() == 2:
        x, adj = x.unsqueeze(0), adj.unsqueeze(0)
        mask = None if mask is None else torch.as_tensor(mask).unsqueeze(0)
    if x.dim() != 3 or adj.dim() != 3 or adj.shape != (x.shape[0], x.shape[1], x.shape[1]):
        raise InputError(
            f"x, adj: expected shapes (G, N, F) and (G, N, N), got {tuple(x.shape)} and "
            f"{tuple(adj.shape)}"
        )
    if x.shape[-1] != len(atoms):
        raise InputError(f"x: {x.shape[-1]} features but atoms has {len(atoms)} types {atoms}")
    mask = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    if mask.shape != x.shape[:2]:
        raise InputError(f"mask: expected shape {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
    types, bonds, exists = _quantise(x, adj, mask.bool().cpu())
    out: list[Chem.Mol | None] = []
    for g in range(x.shape[0]):
        keep = np.nonzero(exists[g])[0]
        if len(keep) == 0:  # no atom survived quantisation: no molecule
            out.append(None)
            continue
        symbols = [atoms[int(t)] for t in types[g, keep]]
        mol = _construct(symbols, bonds[g][np.ix_(keep, keep)])
        if correct:
            out.append(_canonical_mol(_correct(mol), largest_fragment=True))
        elif _valence_violation(mol) is None:
            out.append(_canonical_mol(mol, largest_fragment=False))
        else:
            out.append(None)
    return out


def mols_to_smiles(mols: Sequence[Chem.Mol | None]) -> list[str | None]:
    """Canonical SMILES of each molecule (``None`` stays ``None``)."""
    return [None if m is None else Chem.MolToSmiles(m) for m in mols]


# ------------------------------------------------------------------------------ torch_geometric


def mol_to_pyg(mol: Chem.Mol, *, atoms: Sequence[str] = ZINC_ATOMS):
    """A :class:`torch_geometric.data.Data` of one molecule (kekulised, hydrogens implicit).

    ``x`` (n, F) one-hot atom types over ``atoms``, ``edge_index`` (2, 2E) both directions,
    ``edge_attr`` (2E, 3) one-hot single/double/triple, ``formal_charge`` (n,) and ``smiles``.
    """
    from torch_geometric.data import Data

    if mol is None:
        raise InputError("mol: expected an rdkit molecule, got None")
    mol = _kekulised_heavy(mol, "mol")
    n = mol.GetNumAtoms()
    x, adj, _ = encode_mol(mol, atoms, max(n, 1))
    orders = np.rint(adj * BOND_SCALE).astype(np.int64)
    src, dst = np.nonzero(orders)
    edge_attr = torch.zeros(len(src), 3)
    edge_attr[torch.arange(len(src)), torch.from_numpy(orders[src, dst] - 1)] = 1.0
    charge = torch.tensor([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=torch.long)
    return Data(
        x=torch.from_numpy(x),
        edge_index=torch.from_numpy(np.stack([src, dst])).long(),
        edge_attr=edge_attr,
        formal_charge=charge,
        smiles=Chem.MolToSmiles(mol),
        num_nodes=n,
    )


def pyg_to_mol(data, *, atoms: Sequence[str] = ZINC_ATOMS) -> Chem.Mol:
    """Rebuild the molecule from :func:`mol_to_pyg`'s ``Data`` (formal charges if present)."""
    x = getattr(data, "x", None)
    if x is None or x.dim() != 2 or x.shape[0] == 0:
        raise InputError("data.x: expected a non-empty (n, F) one-hot atom-type tensor")
    if x.shape[1] != len(atoms):
        raise InputError(f"data.x: {x.shape[1]} features but atoms has {len(atoms)} types")
    edge_index = data.edge_index
    edge_attr = getattr(data, "edge_attr", None)
    if edge_attr is None:
        orders = torch.ones(edge_index.shape[1], dtype=torch.long)
    else:
        orders = edge_attr.argmax(-1) + 1
    mol = Chem.RWMol()
    charges = getattr(data, "formal_charge", None)
    for k, t in enumerate(x.argmax(-1).tolist()):
        atom = Chem.Atom(atoms[t])
        if charges is not None:
            atom.SetFormalCharge(int(charges[k]))
        mol.AddAtom(atom)
    for (i, j), order in zip(edge_index.t().tolist(), orders.tolist(), strict=True):
        if i < j:
            mol.AddBond(i, j, _BOND_TYPES[int(order)])
    out = mol.GetMol()
    try:
        Chem.SanitizeMol(out)
    except Exception as err:
        raise InputError(f"data: the graph is not a valid molecule ({err})") from None
    return out
