import numpy as np
import pytest
import torch
import trimesh

from polyfold.core.errors import InputError
from polyfold.shape.evaluation import msdf_pieces
from polyfold.shape.metrics import components
from polyfold.shape.msdf import MSDF


def _spheres(*spheres):
    parts = []
    for centre, radius in spheres:
        s = trimesh.creation.icosphere(3, radius)
        s.apply_translation(centre)
        parts.append(s)
    mesh = trimesh.util.concatenate(parts)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def test_two_disjoint_spheres_are_two_pieces_with_their_area_shares():
    count, share = components(*_spheres(((0, 0, 0), 0.2), ((1, 0, 0), 0.1)))
    assert count == 2
    assert share == pytest.approx(0.2**2 / (0.2**2 + 0.1**2), rel=1e-6)


def test_one_sphere_is_one_piece_even_with_duplicated_vertices():
    v, f = _spheres(((0, 0, 0), 0.3))
    # unshared corners (every face its own three vertices): still one surface
    count, share = components(v[f].reshape(-1, 3), np.arange(3 * len(f)).reshape(-1, 3))
    assert (count, share) == (1, 1.0)


def test_bad_meshes_are_refused():
    with pytest.raises(InputError, match="faces"):
        components(np.zeros((3, 3)), np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(InputError, match="vertices"):
        components(np.zeros((3, 2)), np.array([[0, 1, 2]]))


def _ball_grids(centres, radius=0.06, scale=0.12, k=5):
    c = torch.tensor(centres, dtype=torch.float32)
    lin = torch.linspace(-1, 1, k)
    nodes = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1)
    values = (scale * nodes).norm(dim=-1) - radius  # a ball at each grid's centre
    return MSDF(c, torch.full((len(c),), scale), values.expand(len(c), k, k, k).contiguous())


def test_msdf_pieces_counts_separate_and_overlapping_grids():
    apart = _ball_grids([[-0.3, 0, 0], [0.3, 0, 0]])
    assert msdf_pieces([apart], res=48) == pytest.approx(
        {"pieces": 2.0, "largest_area": 0.5}, abs=0.02
    )
    one = _ball_grids([[0, 0, 0]])
    empty = MSDF(one.centres, one.scales, one.values.abs() + 0.1)  # no zero crossing
    out = msdf_pieces([one, empty], res=48)
    assert out == pytest.approx({"pieces": 0.5, "largest_area": 0.5})
    with pytest.raises(InputError, match="shapes"):
        msdf_pieces([])
