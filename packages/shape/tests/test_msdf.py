import math

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.shape.convert import ConvertConfig, Target, convert, farthest_points
from polyfold.shape.metrics import chamfer
from polyfold.shape.msdf import (
    FAR,
    MSDF,
    evaluate_sparse,
    evaluate_volume,
    evaluate_volume_dense,
    load_msdf,
    save_msdf,
    to_mesh,
)
from polyfold.shape.procshapes import Shape
from polyfold.shape.sdf import box, sphere


def _target(f, name):
    from polyfold.shape.convert import target_of

    return target_of(Shape(name, 0, f), samples=4000, res=48)


@pytest.mark.parametrize("name", ["sphere", "box"])
def test_msdf_reproduces_an_analytic_sdf_near_the_surface(name):
    f = sphere((0.05, 0, 0), 0.3) if name == "sphere" else box((0, 0, 0), (0.3, 0.2, 0.25))
    tgt = _target(f, name)
    m = convert(tgt, ConvertConfig(n=64, k=5, steps=20, surface_samples=4000))
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(tgt.surface[:2000]) + 0.01 * torch.randn(
        2000, 3, generator=g, dtype=torch.float64
    )
    fm, den = evaluate_sparse(m.to(torch.float64), x)
    assert (den > 0).all()  # every near-surface point is covered
    err = (fm - f(x)).abs()
    assert err.mean() < 2e-3
    assert err.max() < 0.02
    v, _faces = to_mesh(evaluate_volume(m, 48))
    assert chamfer(v, tgt.surface) < 1e-3


def test_sparse_volume_equals_the_dense_reference():
    g = torch.Generator().manual_seed(0)
    n, k = 24, 4
    m = MSDF(
        torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5,
        0.05 + 0.15 * torch.rand(n, generator=g, dtype=torch.float64),
        torch.randn(n, k, k, k, generator=g, dtype=torch.float64),
    )
    a, b = evaluate_volume(m, 20), evaluate_volume_dense(m, 20)
    assert torch.allclose(a, b, atol=1e-9, rtol=0)


def test_uncovered_enclosed_voxels_are_inside():
    tgt = _target(sphere((0, 0, 0), 0.4), "big")
    m = convert(tgt, ConvertConfig(n=48, k=4, steps=0, surface_samples=4000))
    vol = evaluate_volume(m, 24)
    assert vol[12, 12, 12] < 0
    assert vol[0, 0, 0] > 0


def test_farthest_points_is_order_invariant():
    g = torch.Generator().manual_seed(1)
    p = torch.randn(300, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(300, generator=g)
    a = p[farthest_points(p, 20)]
    b = p[perm][farthest_points(p[perm], 20)]
    assert torch.equal(a, b)


def test_msdf_file_round_trip_and_errors(tmp_path):
    m = MSDF(torch.zeros(2, 3), torch.full((2,), 0.1), torch.ones(2, 3, 3, 3), "mug")
    save_msdf(m, tmp_path / "a.msdf")
    r = load_msdf(tmp_path / "a.msdf")
    assert r.cls == "mug"
    assert torch.equal(r.values, m.values)
    (tmp_path / "bad.msdf").write_text("not a tensor file")
    with pytest.raises(InputError, match="not an M-SDF file"):
        load_msdf(tmp_path / "bad.msdf")
    with pytest.raises(InputError, match="scales must be positive"):
        MSDF(torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3, 3, 3))
    with pytest.raises(InputError, match="no zero crossing"):
        to_mesh(torch.ones(8, 8, 8))


def test_target_type_is_checked():
    from polyfold.shape.convert import target_of

    with pytest.raises(InputError, match="Mesh or a procedural Shape"):
        target_of(np.zeros(3))  # type: ignore[arg-type]
    assert Target  # re-exported for callers building their own


def test_reconstruction_metrics_of_a_sphere():
    from polyfold.shape.convert import target_of
    from polyfold.shape.evaluation import reconstruction_metrics

    tgt = target_of(Shape("ball", 0, sphere((0, 0, 0), 0.35)), samples=20_000, res=48)
    m = convert(tgt, ConvertConfig(n=64, k=5, steps=0, surface_samples=20_000))
    r = reconstruction_metrics(m, tgt, res=48, points=20_000)  # sparser samples cap F-scores
    assert r["fscore_2pct"] > 0.95
    assert r["iou"] > 0.95
    assert r["normal_consistency"] > 0.95
    assert r["chamfer"] < 3 * r["chamfer_floor"]
    # against the exact sphere: no sampling floor, and marching cubes of the true SDF is ~exact
    assert tgt.analytic
    assert r["chamfer_exact_floor"] < 1e-6 < r["chamfer_exact"] < r["chamfer"]


def test_refinement_recovers_thin_parts_that_sdf_queries_alone_lose():
    from polyfold.shape.convert import target_of
    from polyfold.shape.evaluation import target_chamfer
    from polyfold.shape.sdf import capsule, union

    f = union(box((0, 0.2, 0), (0.3, 0.03, 0.3)), capsule((0, 0.2, 0), (0, -0.4, 0), 0.015))
    tgt = target_of(Shape("stool", 0, f), samples=4000, res=64)
    errs = []
    for steps in (0, 40):
        m = convert(tgt, ConvertConfig(n=32, k=5, steps=steps, surface_samples=4000))
        errs.append(target_chamfer(*to_mesh(evaluate_volume(m, 64)), tgt, 4000))
    assert errs[1] < 0.5 * errs[0]


def test_an_enclosed_cavity_outside_the_solid_stays_outside():
    # A closed spherical shell (radius 0.3, half-thickness 0.04) covered only by grids along the
    # shell: its cavity is enclosed by the grids but outside the solid, and a solid ball's
    # uncovered core is inside. Each takes the sign of the SDF on the grids around it.
    i = torch.arange(300, dtype=torch.float64) + 0.5
    phi, z = math.pi * (1 + 5**0.5) * i, 1 - 2 * i / 300
    dirs = torch.stack([(1 - z**2).sqrt() * phi.cos(), (1 - z**2).sqrt() * phi.sin(), z], -1)
    lin = torch.linspace(-1, 1, 5, dtype=torch.float64)
    nodes = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(-1, 3)
    centres, s = 0.3 * dirs, 0.08
    xyz = (centres[:, None] + s * nodes[None]).reshape(-1, 3)
    for sdf, centre_sign in (
        (lambda p: (p.norm(dim=-1) - 0.3).abs() - 0.04, 1.0),  # shell: the cavity is outside
        (lambda p: p.norm(dim=-1) - 0.3, -1.0),  # ball: the core is inside
    ):
        scales = torch.full((300,), s, dtype=torch.float64)
        m = MSDF(centres, scales, sdf(xyz).reshape(300, 5, 5, 5))
        vol = evaluate_volume(m, 33)
        assert vol[16, 16, 16].item() == centre_sign * FAR
        torch.testing.assert_close(vol, evaluate_volume_dense(m, 33), rtol=0, atol=1e-6)
