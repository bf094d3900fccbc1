import json

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.shape.msdf import MSDF, evaluate_volume, load_msdf, save_msdf, to_mesh
from polyfold.shape.one_step3d import (
    OneStepConfig,
    ShapeGenerator,
    generate_msdfs,
    msdf_eikonal,
    render_error,
    train_one_step,
)
from polyfold.shape.teachers import ExactTeacher
from polyfold.shape.volrender import MSDFBatch, cameras, msdf_field, render

SMALL = {"grids": 16, "k": 3, "res": 12, "samples": 16, "width": 16, "views": 1, "log_every": 1}


def _box(h):
    return lambda p: (p.abs() - h).amax(-1)


def _ball(r):
    return lambda p: p.norm(dim=-1) - r


def test_one_pass_gives_one_valid_msdf_per_row_near_its_start():
    torch.manual_seed(0)
    gen = ShapeGenerator(["a", "b"], grids=8, k=3, width=16, z_dim=12)
    z = torch.randn(5, 12)
    labels = torch.tensor([0, 1, 0, 1, 1])
    with torch.no_grad():
        c, s, v = gen(labels, z)
    assert (c.shape, s.shape, v.shape) == ((5, 8, 3), (5, 8), (5, 8, 3, 3, 3))
    assert v.dtype == torch.float32
    ms = gen.msdfs(labels, z)
    assert [m.cls for m in ms] == ["a", "b", "a", "b", "b"]
    assert all(isinstance(m, MSDF) and (m.n, m.k) == (8, 3) for m in ms)  # validated by MSDF
    # it starts at its blob: the values are the blob's SDF at the grid nodes (small head)
    lin = torch.linspace(-1, 1, 3)
    grid = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1)
    nodes = c[:, :, None, None, None] + s[..., None, None, None, None] * grid
    with torch.no_grad():
        base = gen.base_sdf(nodes.reshape(5, -1, 3), z).reshape(v.shape)
    assert float((v - base).abs().max()) < 0.05
    assert torch.allclose(s, torch.full_like(s, gen.scale), atol=0.01)
    # each row is its own (class, z): the batch is the same as one pass per shape
    with torch.no_grad():
        one = [gen(labels[i : i + 1], z[i : i + 1]) for i in range(5)]
        other_z, other_class = gen(labels[:1], z[1:2])[2], gen(labels[1:2], z[:1])[2]
    for part, whole in zip(zip(*one, strict=True), (c, s, v), strict=True):
        assert torch.allclose(torch.cat(part), whole, atol=1e-6)
    assert float((v[0] - other_z[0]).abs().max()) > 1e-3  # z matters
    assert float((v[0] - other_class[0]).abs().max()) > 0  # the class matters


def test_generated_msdfs_are_part_one_files_and_meshes(tmp_path):
    gen = ShapeGenerator(["a", "b"], grids=16, k=3, width=16)
    ms, secs = generate_msdfs(gen, ["a", "b"], seed=3)
    again, _ = generate_msdfs(gen, ["a", "b"], seed=3)
    assert secs >= 0
    assert torch.equal(ms[0].values, again[0].values)  # seeded
    assert float((ms[0].values - ms[1].values).abs().max()) > 1e-3  # different z differ
    save_msdf(ms[0], tmp_path / "a.msdf")
    back = load_msdf(tmp_path / "a.msdf")
    assert back.cls == "a"
    assert torch.equal(back.values, ms[0].values)
    v, _ = to_mesh(evaluate_volume(back, 32))
    r = np.linalg.norm(v, axis=1)
    assert 0.15 < float(np.median(r)) < 0.45  # the starting blob's surface


def test_msdf_batch_renders_like_each_msdf_on_its_own():
    gen = ShapeGenerator(["a"], grids=16, k=3, width=16)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(2, dtype=torch.long)
    cams = cameras([20.0, 35.0], [0.0, 100.0])
    c, s, v = gen(labels, z)
    x = render(MSDFBatch(c, s, v, 2), cams.tile(2), res=10, samples=12).image()
    ms = gen.msdfs(labels, z)
    one = torch.cat([render(msdf_field(m), cams, res=10, samples=12).image() for m in ms])
    torch.testing.assert_close(x, one, atol=1e-5, rtol=1e-5)
    x.sum().backward()  # differentiable in every part of the M-SDF
    params = dict(gen.named_parameters())
    assert float(params["decode.2.weight"].grad.abs().sum()) > 0
    with pytest.raises(InputError, match="MSDFBatch"):
        render(MSDFBatch(c, s, v, 3), cams.tile(2), res=4, samples=4)
    with pytest.raises(InputError, match="MSDFBatch"):
        MSDFBatch(c[0], s, v)


def test_msdf_eikonal_is_zero_for_a_plane_and_positive_otherwise():
    lin = torch.linspace(-1, 1, 4)
    x = torch.meshgrid(lin, lin, lin, indexing="ij")[0]
    s = torch.tensor([0.2, 0.5])
    plane = torch.stack([x * 0.2, x * 0.5])  # distance to the plane x = 0 in each grid's frame
    assert float(msdf_eikonal(s, plane)) == pytest.approx(0.0, abs=1e-10)
    assert float(msdf_eikonal(s, 2 * plane)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("method", ["sds", "vsd"])
def test_a_few_steps_move_the_renders_towards_the_teacher(method):
    teacher = ExactTeacher({"box": [_box(0.3)], "ball": [_ball(0.2)]}, res=12, samples=16)
    cams = cameras([25.0, 25.0], [45.0, -135.0])
    target = teacher.targets("box", cams)
    cfg = OneStepConfig(classes=["box"], method=method, steps=20, lr=0.01, aux_warmup=2, **SMALL)
    torch.manual_seed(cfg.seed)  # the generator train_one_step starts from
    start = ShapeGenerator(["box"], grids=16, k=3, width=16, init=cfg.init, render=cfg.render_kw)
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
    gen = ShapeGenerator(["box"], grids=4, k=3, width=4)
    with pytest.raises(InputError, match="unknown class 'mug'"):
        generate_msdfs(gen, ["mug"])
    with pytest.raises(InputError, match="--grids"):
        ShapeGenerator(["box"], grids=0)
    with pytest.raises(InputError, match="--k"):
        train_one_step(teacher, OneStepConfig(k=1, steps=1))
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
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert names == ["chair-0.glb", "chair-0.msdf", "mug-0.glb", "mug-0.msdf"]
    assert load_msdf(out / "samples" / "mug-0.msdf").cls == "mug"
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
    gen = ShapeGenerator(["a"], grids=8, k=3, width=4, init="blobs")
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    z[1] = z[0]
    z[1, 4:] += 1.0  # only the sines' weights differ
    p = torch.rand(1, 500, 3).expand(3, -1, -1) - 0.5
    base = gen.base_sdf(p, z)
    assert float((base[0] - base[2]).abs().max()) > 0.05
    assert float((base[0] - base[1]).abs().max()) > 0.01
    # z = 0: the sphere of `radius`, as init="sphere" gives for every z
    zero = gen.base_sdf(p[:1], torch.zeros(1, 16))
    sphere = ShapeGenerator(["a"], grids=8, k=3, width=4, init="sphere")
    assert torch.allclose(zero, sphere.base_sdf(p[:1], torch.randn(1, 16)), atol=1e-6)
    assert torch.allclose(zero, p[:1].norm(dim=-1) - 0.3, atol=1e-6)
    # the grids start around the blob's centre
    with torch.no_grad():
        c, _, _ = gen(torch.zeros(3, dtype=torch.long), z)
    torch.testing.assert_close(c.mean(1), gen.shift(z), atol=0.02, rtol=0)
    with pytest.raises(InputError, match="--init"):
        ShapeGenerator(["a"], init="cube")
    with pytest.raises(InputError, match="z_dim"):
        ShapeGenerator(["a"], init="blobs", z_dim=8)


def test_the_shipped_generator_loads_and_makes_one_msdf_per_class():
    from polyfold.shape.one_step_run import load_generator

    gen, card = load_generator()
    assert gen.classes == ["chair", "table", "mug", "vase"]
    assert "train-one-step" in card["command"]
    ms, _ = generate_msdfs(gen, gen.classes, seed=0)
    assert [m.cls for m in ms] == gen.classes
    for m in ms:
        vol = evaluate_volume(m, 32)
        assert float(vol.min()) < 0 < float(vol.max())  # a surface to mesh
    from polyfold.shape.learned_teacher import SHIPPED_TEACHER

    with pytest.raises(InputError, match="not a one-step shape generator"):
        load_generator(SHIPPED_TEACHER)


def test_the_teacher_copy_auxiliary_trains_without_touching_the_teacher():
    from polyfold.shape.learned_teacher import load_teacher

    teacher = load_teacher()
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    cfg = OneStepConfig(
        classes=["mug", "chair"],
        aux="teacher",
        steps=2,
        batch=1,
        views=1,
        aux_warmup=1,
        grids=8,
        k=3,
        width=16,
        **teacher.render_kw,
    )
    res = train_one_step(teacher, cfg)
    assert "aux" in res.log[-1]
    after = teacher.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the auxiliary is a copy
    with pytest.raises(InputError, match="--aux"):
        train_one_step(
            ExactTeacher({"box": [_box(0.3)]}, res=8, samples=8),
            OneStepConfig(aux="teacher", steps=1),
        )
    with pytest.raises(InputError, match="--aux"):
        OneStepConfig(aux="lora").check()
