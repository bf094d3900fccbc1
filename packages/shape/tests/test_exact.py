import numpy as np
import pytest
import trimesh

from polyfold.core.errors import InputError
from polyfold.shape.exact import exact_chamfer, mesh_distance, project_to_surface
from polyfold.shape.meshes import sample_surface
from polyfold.shape.metrics import chamfer
from polyfold.shape.sdf import box, sphere


def _sphere_mesh(radius):
    m = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    return np.asarray(m.vertices), np.asarray(m.faces)


def test_exact_chamfer_of_a_perfect_mesh_is_zero_where_sampled_chamfer_is_not():
    v, f = _sphere_mesh(0.3)
    sdf = sphere((0, 0, 0), 0.3)
    truth = np.random.default_rng(0).normal(size=(4000, 3))  # off-surface: gets projected
    assert exact_chamfer(v, f, sdf, truth, points=4000) < 1e-8
    a, b = sample_surface(v, f, 4000, seed=0)[0], sample_surface(v, f, 4000, seed=1)[0]
    assert chamfer(a, b) > 1e-5  # the sampling floor the exact version removes

    bm = trimesh.creation.box(extents=(0.4, 0.2, 0.6))
    bsdf = box((0, 0, 0), (0.2, 0.1, 0.3))
    pts = sample_surface(np.asarray(bm.vertices), np.asarray(bm.faces), 2000, seed=2)[0]
    assert exact_chamfer(bm.vertices, bm.faces, bsdf, pts, points=2000) < 1e-20


def test_exact_chamfer_of_an_offset_sphere_is_twice_the_squared_offset():
    v, f = _sphere_mesh(0.32)
    truth = np.random.default_rng(1).normal(size=(3000, 3))
    got = exact_chamfer(v, f, sphere((0, 0, 0), 0.3), truth, points=3000)
    assert got == pytest.approx(2 * 0.02**2, rel=0.02)


def test_projection_lands_on_the_surface_and_mesh_distance_is_exact():
    p = project_to_surface(sphere((0.1, 0, 0), 0.25), np.random.default_rng(2).normal(size=(50, 3)))
    assert np.abs(np.linalg.norm(p - [0.1, 0, 0], axis=1) - 0.25).max() < 1e-9
    bm = trimesh.creation.box(extents=(1, 1, 1))
    d = mesh_distance(np.array([[0.0, 0, 1.5], [0, 0, 0]]), bm.vertices, bm.faces)
    assert d == pytest.approx([1.0, 0.5])


def test_exact_chamfer_bad_input():
    v, f = _sphere_mesh(0.3)
    with pytest.raises(InputError, match="surface"):
        exact_chamfer(v, f, sphere((0, 0, 0), 0.3), np.zeros((0, 3)))
    with pytest.raises(InputError, match="faces"):
        mesh_distance(np.zeros((1, 3)), v, np.zeros((0, 3), np.int64))
