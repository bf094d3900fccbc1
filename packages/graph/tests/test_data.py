"""Datasets: GraphTensors, QM9 split and cache, ZINC250k CSV, synthetic benchmarks, TU, ego."""

import json

import networkx as nx
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.graph import data
from polyfold.graph.data import GraphTensors


def _batch(g=3, n=5, f=2) -> GraphTensors:
    gen = torch.Generator().manual_seed(0)
    adj = (torch.rand(g, n, n, generator=gen) > 0.5).float()
    adj = torch.triu(adj, 1)
    return GraphTensors(torch.rand(g, n, f, generator=gen), adj + adj.transpose(1, 2),
                        torch.ones(g, n, dtype=torch.bool))  # fmt: skip


def test_graph_tensors_validation_indexing_and_io(tmp_path):
    b = _batch()
    assert len(b) == 3
    assert b.max_nodes == 5
    assert b.n_features == 2
    assert len(b[1]) == 1
    assert torch.equal(b[1].x[0], b.x[1])
    assert len(b[-1]) == 1
    assert torch.equal(b[-1].adj[0], b.adj[2])
    assert len(b[1:]) == 2
    assert len(b[[0, 2]]) == 2
    assert [len(item) for item in b] == [1, 1, 1]
    with pytest.raises(IndexError):
        b[3]
    with pytest.raises(InputError, match="adj"):
        GraphTensors(b.x, b.adj[:, :4], b.mask)
    with pytest.raises(InputError, match="mask"):
        GraphTensors(b.x, b.adj, b.mask.float())
    with pytest.raises(InputError, match="x"):
        GraphTensors(b.x[0], b.adj, b.mask)
    b.save(tmp_path / "g.safetensors")
    back = GraphTensors.load(tmp_path / "g.safetensors")
    assert torch.equal(back.x, b.x)
    assert torch.equal(back.adj, b.adj)
    assert torch.equal(back.mask, b.mask)
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(InputError, match=r"bad\.safetensors"):
        GraphTensors.load(tmp_path / "bad.safetensors")


def test_qm9_split_file_and_smiles_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYFOLD_GRAPH_CACHE", str(tmp_path))
    gdss, moflow = data.qm9_test_indices(), data.qm9_test_indices("moflow")
    assert len(gdss) == len(moflow) == 13082
    assert {i - 1 for i in gdss} == moflow
    train, test = data.load_qm9_smiles("train"), data.load_qm9_smiles("test")
    assert (tmp_path / "qm9_smiles_v1.json").exists()
    assert (len(train), len(test)) == (117917, 12914)
    assert data.load_qm9_smiles("test") == test  # from the JSON cache
    present = {gdb - 1 for gdb, _ in data._qm9_rows_cached()}
    assert len(present) == 130831
    # MoFlow's reading (1-based GDB index) picks only characterised molecules: the check that
    # the shipped list is the original one
    assert moflow <= present
    assert len(data.load_qm9_smiles("test", convention="moflow")) == 13082
    with pytest.raises(InputError, match="convention"):
        data.qm9_test_indices("other")


def test_load_qm9_limited():
    train, smiles = data.load_qm9("train", limit=64, return_smiles=True)
    test = data.load_qm9_smiles("test", limit=16)
    assert train.x.shape == (64, 9, 4)
    assert len(smiles) == 64
    assert not set(smiles) & set(test)
    assert torch.equal(train.adj, train.adj.transpose(1, 2))
    assert torch.equal(train.x.sum(-1) > 0, train.mask)
    assert set(torch.unique(torch.round(train.adj * 3)).tolist()) <= {0.0, 1.0, 2.0, 3.0}
    with pytest.raises(InputError, match="split"):
        data.load_qm9("valid", limit=2)
    with pytest.raises(InputError, match="limit"):
        data.load_qm9("train", limit=0)


def test_cache_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYFOLD_GRAPH_CACHE", str(tmp_path / "cache"))
    assert data.cache_dir() == tmp_path / "cache"
    calls = []

    def build():
        calls.append(1)
        return _batch(), ["C", "CC", "CCC"]

    first = data._cached("toy", build)
    second = data._cached("toy", build)
    assert len(calls) == 1
    assert second[1] == ["C", "CC", "CCC"]
    assert torch.equal(first[0].adj, second[0].adj)
    assert (tmp_path / "cache" / "toy.safetensors").exists()


ZINC_CSV = """smiles,logP,qed,SAS
"CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1
",5.0506,0.702,2.084
"C[C@@H]1CC(Nc2cncc(-c3nncn3C)c2)C[C@@H](C)C1
",3.1137,0.928,3.432
"CCOC(=O)[C@@H]1CCCN(C(=O)c2nc(-c3ccc(C)cc3)n3c2CCCCC3)C1
",4.9672,0.599,2.470
"O=C(Nc1ccc(Cl)cc1)c1ccc([N+](=O)[O-])s1
",3.2,0.7,2.0
"""


def test_zinc250k_csv(tmp_path):
    path = tmp_path / "250k_rndm_zinc_drugs_clean_3.csv"
    path.write_text(ZINC_CSV)
    smiles = data.load_zinc250k_smiles(path)
    assert len(smiles) == 4
    assert smiles[0] == "CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1"
    assert data.load_zinc250k_smiles(path, limit=2) == smiles[:2]
    everything = data.load_zinc250k(path)
    assert everything.x.shape == (4, 38, 9)
    (tmp_path / "valid_idx_zinc.json").write_text(json.dumps([1, 3]))
    test = data.load_zinc250k(path, "test", test_idx=tmp_path / "valid_idx_zinc.json")
    train = data.load_zinc250k(path, "train", test_idx=[1, 3])
    assert len(test) == 2
    assert len(train) == 2
    assert torch.equal(train.x, everything.x[[0, 2]])
    with pytest.raises(InputError, match="test_idx"):
        data.load_zinc250k(path, "test")
    (tmp_path / "bad.csv").write_text("name,logP\nx,1\n")
    with pytest.raises(InputError, match="'smiles' column"):
        data.load_zinc250k_smiles(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("smiles,logP\nC1CC,1\n")
    with pytest.raises(InputError, match="cannot parse"):
        data.load_zinc250k(tmp_path / "bad2.csv")
    with pytest.raises(InputError, match="not found"):
        data.load_zinc250k_smiles(tmp_path / "missing.csv")


def test_community_small_matches_the_benchmark_definition():
    graphs = data.community_small(100, seed=0)
    assert len(graphs) == 100
    sizes = [g.number_of_nodes() for g in graphs]
    assert set(sizes) <= {12, 14, 16, 18, 20}
    assert len(set(sizes)) >= 4
    for g in graphs:
        n = g.number_of_nodes() // 2
        left, right = set(range(n)), set(range(n, 2 * n))
        assert nx.is_connected(g)
        bridges = [e for e in g.edges() if (e[0] in left) != (e[1] in left)]
        assert 1 <= len(bridges) <= 8
        # each community is EDP-GNN's G(n, 0.7) with its fixed seed
        expected = nx.gnp_random_graph(n, 0.7, seed=0)
        assert set(g.subgraph(left).edges()) == set(expected.edges())
        assert nx.is_isomorphic(g.subgraph(right), nx.gnp_random_graph(n, 0.7, seed=1))
    again = data.community_small(100, seed=0)
    assert all(set(a.edges()) == set(b.edges()) for a, b in zip(graphs, again, strict=True))


def test_grid_graphs():
    graphs = data.grid_graphs()
    assert len(graphs) == 100
    sizes = sorted(g.number_of_nodes() for g in graphs)
    assert sizes[0] == 100
    assert sizes[-1] == 361
    assert all(max(d for _, d in g.degree()) == 4 for g in graphs)


def test_ego_small_from_cites_file(tmp_path):
    # a hub citing 5 papers, a chain, and a separate small component
    lines = [f"hub p{k}" for k in range(5)] + ["p0 q1", "q1 q2", "q2 q3", "x1 x2", "z z"]
    path = tmp_path / "citeseer.cites"
    path.write_text("\n".join(lines) + "\n")
    egos = data.load_ego_small(path, min_nodes=3, max_nodes=6)
    sizes = sorted(g.number_of_nodes() for g in egos)
    # hub's ego has 6 nodes, p0's has 3 (hub, p0, q1), q1 and q2 have 3; x1/x2 are not in the LCC
    assert sizes == [3, 3, 3, 6]
    assert len(data.load_ego_small(path, min_nodes=3, max_nodes=6, n_graphs=2)) == 2
    # with the .content file, citations to papers it does not list are dropped
    content = tmp_path / "citeseer.content"
    words = "0 1 0 1"
    content.write_text("".join(f"{p} {words} AI\n" for p in ["hub", "p0", "p1", "p2", "q1"]))
    egos = data.load_ego_small(path, content, min_nodes=2, max_nodes=6)
    assert sorted(g.number_of_nodes() for g in egos) == [2, 2, 2, 3, 4]
    (tmp_path / "bad.cites").write_text("a b c\n")
    with pytest.raises(InputError, match="two paper ids"):
        data.load_ego_small(tmp_path / "bad.cites")


def test_enzymes_tu_files(tmp_path):
    # graph 1: triangle + pendant (4 nodes) and an isolated node; graph 2: path of 3 nodes
    (tmp_path / "ENZYMES_A.txt").write_text(
        "1, 2\n2, 1\n2, 3\n3, 2\n3, 1\n1, 3\n3, 4\n4, 3\n6, 7\n7, 6\n7, 8\n8, 7\n"
    )
    (tmp_path / "ENZYMES_graph_indicator.txt").write_text("1\n1\n1\n1\n1\n2\n2\n2\n")
    (tmp_path / "ENZYMES_graph_labels.txt").write_text("4\n2\n")
    (tmp_path / "ENZYMES_node_labels.txt").write_text("1\n1\n2\n3\n1\n2\n2\n1\n")
    graphs = data.load_tu_graphs(tmp_path, "ENZYMES")
    assert [g.number_of_nodes() for g in graphs] == [4, 3]  # isolated node 5 removed
    assert [g.number_of_edges() for g in graphs] == [4, 2]
    assert graphs[0].graph["label"] == 4
    assert graphs[1].nodes[0]["label"] == 2
    assert [g.number_of_nodes() for g in data.load_enzymes(tmp_path, min_nodes=4)] == [4]
    assert data.load_enzymes(tmp_path) == []  # GraphRNN keeps 10..1000 nodes
    (tmp_path / "ENZYMES_A.txt").write_text("1, 99\n")
    with pytest.raises(InputError, match="not an edge"):
        data.load_tu_graphs(tmp_path, "ENZYMES")
    with pytest.raises(InputError, match="not found"):
        data.load_tu_graphs(tmp_path, "PROTEINS")


def test_graphs_to_tensors_round_trip():
    graphs = [nx.path_graph(4), nx.cycle_graph(5), nx.star_graph(3)]
    batch = data.graphs_to_tensors(graphs, max_nodes=6)
    assert batch.x.shape == (3, 6, 4)
    assert batch.mask.sum(-1).tolist() == [4, 5, 4]
    assert torch.equal(batch.x.argmax(-1)[batch.mask], batch.adj.sum(-1)[batch.mask].long())
    back = data.tensors_to_graphs(batch.adj, batch.mask)
    assert all(nx.is_isomorphic(a, b) for a, b in zip(graphs, back, strict=True))
    noisy = batch.adj + 0.3 * torch.rand(
        batch.adj.shape, generator=torch.Generator().manual_seed(0)
    )
    back = data.tensors_to_graphs(noisy.clamp(max=1.0) * (batch.adj > 0) + 0.2, batch.mask)
    assert all(nx.is_isomorphic(a, b) for a, b in zip(graphs, back, strict=True))
    with pytest.raises(InputError, match="empty"):
        data.graphs_to_tensors([nx.Graph()])
    with pytest.raises(InputError, match="max_nodes"):
        data.graphs_to_tensors(graphs, max_nodes=4)
    with pytest.raises(InputError, match="max_feat"):
        data.graphs_to_tensors(graphs, max_feat=2)
