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


def test_train_checks_its_options_before_touching_out(tmp_path):
    from polyfold.core.errors import InputError

    for args, message in ((("--geometry-weight", "0"), "--geometry-weight: expected a finite"),
                          (("--refine", "-3"), "--refine: expected an integer >= 0")):  # fmt: skip
        with pytest.raises(InputError, match=message):
            _run("train", "--class", "chair", *args, "--out", str(tmp_path / "run"))
        assert not (tmp_path / "run").exists()


def test_train_the_point_baseline_and_sample_an_msdf_model(tmp_path):
    from polyfold.core.errors import InputError
    from polyfold.shape.generate import load_flow

    r = _run(
        "train",
        "--tokens",
        "points",
        "--points",
        "16",
        "--class",
        "mug,vase",
        "--per-class",
        "2",
        "--steps",
        "3",
        "--width",
        "32",
        "--depth",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "pts"),
    )
    assert r.exit_code == 0, r.output
    flow, card = load_flow(tmp_path / "pts" / "model")
    assert flow.config.tokens == "points"
    assert card["classes"] == ["mug", "vase"]
    with pytest.raises(InputError, match="point-cloud baseline"):
        _run(
            "sample",
            "--model",
            str(tmp_path / "pts" / "model"),
            "--class",
            "mug",
            "--out",
            str(tmp_path / "s"),
        )
    r = _run(
        "train",
        "--class",
        "mug",
        "--per-class",
        "2",
        "--grids",
        "8",
        "--k",
        "3",
        "--steps",
        "2",
        "--width",
        "32",
        "--depth",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "msdf"),
    )
    assert r.exit_code == 0, r.output
    r = _run(
        "sample",
        "--model",
        str(tmp_path / "msdf" / "model"),
        "--class",
        "mug",
        "-n",
        "2",
        "--steps",
        "2",
        "--res",
        "24",
        "--quiet",
        "--out",
        str(tmp_path / "s"),
    )
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "s").glob("*.msdf"))) == 2
    with pytest.raises(InputError, match="unknown chair"):
        _run(
            "sample",
            "--model",
            str(tmp_path / "msdf" / "model"),
            "--class",
            "chair",
            "--out",
            str(tmp_path / "s2"),
        )


def test_convert_a_folder_keeps_class_sub_folders(tmp_path):
    from polyfold.shape.msdf import load_msdf

    (tmp_path / "in" / "mug").mkdir(parents=True)
    trimesh.creation.cylinder(0.3, 0.5).export(tmp_path / "in" / "mug" / "m1.stl")
    trimesh.creation.box().export(tmp_path / "in" / "cube.ply")
    r = _run(
        "convert",
        str(tmp_path / "in"),
        "--grids",
        "16",
        "--k",
        "3",
        "--steps",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.exit_code == 0, r.output
    assert load_msdf(tmp_path / "out" / "mug" / "m1.msdf").cls == "mug"
    assert (tmp_path / "out" / "cube.msdf").is_file()


def test_evaluate_the_shipped_model(tmp_path):
    import json

    r = _run("evaluate", "-n", "2", "--points", "64", "--quiet", "--out", str(tmp_path / "m.json"))
    assert r.exit_code == 0, r.output
    got = json.loads((tmp_path / "m.json").read_text())
    assert set(got) == {"chair", "table", "mug", "vase", "mean"}
    assert 0 <= got["mean"]["1nna_cd"] <= 1


def test_train_defaults_are_the_shipped_flow_recipe():
    """`polyfold-shape train --out DIR` retrains the shipped procshapes-flow: every setting its
    card records equals the command's default."""
    import inspect
    import json

    from polyfold.shape.cli import train
    from polyfold.shape.generate import SHIPPED

    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    config = card["config"]
    defaults = {
        name: p.default.default if hasattr(p.default, "default") else p.default
        for name, p in inspect.signature(train).parameters.items()
    }
    assert defaults["classes"].split(",") == config["classes"]
    assert defaults["per_class"] == card["card"]["data_source"]["per_class"]
    assert defaults["refine"] == card["card"]["data_source"]["refine"]
    assert defaults["grids"] == config["n"]
    for name in ("k", "width", "depth", "steps", "geometry_weight", "coupling", "seed"):
        assert defaults[name] == config[name], name
