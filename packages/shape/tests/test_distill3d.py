import itertools
import math

import pytest
import torch

from polyfold.core.distill import ddim_invert
from polyfold.core.errors import InputError
from polyfold.core.paths import VPCosine
from polyfold.core.samplers.steps import ddim_step
from polyfold.core.testing import GaussianMixture
from polyfold.shape.distill3d import DistillConfig, distill, pixel_clip
from polyfold.shape.teachers import ExactTeacher, RenderPosterior, posterior_mean
from polyfold.shape.volrender import cameras, render

PATH = VPCosine()


def _ball(r):
    return lambda p: p.norm(dim=-1) - r


def _box(h):
    return lambda p: (p.abs() - h).amax(-1)


def test_posterior_mean_is_the_exact_mixture_denoiser():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 5, generator=g, dtype=torch.float64)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64)
    got = posterior_mean(x, mu.expand(4, 3, 5), PATH.alpha(t), PATH.sigma(t))
    ref = GaussianMixture(mu, stds=0.0).x0_mean(x, t, PATH)
    assert torch.allclose(got, ref, atol=1e-10)
    wide = posterior_mean(x, mu.expand(4, 3, 5), PATH.alpha(t), PATH.sigma(t), tau=0.3)
    assert torch.allclose(wide, GaussianMixture(mu, stds=0.3).x0_mean(x, t, PATH), atol=1e-10)
    # by hand for one row: weights ~ exp(-|x - a mu_k|^2 / (2 s^2))
    a, s = float(PATH.alpha(t[1])), float(PATH.sigma(t[1]))
    w = torch.tensor([math.exp(-((x[1] - a * m) ** 2).sum() / (2 * s * s)) for m in mu])
    assert torch.allclose(got[1], (w / w.sum()).double() @ mu, atol=1e-10)


def test_render_posterior_is_consistent_and_guides():
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(2, 2, 2, 3, 3, generator=g, dtype=torch.float64)
    uncond = torch.cat([cond, torch.randn(2, 3, 2, 3, 3, generator=g, dtype=torch.float64)], 1)
    x = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    a, s = PATH.alpha(t)[:, None, None, None], PATH.sigma(t)[:, None, None, None]
    plain = RenderPosterior(cond, PATH, tau=0.2)(x, t)
    assert torch.allclose(a * plain.x0 + s * plain.eps, x, atol=1e-10)
    eps_c = plain.eps
    eps_u = RenderPosterior(uncond, PATH, tau=0.2)(x, t).eps
    guided = RenderPosterior(cond, PATH, tau=0.2, uncond=uncond, guidance=3.0)(x, t)
    assert torch.allclose(guided.eps, eps_u + 3.0 * (eps_c - eps_u), atol=1e-10)
    assert torch.allclose(a * guided.x0 + s * guided.eps, x, atol=1e-10)
    with pytest.raises(InputError, match="guidance"):
        RenderPosterior(cond, PATH, guidance=2.0)
    with pytest.raises(InputError, match="x: expected"):
        RenderPosterior(cond, PATH)(x[:1], t[:1])


def test_ddim_inversion_with_the_exact_teacher_returns_the_starting_latent():
    teacher = ExactTeacher({"c": [_ball(0.3), _box(0.25), _ball(0.15)]}, res=8, samples=24)
    cams = cameras([20.0, 35.0], [0.0, 90.0])
    d = teacher.denoiser("c", cams)
    g = torch.Generator().manual_seed(2)
    t0, t1 = 0.5, 0.8  # below ~0.4 the point-mass posterior is stiff: DDIM needs more steps
    mix = teacher.targets("c", cams).double().mean(1)
    x_start = float(PATH.alpha(t0)) * mix + float(PATH.sigma(t0)) * torch.randn(
        mix.shape, generator=g, dtype=torch.float64
    )
    x_end = ddim_invert(d, x_start, t0, t1, path=PATH, steps=200)
    assert float((x_end - x_start).abs().max()) > 0.1  # it went somewhere
    x = x_end
    ts = torch.linspace(t1, t0, 201, dtype=torch.float64)
    for a, b in itertools.pairwise(ts):
        x, _ = ddim_step(d, PATH, x, a.expand(2), b.expand(2))
    assert float((x - x_start).abs().max()) < 5e-3  # first order: 2.3e-3 at 200 steps


def test_exact_teacher_renders_and_caches_targets_per_camera():
    teacher = ExactTeacher({"a": [_ball(0.3)], "b": [_box(0.2), _ball(0.1)]}, res=8, samples=16)
    cams = cameras([10.0, 10.0], [0.0, 0.0])
    tg = teacher.targets("b", cams)
    assert tg.shape == (2, 2, 2, 8, 8)
    assert torch.equal(tg[0], tg[1])
    ref = render(_box(0.2), cameras([10.0], [0.0]), res=8, samples=16).image()[0]
    assert torch.allclose(tg[0, 0], ref.float())
    assert len(teacher._cache) == 2
    assert teacher.denoiser("a", cams, guidance=2.0).uncond.shape[1] == 3
    with pytest.raises(InputError, match="--class"):
        teacher.targets("chair", cams)
    with pytest.raises(InputError, match="guidance"):
        ExactTeacher({"a": [_ball(0.3)]}).denoiser("a", cams, guidance=2.0)


def test_pixel_clip_bounds_each_pixel_and_keeps_small_ones():
    g = torch.zeros(1, 2, 2, 2)
    g[0, :, 0, 0] = torch.tensor([3.0, 4.0])
    g[0, :, 1, 1] = torch.tensor([0.3, 0.4])
    c = pixel_clip(g, 1.0)
    assert torch.allclose(c[0, :, 0, 0], torch.tensor([0.6, 0.8]))
    assert torch.equal(c[0, :, 1, 1], g[0, :, 1, 1])


SMALL = {"grid": 12, "res": 12, "samples": 16, "views": 1, "aux_warmup": 2, "log_every": 1}


def test_sds_with_one_target_pulls_the_renders_towards_it():
    target = _box(0.3)
    teacher = ExactTeacher({"box": [target]}, res=12, samples=16)
    cams = cameras([25.0, 25.0], [45.0, -135.0])
    goal = render(target, cams, res=12, samples=16).image()

    def err(grids):
        from polyfold.shape.volrender import GridSDF

        with torch.no_grad():
            x = torch.cat([render(GridSDF(v), cams, res=12, samples=16).image() for v in grids])
        return float((x - goal).abs().mean())

    cfg = DistillConfig(method="sds", steps=25, lr=0.01, **SMALL)
    from polyfold.shape.volrender import sphere_grid

    before = err(sphere_grid(12, cfg.init_radius).values.detach()[None])
    out = distill(teacher, "box", cfg)
    assert err(out.grids) < 0.7 * before


@pytest.mark.parametrize("method", ["vsd", "ism", "tsm"])
def test_every_method_runs_and_logs(method):
    teacher = ExactTeacher({"m": [_ball(0.3), _box(0.2)]}, res=12, samples=16)
    cfg = DistillConfig(method=method, steps=2, particles=2 if method == "vsd" else 1, **SMALL)
    seen = []
    out = distill(teacher, "m", cfg, progress=lambda i, e: seen.append(i), snapshot_every=1)
    assert out.grids.shape == (cfg.particles, 12, 12, 12)
    assert bool(torch.isfinite(out.grids).all())
    assert seen == [1, 2]
    assert len(out.log) == 2
    assert ("aux_loss" in out.log[-1]) == (method == "vsd")
    assert out.snapshots[-1][1].shape == (cfg.particles * 12, 3 * 12)


def test_bad_method_class_or_steps_is_a_clear_error():
    teacher = ExactTeacher({"m": [_ball(0.3)]}, res=8, samples=8)
    with pytest.raises(InputError, match="--method"):
        distill(teacher, "m", DistillConfig(method="dds"))
    with pytest.raises(InputError, match="--steps"):
        distill(teacher, "m", DistillConfig(steps=0))
    with pytest.raises(InputError, match="--class"):
        distill(teacher, "chair", DistillConfig(steps=1))


def test_cli_distill_writes_mesh_renders_and_log(tmp_path):
    import json

    from typer.testing import CliRunner

    from polyfold.shape.cli import app

    def run(*args):
        return CliRunner().invoke(app, ["distill", *args], catch_exceptions=False)

    out = tmp_path / "d"
    r = run("--class", "mug", "--method", "sds", "--steps", "2", "--targets", "1")
    assert r.exit_code != 0  # --out is required
    r = run(
        *[
            "--class",
            "mug",
            "--method",
            "sds",
            "--steps",
            "2",
            "--targets",
            "1",
            "--quiet",
            "--out",
        ],
        str(out),
    )
    assert r.exit_code == 0, r.output
    assert (out / "shape-0.glb").stat().st_size > 0
    assert sorted(p.name for p in (out / "renders").iterdir()) == [
        "step-00001.png",
        "step-00002.png",
    ]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2
    assert log[-1]["nearest_0"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "sds"
    assert summary["chamfer_to_nearest_target"][0] > 0
    for args, match in (
        (["--class", "sofa"], "--class"),
        (["--method", "dds"], "--method"),
        (["--steps", "0"], "--steps"),
        (["--teacher", "dreamy"], "--teacher"),
    ):
        with pytest.raises(InputError, match=match):
            run(*args, "--out", str(tmp_path / "x"))


def test_ism_gradient_vanishes_with_point_mass_targets_but_not_when_widened():
    from polyfold.core.distill import ism_gradient

    cams = cameras([20.0, 20.0], [0.0, 90.0])
    field = ExactTeacher({"c": [_box(0.25), _ball(0.2)]}, res=8, samples=16)
    x = render(_ball(0.3), cams, res=8, samples=16).image().double()
    t = torch.tensor([0.4, 0.6], dtype=torch.float64)
    sharp = RenderPosterior(field.targets("c", cams).double(), PATH, tau=0.0)
    wide = RenderPosterior(field.targets("c", cams).double(), PATH, tau=0.1)
    g0 = ism_gradient(x, sharp, path=PATH, t=t)
    g1 = ism_gradient(x, wide, path=PATH, t=t)
    assert float(g0.abs().max()) < 1e-6 * float(g1.abs().max())
    assert float(g1.abs().max()) > 1e-3


def test_compare_methods_runs_each_method_on_the_same_budget():
    from polyfold.shape.distill_run import compare_methods

    teacher = ExactTeacher({"m": [_ball(0.3), _box(0.25)]}, res=12, samples=16)
    cfg = DistillConfig(steps=2, particles=2, **SMALL)
    rows, img = compare_methods(teacher, "m", ("sds", "vsd"), cfg)
    assert [r["method"] for r in rows] == ["sds", "vsd"]
    for r in rows:
        assert 0 < r["chamfer"] < 1  # spheres of radius 0.3 are close to both targets
        assert r["targets_reached"] in (1, 2)
    assert img.shape == (2 * 2 * 12, 3 * 12)
