import json

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.shape.one_step3d import (
    OneStepConfig,
    ShapeGenerator,
    generate_grids,
    render_error,
    train_one_step,
)
from polyfold.shape.teachers import ExactTeacher
from polyfold.shape.volrender import GridSDF, cameras, grid_sdf, sphere_grid

SMALL = {"grid": 12, "res": 12, "samples": 16, "width": 4, "views": 1, "log_every": 1}


def _box(h):
    return lambda p: (p.abs() - h).amax(-1)


def _ball(r):
    return lambda p: p.norm(dim=-1) - r


def test_one_pass_gives_one_grid_per_class_and_noise_near_the_sphere():
    torch.manual_seed(0)
    gen = ShapeGenerator(["a", "b"], grid=8, width=4, z_dim=3)
    z = torch.randn(5, 3)
    labels = torch.tensor([0, 1, 0, 1, 1])
    with torch.no_grad():
        out = gen(labels, z)
    assert out.shape == (5, 8, 8, 8)
    assert out.dtype == torch.float32
    sphere = sphere_grid(8, 0.3).values.detach()
    assert float((out - sphere).abs().max()) < 0.05  # starts near the sphere
    # each row is its own (class, z): the batch is the same as one pass per shape
    with torch.no_grad():
        one = torch.stack([gen(labels[i : i + 1], z[i : i + 1])[0] for i in range(5)])
        other_z, other_class = gen(labels[:1], z[1:2])[0], gen(labels[1:2], z[:1])[0]
    assert torch.allclose(out, one, atol=1e-6)
    assert float((out[0] - other_z).abs().max()) > 0  # z matters
    assert float((out[0] - other_class).abs().max()) > 0  # the class matters


def test_generate_grids_is_seeded_and_different_z_differ():
    gen = ShapeGenerator(["a", "b"], grid=8, width=4)
    g1, secs = generate_grids(gen, ["a", "a", "b"], seed=3)
    g2, _ = generate_grids(gen, ["a", "a", "b"], seed=3)
    assert g1.shape == (3, 8, 8, 8)
    assert secs >= 0
    assert torch.equal(g1, g2)
    assert float((g1[0] - g1[1]).abs().max()) > 1e-6


def test_grid_sdf_is_the_grid_field_and_differentiable():
    v = sphere_grid(8, 0.3).values.detach().requires_grad_(True)
    p = torch.rand(50, 3) * 1.4 - 0.7  # some outside the cube
    assert torch.allclose(grid_sdf(v, p), GridSDF(v.detach())(p))
    grid_sdf(v, p).sum().backward()
    assert v.grad is not None
    assert float(v.grad.abs().sum()) > 0


@pytest.mark.parametrize("method", ["sds", "vsd"])
def test_a_few_steps_move_the_renders_towards_the_teacher(method):
    teacher = ExactTeacher({"box": [_box(0.3)], "ball": [_ball(0.2)]}, res=12, samples=16)
    cams = cameras([25.0, 25.0], [45.0, -135.0])
    target = teacher.targets("box", cams)
    cfg = OneStepConfig(classes=["box"], method=method, steps=20, lr=0.01, aux_warmup=2, **SMALL)
    torch.manual_seed(cfg.seed)  # the generator train_one_step starts from
    start = ShapeGenerator(["box"], grid=12, width=4, init=cfg.init, render=cfg.render_kw)
    before = render_error(start, "box", target, cams)
    res = train_one_step(teacher, cfg)
    after = render_error(res.generator, "box", target, cams)
    assert after < 0.8 * before
    assert len(res.log) == 20
    assert ("aux" in res.log[-1]) == (method == "vsd")
    assert res.log[-1]["t_max"] == pytest.approx(cfg.t_end)


def test_bad_input_is_a_clear_error():
    teacher = ExactTeacher({"box": [_box(0.3)]}, res=8, samples=8)
    with pytest.raises(InputError, match="--steps"):
        train_one_step(teacher, OneStepConfig(steps=0))
    with pytest.raises(InputError, match="--method"):
        train_one_step(teacher, OneStepConfig(method="ism"))
    with pytest.raises(InputError, match="--class"):
        train_one_step(teacher, OneStepConfig(classes=["chair"], steps=1))
    gen = ShapeGenerator(["box"], grid=8, width=4)
    with pytest.raises(InputError, match="unknown class 'mug'"):
        generate_grids(gen, ["mug"])
    with pytest.raises(InputError, match="--grid"):
        ShapeGenerator(["box"], grid=10)
    with pytest.raises(InputError, match="labels, z"):
        gen(torch.zeros(2), torch.zeros(2, 3))


def test_cli_train_one_step_writes_a_loadable_generator(tmp_path):
    from typer.testing import CliRunner

    from polyfold.shape.cli import app
    from polyfold.shape.one_step_run import load_generator

    out = tmp_path / "g"
    args = ["train-one-step", "--teacher", "exact", "--class", "chair,mug", "--steps", "2"]
    args += ["--batch", "1", "--targets", "1", "--samples", "1", "--quiet", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    gen, card = load_generator(out / "model")
    assert gen.classes == ["chair", "mug"]
    assert card["training"]["steps"] == 2
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["chair-0.glb", "mug-0.glb"]
    assert (out / "samples.png").exists()
    assert len((out / "log.jsonl").read_text().splitlines()) == 1
    assert json.loads((out / "log.jsonl").read_text())["step"] == 2.0
    again = CliRunner().invoke(app, args)  # output protection
    assert again.exit_code != 0
    assert "--force" in str(again.exception)
    bad = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "h"), "--steps", "0"])
    assert bad.exit_code != 0
    assert "--steps" in str(bad.exception)


def test_blob_init_starts_each_z_at_its_own_blob():
    gen = ShapeGenerator(["a"], grid=12, width=4, init="blobs")
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    z[1] = z[0]
    z[1, 4:] += 1.0  # only the sines' weights differ
    with torch.no_grad():
        base, out = gen.base_sdf(z), gen(torch.zeros(3, dtype=torch.long), z)
    assert float((out - base).abs().max()) < 0.05  # starts near its blob
    assert float((base[0] - base[2]).abs().max()) > 0.05
    assert float((base[0] - base[1]).abs().max()) > 0.01
    # z = 0: the sphere of `radius`, as init="sphere" gives for every z
    zero = gen.base_sdf(torch.zeros(1, 16))
    sphere = ShapeGenerator(["a"], grid=12, width=4).base_sdf(torch.randn(1, 16))
    assert torch.allclose(zero, sphere, atol=1e-6)
    with pytest.raises(InputError, match="--init"):
        ShapeGenerator(["a"], init="cube")
    with pytest.raises(InputError, match="z_dim"):
        ShapeGenerator(["a"], init="blobs", z_dim=8)


def test_the_shipped_generator_loads_and_makes_one_shape_per_class():
    from polyfold.shape.one_step_run import load_generator

    gen, card = load_generator()
    assert gen.classes == ["chair", "table", "mug", "vase"]
    assert "train-one-step" in card["command"]
    grids, _ = generate_grids(gen, gen.classes, seed=0)
    assert grids.shape == (4, 24, 24, 24)
    assert bool(((grids < 0).flatten(1).any(1) & (grids > 0).flatten(1).any(1)).all())
    from polyfold.shape.learned_teacher import SHIPPED_TEACHER

    with pytest.raises(InputError, match="not a one-step shape generator"):
        load_generator(SHIPPED_TEACHER)
