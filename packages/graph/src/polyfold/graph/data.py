"""Graph datasets as dense GDSS tensors: QM9, ZINC250k, community-small, grid, ego-small, ENZYMES.

Every dataset ends as :class:`GraphTensors` (node features ``x (G, N, F)``, adjacency
``adj (G, N, N)``, node mask ``(G, N)``). Molecules use :mod:`polyfold.graph.chem`'s encoding;
generic graphs use GDSS's ``deg`` node features (one-hot node degree) and a 0/1 adjacency.

Loaders read the benchmarks' own formats and never unpickle: QM9 from the CSV files the
``qm9pack`` package ships, ZINC250k from its public CSV (``smiles,logP,qed,SAS``), ego-small from
the Citeseer ``.cites`` edge list (LINQS release), ENZYMES from the TU text files. Community-small
and grid are generated with networkx exactly as the GraphRNN / EDP-GNN benchmark code does.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import networkx as nx
import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.core.extras import install_hint
from polyfold.graph.chem import QM9_ATOMS, ZINC_ATOMS, encode_smiles
from polyfold.graph.tensors import GraphTensors

__all__ = [
    "GraphTensors",
    "cache_dir",
    "community_small",
    "graphs_to_tensors",
    "grid_graphs",
    "load_ego_small",
    "load_enzymes",
    "load_qm9",
    "load_qm9_smiles",
    "load_tu_graphs",
    "load_zinc250k",
    "load_zinc250k_smiles",
    "qm9_test_indices",
    "require_qm9",
    "tensors_to_graphs",
]

QM9_MAX_NODES = 9
ZINC_MAX_NODES = 38
_CACHE_VERSION = "1"


# ------------------------------------------------------------------------------------- caching


def cache_dir() -> Path:
    """``$POLYFOLD_GRAPH_CACHE``, else ``$XDG_CACHE_HOME/polyfold/graph`` (``~/.cache/...``)."""
    env = os.environ.get("POLYFOLD_GRAPH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "polyfold" / "graph"


def _cached(name: str, build) -> tuple[GraphTensors, list[str]]:
    """Encoded tensors + SMILES cached as ``<name>.safetensors`` + ``<name>.json``."""
    root = cache_dir()
    tpath, jpath = root / f"{name}.safetensors", root / f"{name}.json"
    if tpath.exists() and jpath.exists():
        try:
            meta = json.loads(jpath.read_text())
            if meta.get("version") == _CACHE_VERSION:
                return GraphTensors.load(tpath), list(meta["smiles"])
        except (InputError, ValueError, KeyError):
            pass  # a stale or broken cache is rebuilt
    tensors, smiles = build()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp_t, tmp_j = tpath.with_suffix(".tmp.safetensors"), jpath.with_suffix(".tmp.json")
        tensors.save(tmp_t)
        tmp_j.write_text(json.dumps({"version": _CACHE_VERSION, "smiles": smiles}))
        os.replace(tmp_t, tpath)
        os.replace(tmp_j, jpath)
    except OSError:
        pass  # caching is an optimisation; a read-only home still works
    return tensors, smiles


# ------------------------------------------------------------------------------------------ QM9


def require_qm9(needed_for: str = "QM9") -> Path:
    """Check before work starts that QM9 (``qm9pack``, the ``[qm9]`` extra) is installed;
    returns its package folder. Found without importing it (its ``__init__`` needs
    ``pkg_resources``, which this module does not)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("qm9pack")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"{needed_for} needs QM9, the qm9pack package of polyfold-graph's [qm9] extra; "
            f"install it with {install_hint('graph', 'qm9')}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _qm9_files() -> list[Path]:
    root = require_qm9() / "data"
    files = [root / f"qm9_part{k}.csv" for k in (1, 2, 3)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise InputError(f"QM9: qm9pack data files missing: {missing}")
    return files


def _iter_qm9_rows() -> Iterator[tuple[int, str]]:
    """``(gdb index, SMILES)`` rows of qm9pack's CSVs (read directly, no pandas/pkg_resources)."""
    csv.field_size_limit(sys.maxsize)
    for path in _qm9_files():
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            i_idx, i_smi = header.index("Index"), header.index("SMILES")
            for row in reader:
                yield int(row[i_idx]), row[i_smi]


def qm9_test_indices(convention: str = "gdss") -> frozenset[int]:
    """The standard QM9 held-out split, as 0-based positions in GDB order (``gdb index - 1``).

    The split is GraphNVP/MoFlow's ``valid_idx_qm9.json`` (13,082 numbers, shipped here as
    ``splits/qm9_test_idx.txt``). MoFlow reads each number ``v`` as the 1-based GDB index
    (``v - 1``), so every test molecule is one of the 130,831 characterised ones;
    GDSS uses ``v`` directly as a 0-based row of its 133,885-row ``qm9.csv``, i.e. the molecule
    ``dsgdb9nsd_{v+1}``. ``convention`` picks ``"gdss"`` (default: the split GDSS's reported
    numbers use) or ``"moflow"``.
    """
    if convention not in ("gdss", "moflow"):
        raise InputError(f"convention: expected 'gdss' or 'moflow', got {convention!r}")
    text = resources.files("polyfold.graph").joinpath("splits/qm9_test_idx.txt").read_text()
    lines = (line for line in text.splitlines() if not line.startswith("#"))
    shift = 0 if convention == "gdss" else 1
    return frozenset(int(tok) - shift for line in lines for tok in line.split())


def _check_split(split: str) -> None:
    if split not in ("train", "test", "all"):
        raise InputError(f"split: expected 'train', 'test' or 'all', got {split!r}")


def _qm9_rows_cached() -> list[tuple[int, str]]:
    """All ``(gdb index, SMILES)`` rows, kept as one JSON file in :func:`cache_dir`."""
    path = cache_dir() / f"qm9_smiles_v{_CACHE_VERSION}.json"
    try:
        cached = json.loads(path.read_text())
        return list(zip(cached["gdb"], cached["smiles"], strict=True))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rows = list(_iter_qm9_rows())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.json")
        tmp.write_text(json.dumps({"gdb": [r[0] for r in rows], "smiles": [r[1] for r in rows]}))
        os.replace(tmp, path)
    except OSError:
        pass
    return rows


def _qm9_split_smiles(split: str, limit: int | None, convention: str = "gdss") -> list[str]:
    test = qm9_test_indices(convention)
    out: list[str] = []
    rows = _iter_qm9_rows() if limit is not None else _qm9_rows_cached()
    for gdb_index, smiles in rows:
        is_test = (gdb_index - 1) in test
        if split == "all" or (split == "test") == is_test:
            out.append(smiles)
            if limit is not None and len(out) >= limit:
                break
    return out


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit: expected None or an integer >= 1, got {limit!r}")


def load_qm9_smiles(
    split: str = "train", *, limit: int | None = None, convention: str = "gdss"
) -> list[str]:
    """QM9 SMILES (GDB-17 SMILES as shipped by qm9pack) of the standard train or test split.

    ``limit`` keeps the first ``limit`` molecules of the split (in GDB index order), reading only
    as much of the files as it needs; ``convention``: see :func:`qm9_test_indices`. The full
    list of SMILES is cached as JSON in :func:`cache_dir` after the first read.
    """
    _check_split(split)
    _check_limit(limit)
    return _qm9_split_smiles(split, limit, convention)


def _qm9_cache_name(split: str, convention: str) -> str:
    tag = split if split == "all" else f"{split}_{convention}"
    return f"qm9_{tag}_v{_CACHE_VERSION}"


def _cached_qm9(split: str, convention: str) -> tuple[GraphTensors, list[str]]:
    qm9_test_indices(convention)  # validates the name before anything is cached

    def build() -> tuple[GraphTensors, list[str]]:
        smiles = _qm9_split_smiles(split, None, convention)
        return encode_smiles(smiles, QM9_ATOMS, QM9_MAX_NODES), smiles

    return _cached(_qm9_cache_name(split, convention), build)


def load_qm9(
    split: str = "train",
    *,
    limit: int | None = None,
    return_smiles: bool = False,
    convention: str = "gdss",
) -> GraphTensors | tuple[GraphTensors, list[str]]:
    """QM9 as GDSS tensors: 9 heavy atoms at most, atom types C, N, O, F, kekulised bonds.

    ``split``: 'train', 'test' (the standard held-out split, see :func:`qm9_test_indices`) or
    'all'. The full split is encoded once and cached (safetensors + JSON) under
    :func:`cache_dir`, so later loads take well under a second. ``limit`` encodes only the first
    ``limit`` molecules (no cache). With ``return_smiles`` also returns the SMILES.
    """
    _check_split(split)
    _check_limit(limit)
    if limit is not None:
        smiles = _qm9_split_smiles(split, limit, convention)
        tensors = encode_smiles(smiles, QM9_ATOMS, QM9_MAX_NODES)
    else:
        tensors, smiles = _cached_qm9(split, convention)
    return (tensors, smiles) if return_smiles else tensors


# ------------------------------------------------------------------------------------- ZINC250k


def load_zinc250k_smiles(path: str | os.PathLike, *, limit: int | None = None) -> list[str]:
    """SMILES of the public ZINC250k CSV (``250k_rndm_zinc_drugs_clean_3.csv``).

    The file has a header with a ``smiles`` column (``smiles,logP,qed,SAS``); its SMILES carry a
    trailing newline inside the quotes, which is stripped.
    """
    _check_limit(limit)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ZINC250k CSV not found")
    out: list[str] = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "smiles" not in [f.strip() for f in reader.fieldnames]:
            raise InputError(f"{path}: expected a CSV header with a 'smiles' column")
        key = next(f for f in reader.fieldnames if f.strip() == "smiles")
        for row in reader:
            smi = (row.get(key) or "").strip()
            if not smi:
                raise InputError(f"{path}: empty SMILES on data row {len(out) + 1}")
            out.append(smi)
            if limit is not None and len(out) >= limit:
                break
    if not out:
        raise InputError(f"{path}: no molecules")
    return out


def load_zinc250k(
    path: str | os.PathLike,
    split: str = "all",
    *,
    test_idx: str | os.PathLike | Sequence[int] | None = None,
    max_nodes: int = ZINC_MAX_NODES,
    limit: int | None = None,
) -> GraphTensors:
    """ZINC250k as GDSS tensors (38 heavy atoms, 9 atom types).

    ``test_idx``: the held-out rows (0-based), either a sequence or a JSON file holding a list
    (the format of GDSS/MoFlow's ``valid_idx_zinc250k.json``); required for ``split`` 'train' or
    'test'.
    """
    _check_split(split)
    smiles = load_zinc250k_smiles(path, limit=limit)
    if split != "all":
        if test_idx is None:
            raise InputError(f"test_idx: needed for split={split!r} (a JSON list of row indices)")
        if isinstance(test_idx, (str, os.PathLike)):
            try:
                loaded = json.loads(Path(test_idx).read_text())
            except (OSError, ValueError) as err:
                raise InputError(f"{test_idx}: not a readable JSON list ({err})") from None
            if isinstance(loaded, dict) and len(loaded) == 1:
                loaded = next(iter(loaded.values()))
            test_idx = loaded
        held = {int(i) for i in test_idx}
        smiles = [s for k, s in enumerate(smiles) if (k in held) == (split == "test")]
    return encode_smiles(smiles, ZINC_ATOMS, max_nodes)


# ---------------------------------------------------------------------------- generic graphs


def graphs_to_tensors(
    graphs: Sequence[nx.Graph],
    max_nodes: int | None = None,
    *,
    max_feat: int | None = None,
) -> GraphTensors:
    """Generic graphs as GDSS tensors: 0/1 adjacency, node features one-hot degree (``deg``).

    ``max_feat`` is the number of degree classes (GDSS's ``max_feat_num``; default: the largest
    degree + 1). Self-loops are dropped. Node order is the graph's own order.
    """
    if len(graphs) == 0:
        raise InputError("graphs: expected at least one graph, got none")
    sizes = [g.number_of_nodes() for g in graphs]
    if min(sizes) == 0:
        raise InputError(f"graphs[{sizes.index(0)}]: the graph is empty (no nodes)")
    max_nodes = max(sizes) if max_nodes is None else max_nodes
    if max(sizes) > max_nodes:
        k = int(np.argmax(sizes))
        raise InputError(f"graphs[{k}]: {sizes[k]} nodes, more than max_nodes={max_nodes}")
    adj = np.zeros((len(graphs), max_nodes, max_nodes), dtype=np.float32)
    mask = np.zeros((len(graphs), max_nodes), dtype=bool)
    for k, g in enumerate(graphs):
        a = nx.to_numpy_array(g, nodelist=list(g.nodes()), dtype=np.float32, weight=None)
        np.fill_diagonal(a, 0.0)
        n = a.shape[0]
        adj[k, :n, :n] = (a > 0).astype(np.float32)
        mask[k, :n] = True
    deg = adj.sum(-1).astype(np.int64)
    top = int(deg.max())
    max_feat = top + 1 if max_feat is None else max_feat
    if top >= max_feat:
        raise InputError(f"max_feat: a node has degree {top}, needs max_feat >= {top + 1}")
    x = np.zeros((len(graphs), max_nodes, max_feat), dtype=np.float32)
    gi, ni = np.nonzero(mask)
    x[gi, ni, deg[gi, ni]] = 1.0
    return GraphTensors(torch.from_numpy(x), torch.from_numpy(adj), torch.from_numpy(mask))


def tensors_to_graphs(
    adj: Tensor, mask: Tensor | None = None, *, remove_isolates: bool = True
) -> list[nx.Graph]:
    """Dense adjacencies back to networkx graphs, GDSS's ``quantize`` + ``adjs_to_graphs``.

    An edge where ``adj >= 0.5``; self-loops are dropped; with ``remove_isolates`` (GDSS's
    choice) isolated nodes are removed and an empty result keeps one node.
    """
    adj = torch.as_tensor(adj).detach().float().cpu()
    if adj.dim() == 2:
        adj = adj.unsqueeze(0)
        mask = None if mask is None else torch.as_tensor(mask).unsqueeze(0)
    if adj.dim() != 3 or adj.shape[1] != adj.shape[2]:
        raise InputError(f"adj: expected shape (G, N, N), got {tuple(adj.shape)}")
    if mask is None:
        mask = torch.ones(adj.shape[:2], dtype=torch.bool)
    mask = torch.as_tensor(mask).bool().cpu()
    if mask.shape != adj.shape[:2]:
        raise InputError(f"mask: expected shape {tuple(adj.shape[:2])}, got {tuple(mask.shape)}")
    sym = ((adj + adj.transpose(1, 2)) * 0.5 >= 0.5).numpy()
    out = []
    for k in range(adj.shape[0]):
        keep = np.nonzero(mask[k].numpy())[0]
        a = sym[k][np.ix_(keep, keep)].astype(np.int64)
        np.fill_diagonal(a, 0)
        g = nx.from_numpy_array(a)
        if remove_isolates:
            g.remove_nodes_from(list(nx.isolates(g)))
            g = nx.convert_node_labels_to_integers(g)
            if g.number_of_nodes() == 0:
                g.add_node(0)
        out.append(g)
    return out


def _n_community(n_communities: int, max_nodes: int, rng: np.random.Generator) -> nx.Graph:
    """EDP-GNN's ``n_community`` (p_inter = 0.05), as GDSS's ``data_generators.py`` runs it."""
    size = max_nodes // n_communities
    p_bridge = 0.05 * 2 / ((n_communities - 1) * size)
    # EDP-GNN seeds the k-th community's G(size, 0.7) with k, as here
    g = nx.disjoint_union_all(
        [nx.gnp_random_graph(size, 0.7, seed=k) for k in range(n_communities)]
    )
    comms = [sorted(c) for c in nx.connected_components(g)]
    for i in range(len(comms)):
        for j in range(i + 1, len(comms)):
            bridged = False
            for a in comms[i]:
                for b in comms[j]:
                    if rng.random() < p_bridge:
                        g.add_edge(a, b)
                        bridged = True
            if not bridged:
                g.add_edge(comms[i][0], comms[j][0])
    return g


def community_small(n_graphs: int = 100, seed: int = 0) -> list[nx.Graph]:
    """Community-small as GDSS (from EDP-GNN) generates it: 2 communities, 12-20 nodes.

    Each graph draws ``max_nodes`` uniformly from 12..20, makes two communities of
    ``max_nodes // 2`` nodes, each ``nx.gnp_random_graph(size, 0.7, seed=k)`` (EDP-GNN's fixed
    per-community seed), and adds each inter-community edge with probability
    ``0.05 * 2 / size``, with one bridge forced if none was drawn. Graph sizes are even.
    The bridges and sizes come from ``numpy.random.default_rng(seed)`` (GDSS used the global
    numpy state, so the exact graphs differ; the distribution is the same).
    """
    if n_graphs < 1:
        raise InputError(f"n_graphs: expected an integer >= 1, got {n_graphs}")
    rng = np.random.default_rng(seed)
    return [_n_community(2, int(rng.choice(np.arange(12, 21))), rng) for _ in range(n_graphs)]


def grid_graphs(min_side: int = 10, max_side: int = 19) -> list[nx.Graph]:
    """GraphRNN's grid dataset: ``nx.grid_2d_graph(i, j)`` for i, j in 10..19 (100 graphs).

    GraphRNN's code loops ``range(10, 20)``, so sides run 10..19 and sizes 100..361 nodes (the
    papers' tables round the upper bound to 400). Nodes are relabelled 0..n-1 in row-major order.
    """
    if not 1 <= min_side <= max_side:
        raise InputError(
            f"min_side, max_side: expected 1 <= min <= max, got {min_side}, {max_side}"
        )
    sides = range(min_side, max_side + 1)
    return [
        nx.convert_node_labels_to_integers(nx.grid_2d_graph(i, j)) for i in sides for j in sides
    ]


def load_ego_small(
    cites: str | os.PathLike,
    content: str | os.PathLike | None = None,
    *,
    radius: int = 1,
    min_nodes: int = 4,
    max_nodes: int = 18,
    n_graphs: int = 200,
    seed: int | None = None,
) -> list[nx.Graph]:
    """Ego-small (GDSS's ``citeseer_ego(radius=1, node_min=4, node_max=18)[:200]``).

    Reads Citeseer's LINQS edge list ``citeseer.cites`` (each line ``cited citing``), builds the
    undirected graph without self-loops, keeps its largest connected component (nodes numbered
    in sorted paper-id order), takes the ``radius``-hop ego graph of every node in that order,
    keeps those with ``min_nodes..max_nodes`` nodes and returns the first ``n_graphs``. With
    ``seed`` the candidates are shuffled first (GraphRNN's variant). With ``content`` (the
    ``citeseer.content`` file: paper id, word indicators, class) only citations between papers
    listed there are kept, as in the Planetoid graph GDSS reads.
    """
    path = Path(cites)
    if not path.is_file():
        raise InputError(f"{path}: Citeseer .cites edge list not found")
    papers: set[str] | None = None
    if content is not None:
        cpath = Path(content)
        if not cpath.is_file():
            raise InputError(f"{cpath}: Citeseer .content file not found")
        with open(cpath) as fh:
            papers = {line.split()[0] for line in fh if line.strip()}
    g = nx.Graph()
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise InputError(f"{path}:{lineno}: expected two paper ids, got {line.strip()!r}")
            if parts[0] != parts[1] and (papers is None or set(parts) <= papers):
                g.add_edge(parts[0], parts[1])
    if g.number_of_nodes() == 0:
        raise InputError(f"{path}: no citations")
    g = g.subgraph(max(nx.connected_components(g), key=len)).copy()
    g = nx.convert_node_labels_to_integers(g, ordering="sorted")
    egos = []
    for v in sorted(g.nodes()):
        ego = nx.ego_graph(g, v, radius=radius)
        if min_nodes <= ego.number_of_nodes() <= max_nodes:
            egos.append(nx.convert_node_labels_to_integers(ego))
    if seed is not None:
        random.Random(seed).shuffle(egos)
    return egos[:n_graphs]


def _read_ints(path: Path, what: str) -> list[list[int]]:
    if not path.is_file():
        raise InputError(f"{path}: TU file ({what}) not found")
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append([int(float(tok)) for tok in line.replace(",", " ").split()])
            except ValueError:
                raise InputError(f"{path}:{lineno}: expected integers, got {line!r}") from None
    return rows


def load_tu_graphs(
    root: str | os.PathLike, name: str, *, min_nodes: int = 1, max_nodes: int = 10**9
) -> list[nx.Graph]:
    """Graphs of a TU-format dataset: ``{name}_A.txt`` (1-based ``i, j`` edges) and
    ``{name}_graph_indicator.txt`` (graph id of each node); ``{name}_node_labels.txt`` and
    ``{name}_graph_labels.txt`` are attached as ``label`` attributes when present.

    As GraphRNN's/GDSS's ``graph_load_batch``: self-loops are dropped, nodes without any edge are
    removed, and graphs outside ``min_nodes..max_nodes`` nodes are dropped.
    """
    root = Path(root)
    edges = _read_ints(root / f"{name}_A.txt", "edges")
    indicator = [r[0] for r in _read_ints(root / f"{name}_graph_indicator.txt", "graph ids")]
    n_nodes = len(indicator)
    if n_nodes == 0:
        raise InputError(f"{root}/{name}_graph_indicator.txt: no nodes")
    g = nx.Graph()
    g.add_nodes_from(range(1, n_nodes + 1))
    for k, e in enumerate(edges):
        if len(e) != 2 or not (1 <= e[0] <= n_nodes and 1 <= e[1] <= n_nodes):
            raise InputError(
                f"{root}/{name}_A.txt: row {k + 1} is not an edge of nodes 1..{n_nodes}"
            )
        if e[0] != e[1]:
            g.add_edge(e[0], e[1])
    node_labels = root / f"{name}_node_labels.txt"
    if node_labels.is_file():
        labels = [r[0] for r in _read_ints(node_labels, "node labels")]
        if len(labels) != n_nodes:
            raise InputError(f"{node_labels}: {len(labels)} labels for {n_nodes} nodes")
        nx.set_node_attributes(g, dict(enumerate(labels, 1)), "label")
    graph_labels_path = root / f"{name}_graph_labels.txt"
    graph_labels = None
    if graph_labels_path.is_file():
        graph_labels = [r[0] for r in _read_ints(graph_labels_path, "graph labels")]
    members: dict[int, list[int]] = {}
    for node, gid in enumerate(indicator, 1):
        if g.degree(node) > 0:
            members.setdefault(gid, []).append(node)
    out = []
    for gid in sorted(members):
        nodes = sorted(members[gid])
        sub = nx.Graph()
        sub.add_nodes_from((v, g.nodes[v]) for v in nodes)  # keep the file's node order
        sub.add_edges_from(g.subgraph(nodes).edges())
        sub = nx.convert_node_labels_to_integers(sub)
        if graph_labels is not None and 1 <= gid <= len(graph_labels):
            sub.graph["label"] = graph_labels[gid - 1]
        if min_nodes <= sub.number_of_nodes() <= max_nodes:
            out.append(sub)
    return out


def load_enzymes(root: str | os.PathLike, *, min_nodes: int = 10, max_nodes: int = 1000):
    """ENZYMES from its TU files under ``root`` (GraphRNN keeps graphs of 10..1000 nodes)."""
    return load_tu_graphs(root, "ENZYMES", min_nodes=min_nodes, max_nodes=max_nodes)
