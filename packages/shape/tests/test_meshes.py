import numpy as np
import pytest
import torch
import trimesh

from polyfold.core.errors import InputError
from polyfold.shape.convert import ConvertConfig, convert
from polyfold.shape.meshes import from_arrays, load_folder, load_mesh


def _write(mesh, path):
    mesh.export(path)
    return path


def test_load_normalises_to_the_unit_cube_and_checks_watertightness(tmp_path):
    box = trimesh.creation.box((2.0, 4.0, 1.0))
    box.apply_translation((5, 5, 5))
    m = load_mesh(_write(box, tmp_path / "box.obj"))
    assert np.allclose(m.vertices.max(0) - m.vertices.min(0), [0.5, 1.0, 0.25])
    assert np.allclose((m.vertices.max(0) + m.vertices.min(0)) / 2, 0)
    assert m.watertight
    assert m.sdf(torch.zeros(1, 3, dtype=torch.float64)).item() == pytest.approx(-0.125, abs=1e-6)
    open_box = trimesh.Trimesh(box.vertices, box.faces[:-2])
    with pytest.raises(InputError, match="not watertight"):
        load_mesh(_write(open_box, tmp_path / "open.ply"), require_watertight=True)


def test_bad_meshes_give_clear_errors(tmp_path):
    (tmp_path / "empty.obj").write_text("# nothing\n")
    with pytest.raises(InputError, match=r"empty\.obj: the file holds no triangles"):
        load_mesh(tmp_path / "empty.obj")
    (tmp_path / "junk.stl").write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match=r"junk\.stl"):
        load_mesh(tmp_path / "junk.stl")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="expected a mesh file"):
        load_mesh(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="NaN"):
        from_arrays(np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), np.array([[0, 1, 2]]))
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="no mesh files"):
        load_folder(tmp_path / "sub")


def test_folder_loader_takes_classes_from_sub_folders(tmp_path):
    (tmp_path / "chair").mkdir()
    (tmp_path / "mug").mkdir()
    _write(trimesh.creation.icosphere(2), tmp_path / "chair" / "a.obj")
    _write(trimesh.creation.box(), tmp_path / "mug" / "b.off")
    got = load_folder(tmp_path)
    assert [m.cls for m in got] == ["chair", "mug"]


def test_conversion_is_invariant_to_vertex_order():
    ico = trimesh.creation.icosphere(2)
    perm = np.random.default_rng(0).permutation(len(ico.vertices))
    inv = np.argsort(perm)
    a = from_arrays(ico.vertices, ico.faces)
    b = from_arrays(ico.vertices[perm], inv[ico.faces])
    cfg = ConvertConfig(n=32, k=4, steps=5, surface_samples=2000)
    ma, mb = convert(a, cfg), convert(b, cfg)
    assert torch.allclose(ma.centres, mb.centres, atol=1e-5)
    assert torch.allclose(ma.values, mb.values, atol=1e-4)


def test_pybullet_meshes_load():
    from polyfold.shape.meshes import pybullet_mesh, pybullet_random_object

    bunny = pybullet_mesh("bunny")
    assert bunny.watertight
    assert np.ptp(bunny.vertices, axis=0).max() == pytest.approx(1.0)
    assert len(pybullet_random_object(7).faces) > 0
    with pytest.raises(InputError, match="expected one of bunny"):
        pybullet_mesh("dragon")
    with pytest.raises(InputError, match="no random_urdfs object 1000"):
        pybullet_random_object(1000)


def test_a_solid_of_touching_bodies_has_only_its_outer_surface():
    # Two closed boxes meeting (1e-4 apart) on the plane x = 0, a convex decomposition of one
    # 1 x 0.5 x 0.5 box: the faces on that plane are inside the solid, not its surface.
    left = trimesh.creation.box((0.5, 0.5, 0.5))
    left.apply_translation((-0.25 - 5e-5, 0, 0))
    right = trimesh.creation.box((0.5, 0.5, 0.5))
    right.apply_translation((0.25 + 5e-5, 0, 0))
    both = trimesh.util.concatenate([left, right])
    m = from_arrays(both.vertices, both.faces, "two-boxes")
    assert m.watertight
    assert m.outer is not None
    v, f = m.surface
    assert len(f) == len(m.faces) - 4  # the two squares on x = 0, two triangles each
    assert (np.abs(v[f].mean(1)[:, 0]) > 0.1).all()
    # Distances are to the outer surface (0.25 to the y/z faces), not to the cut plane (0.1).
    p = torch.tensor([[-0.1, 0.0, 0.0], [-0.1, 0.3, 0.0]], dtype=torch.float64)
    assert m.sdf(p).tolist() == pytest.approx([-0.25, 0.05], abs=1e-3)
    one = trimesh.creation.box((1.0, 0.5, 0.5))
    assert from_arrays(one.vertices, one.faces, "one-box").outer is None
