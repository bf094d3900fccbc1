import pytest
import trimesh
from typer.testing import CliRunner

from polyfold.shape.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_convert_a_mesh_then_mesh_it_back(tmp_path):
    trimesh.creation.icosphere(2).export(tmp_path / "ball.obj")
    r = _run(
        "convert",
        str(tmp_path / "ball.obj"),
        "--grids",
        "32",
        "--k",
        "4",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "ball.msdf"),
    )
    assert r.exit_code == 0, r.output
    r = _run(
        "mesh", str(tmp_path / "ball.msdf"), "--res", "32", "--out", str(tmp_path / "ball.glb")
    )
    assert r.exit_code == 0, r.output
    back = trimesh.load(tmp_path / "ball.glb", force="mesh")
    assert abs(back.bounds).max() == pytest.approx(0.5, abs=0.05)


def test_convert_refuses_to_overwrite_and_needs_a_source(tmp_path):
    from polyfold.core.errors import InputError

    (tmp_path / "x.msdf").write_text("mine")
    with pytest.raises(InputError, match="exists"):
        _run("convert", "--procshape", "mug", "--out", str(tmp_path / "x.msdf"))
    with pytest.raises(InputError, match="one of them"):
        _run("convert", "--out", str(tmp_path / "y.msdf"))
    with pytest.raises(InputError, match="unknown class sofa"):
        _run("convert", "--procshape", "sofa", "--out", str(tmp_path / "z.msdf"))
