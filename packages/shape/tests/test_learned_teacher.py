import json

import pytest
import torch
from typer.testing import CliRunner

from polyfold.core.errors import InputError
from polyfold.shape.cli import app
from polyfold.shape.distill3d import DistillConfig, distill
from polyfold.shape.learned_teacher import (
    SHIPPED_TEACHER,
    LearnedTeacher,
    TeacherConfig,
    cached_renders,
    fit_teacher,
    heldout_loss,
    load_teacher,
)
from polyfold.shape.teacher_net import TeacherUNet
from polyfold.shape.volrender import cameras

TINY = {"res": 8, "samples": 8, "beta": 0.01}


def _teacher(seed=0):
    torch.manual_seed(seed)
    net = TeacherUNet(["chair", "mug"], res=8, width=8, render=TINY)
    for p in net.parameters():  # a generic network (the output layer starts at zero)
        p.data.normal_(0, 0.2)
    return LearnedTeacher(net)


def _cams():
    return cameras([10.0, 25.0, 40.0], [-90.0, 0.0, 150.0])


def test_denoiser_has_the_denoiser_interface_and_shapes():
    t = _teacher()
    d = t.denoiser("mug", _cams())
    x = torch.randn(3, 2, 8, 8)
    tt = torch.full((3,), 0.4, dtype=torch.float64)
    out = d(x, tt)
    assert out.x0.shape == out.eps.shape == x.shape
    a, s = t.path.alpha(tt).float(), t.path.sigma(tt).float()
    recon = a[:, None, None, None] * out.x0 + s[:, None, None, None] * out.eps
    torch.testing.assert_close(recon, x, atol=1e-5, rtol=1e-5)
    assert t.classes == ["chair", "mug"]
    assert t.render_kw == TINY


def test_guidance_one_is_the_conditional_prediction_and_w_extrapolates():
    t = _teacher()
    cams = _cams()
    x = torch.randn(3, 2, 8, 8)
    tt = torch.full((3,), 0.6, dtype=torch.float64)
    emb = cams.embedding()
    with torch.no_grad():
        eps_c = t.model(x, tt, {"label": torch.ones(3, dtype=torch.long), "camera": emb})
        eps_u = t.model(x, tt, {"label": torch.full((3,), t.model.null), "camera": emb})
    assert (eps_c - eps_u).abs().max() > 1e-3  # the class matters
    torch.testing.assert_close(t.denoiser("mug", cams, guidance=1.0)(x, tt).eps, eps_c)
    guided = t.denoiser("mug", cams, guidance=3.0)(x, tt).eps
    torch.testing.assert_close(guided, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5, rtol=1e-5)
    # the camera matters too
    other = t.denoiser("mug", cameras([40.0] * 3, [90.0] * 3))(x, tt).eps
    assert (other - eps_c).abs().max() > 1e-3


@pytest.mark.parametrize("method", ["sds", "vsd", "ism", "tsm"])
def test_every_distillation_method_runs_on_the_learned_teacher(method):
    cfg = DistillConfig(
        method=method,
        steps=2,
        particles=2 if method == "vsd" else 1,
        grid=8,
        inversion_steps=3,
        aux_warmup=1,
        aux_width=8,
        guidance=2.0,
        **TINY,
    )
    out = distill(_teacher(), "chair", cfg)
    assert out.grids.shape == (cfg.particles, 8, 8, 8)
    assert bool(torch.isfinite(out.grids).all())
    assert out.log[-1]["grad_norm"] > 0


def test_a_tiny_training_run_lowers_the_loss_and_caches_its_renders(tmp_path):
    cfg = TeacherConfig(
        classes=["chair", "mug"], per_class=2, views=4, width=8, steps=60, batch_size=16, **TINY
    )
    data = cached_renders(tmp_path, cfg)
    assert data[0].shape == (16, 2, 8, 8)
    assert data[0].abs().max() <= 1 + 1e-5
    assert sorted(data[1].tolist()) == [0] * 8 + [1] * 8
    fresh = TeacherUNet(cfg.classes, res=8, width=8)  # predicts zero: loss E[eps^2] ~ 1
    before = heldout_loss(fresh, data)
    path, card = fit_teacher(tmp_path, cfg)
    trained = load_teacher(path)
    assert heldout_loss(trained.model, data) < 0.8 * before
    assert card["steps"] == 60
    assert card["metrics"]["heldout_loss"] > 0
    assert json.loads(path.with_suffix(".json").read_text())["card"]["classes"] == cfg.classes
    # the cache is read back, not rendered again
    again = cached_renders(tmp_path, cfg, progress=lambda i, n: pytest.fail("rendered again"))
    torch.testing.assert_close(again[0], data[0])


def test_bad_input_is_a_clear_error(tmp_path):
    t = _teacher()
    with pytest.raises(InputError, match=r"--class: unknown class 'sofa'.*chair, mug"):
        t.denoiser("sofa", _cams())
    with pytest.raises(InputError, match="nowhere"):
        load_teacher(tmp_path / "nowhere")
    with pytest.raises(InputError, match="--res"):
        TeacherConfig(res=10).check()
    with pytest.raises(InputError, match="--class"):
        TeacherConfig(classes=["sofa"]).check()
    with pytest.raises(InputError, match="x: expected renders"):
        t.model(torch.zeros(1, 2, 12, 12), torch.zeros(1), {"label": torch.zeros(1), "camera": 0})


def _distill(*args):
    return CliRunner().invoke(app, ["distill", *args], catch_exceptions=False)


def test_cli_distill_with_the_shipped_learned_teacher(tmp_path):
    shipped = load_teacher()
    assert shipped.card["metrics"]["heldout_loss"] < 1
    out = tmp_path / "d"
    r = _distill(
        *("--teacher", "learned", "--class", "mug", "--method", "ism", "--steps", "2"),
        *("--targets", "1", "--quiet", "--out", str(out)),
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["res"] == shipped.model.res
    assert summary["chamfer_to_nearest_target"][0] > 0
    assert (out / "log.jsonl").read_text().count("\n") == 1


def test_cli_distill_teacher_model_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match=r"missing\.json"):
        _distill(
            "--teacher",
            "learned",
            "--teacher-model",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "a"),
        )
    with pytest.raises(InputError, match="--teacher-model: only with --teacher learned"):
        _distill("--teacher-model", str(SHIPPED_TEACHER), "--out", str(tmp_path / "b"))
    with pytest.raises(InputError, match="--class: unknown class 'lamp'"):
        _distill("--teacher", "learned", "--class", "lamp", "--out", str(tmp_path / "c"))
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "c").exists()


def test_cli_train_teacher_writes_a_loadable_model_and_protects_its_run(tmp_path):
    out = tmp_path / "t"
    args = ["train-teacher", "--class", "chair,mug", "--per-class", "1", "--views", "2"]
    args += ["--res", "8", "--width", "8", "--steps", "4", "--quiet", "--out", str(out)]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    t = load_teacher(out / "model")
    assert t.classes == ["chair", "mug"]
    assert t.render_kw["res"] == 8
    assert (out / "renders.safetensors").exists()
    with pytest.raises(InputError, match="--resume"):
        CliRunner().invoke(app, args, catch_exceptions=False)
    with pytest.raises(InputError, match="--width"):
        CliRunner().invoke(
            app, [*args[:-2], "--width", "12", "--out", str(tmp_path / "w")], catch_exceptions=False
        )
    assert not (tmp_path / "w").exists()


def test_distilled_metrics_scores_every_shape_against_references():
    from polyfold.shape.distill_eval import distilled_metrics
    from polyfold.shape.evaluation import reference_points

    ref = reference_points("mug", 2, points=256)
    cfg = DistillConfig(method="sds", steps=2, particles=2, grid=12, **TINY)
    m = distilled_metrics(_teacher(), "mug", cfg, ref)
    assert m["1nna_cd"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert 0 < m["cov_cd"] <= 1
    assert m["mmd_cd"] > 0
    assert m["empty"] == 0
    assert m["seconds_per_shape"] == pytest.approx(2 * m["seconds_per_step"])
