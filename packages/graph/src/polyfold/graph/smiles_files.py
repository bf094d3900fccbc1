"""A user's SMILES files in, molecule files out.

A SMILES file holds one molecule per line: the SMILES, optionally followed by whitespace and a
name; blank lines are skipped and a first line that rdkit cannot parse and that names a column
(``smiles``, ``SMILES,name``...) is taken as a header. Out: ``.smi`` (canonical SMILES), ``.sdf``
(rdkit's SDWriter, 2-D coordinates) or ``.json`` (a list of SMILES), all written atomically.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdDepictor

from polyfold.core.errors import InputError, reading
from polyfold.core.outputs import write_text
from polyfold.graph.chem import encode_mol
from polyfold.graph.tensors import GraphTensors

__all__ = [
    "MOLECULE_SUFFIXES",
    "encode_smiles_file",
    "parse_rows",
    "read_smiles_file",
    "write_molecules",
]

MOLECULE_SUFFIXES = (".smi", ".txt", ".sdf", ".json")


def read_smiles_file(path: Path, option: str) -> list[tuple[int, str]]:
    """``(line number, SMILES)`` of each molecule line of ``path`` (header and blanks skipped)."""
    if not path.is_file():
        raise InputError(f"{option} {path}: no such file")
    with reading(path, option):
        text = path.read_text(encoding="utf-8")
    if "\x00" in text:
        raise InputError(f"{option} {path}: not a text file (it holds NUL bytes)")
    rows = [
        (k, line.split()[0].split(",")[0])
        for k, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if rows and "smiles" in rows[0][1].lower() and Chem.MolFromSmiles(rows[0][1]) is None:
        rows = rows[1:]
    if not rows:
        raise InputError(f"{option} {path}: holds no SMILES (expected one per line)")
    return rows


def parse_rows(rows: Sequence[tuple[int, str]]) -> tuple[list[Any], list[tuple[int, str]]]:
    """rdkit molecules of ``rows`` (``None`` where invalid) and the invalid ``(line, SMILES)``."""
    mols = [Chem.MolFromSmiles(s) for _, s in rows]
    bad = [row for row, m in zip(rows, mols, strict=True) if m is None]
    return mols, bad


def encode_smiles_file(
    path: Path, atoms: Sequence[str], max_nodes: int, option: str = "--smiles"
) -> GraphTensors:
    """The molecules of a SMILES file as GDSS tensors; an unparsable SMILES, an atom type
    outside ``atoms`` or too many heavy atoms is an InputError naming the line."""
    rows = read_smiles_file(path, option)
    xs, adjs = [], []
    mask = np.zeros((len(rows), max_nodes), dtype=bool)
    for k, (line, smi) in enumerate(rows):
        where = f"{option} {path} line {line}"
        mol = Chem.MolFromSmiles(smi)
        if mol is None:
            raise InputError(f"{where}: rdkit cannot parse the SMILES {smi!r}")
        x, adj, n = encode_mol(mol, atoms, max_nodes, where=where)
        xs.append(x)
        adjs.append(adj)
        mask[k, :n] = True
    return GraphTensors(
        x=torch.from_numpy(np.stack(xs)),
        adj=torch.from_numpy(np.stack(adjs)),
        mask=torch.from_numpy(mask),
    )


def _sdf(mols: Sequence[Any]) -> str:
    buf = io.StringIO()
    writer = Chem.SDWriter(buf)
    for m in mols:
        m = Chem.Mol(m)
        rdDepictor.Compute2DCoords(m)
        m.SetProp("_Name", Chem.MolToSmiles(m))
        writer.write(m)
    writer.close()
    return buf.getvalue()


def write_molecules(mols: Sequence[Any], path: Path) -> int:
    """Write the valid molecules of ``mols`` by ``path``'s suffix (``.smi``/``.txt``, ``.sdf``,
    ``.json``) atomically; returns how many."""
    valid = [m for m in mols if m is not None]
    if path.suffix == ".sdf":
        write_text(path, _sdf(valid))
    elif path.suffix == ".json":
        smiles = [Chem.MolToSmiles(m) for m in valid]
        write_text(path, json.dumps({"smiles": smiles}, indent=1) + "\n")
    elif path.suffix in (".smi", ".txt"):
        write_text(path, "".join(Chem.MolToSmiles(m) + "\n" for m in valid))
    else:
        raise InputError(f"--out {path}: expected one of {', '.join(MOLECULE_SUFFIXES)}")
    return len(valid)
