import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.shape.msdf import MSDF
from polyfold.shape.volrender import (
    MLPSDF,
    GridBatch,
    GridSDF,
    cameras,
    grid_sdf,
    msdf_field,
    random_cameras,
    render,
    sphere_grid,
)

R, RADIUS = 64, 0.3


def _ball(p):
    return p.norm(dim=-1) - RADIUS


def test_sphere_silhouette_area_matches_the_projected_disk():
    cams = cameras([0.0, 35.0, -20.0], [0.0, 120.0, -75.0])
    out = render(_ball, cams, res=R, samples=96, beta=1e-3)
    # the silhouette of a sphere at distance D is a disk of angular radius asin(r / D)
    half = math.tan(math.radians(cams.fov) / 2)
    rad_px = R / 2 * math.tan(math.asin(RADIUS / cams.radius)) / half
    area = math.pi * rad_px**2
    got = out.opacity.sum((1, 2))
    assert torch.allclose(got, torch.full_like(got, area), rtol=0.03)
    # the same for every view direction; opacity in [0, 1]; background empty
    assert float(out.opacity.min()) >= 0
    assert float(out.opacity.max()) <= 1 + 1e-6
    assert float(out.opacity[:, 0, 0].max()) < 1e-6


def test_sphere_normals_are_radial_and_face_the_camera():
    cams = cameras([30.0], [45.0])
    out = render(_ball, cams, res=R, samples=96, beta=1e-3)
    inside = out.opacity[0] > 0.999
    n = out.normal[0][:, inside]  # (3, M)
    # analytic: the first hit of each ray on the sphere has the radial normal
    eye = cams.eye()[0].float()
    d = out.depth[0][inside]  # expected hit distances are depths of opaque pixels
    from polyfold.shape.volrender import _rays

    dirs = _rays(cams, R)[1][0].float()[inside.reshape(-1)]
    hit = eye + d[:, None] * dirs
    radial = hit / hit.norm(dim=-1, keepdim=True)
    cos = (n.T / n.T.norm(dim=-1, keepdim=True) * radial).sum(-1)
    assert float(cos.min()) > 0.98
    assert float((hit.norm(dim=-1) - RADIUS).abs().max()) < 0.02
    centre = out.normal[0][:, R // 2, R // 2]
    assert float((centre / centre.norm()) @ (eye / eye.norm())) > 0.99


def test_grid_and_mlp_spheres_render_like_the_analytic_one():
    cams = cameras([20.0], [10.0])
    with torch.no_grad():
        ref = render(_ball, cams, res=24, samples=48).opacity
        grid = render(sphere_grid(40, RADIUS), cams, res=24, samples=48).opacity
        mlp = render(MLPSDF(radius=RADIUS), cams, res=24, samples=48).opacity
    assert float((grid - ref).abs().mean()) < 0.01
    assert float((mlp - ref).abs().mean()) < 1e-4


def test_msdf_field_renders():
    g = torch.linspace(-1, 1, 3)
    coords = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1) * 0.5  # nodes, x slowest
    m = MSDF(torch.zeros(1, 3), torch.tensor([0.5]), (coords.norm(dim=-1) - RADIUS)[None])
    out = render(msdf_field(m), cameras([0.0], [0.0]), res=16, samples=32)
    assert float(out.opacity[0, 8, 8]) > 0.99
    assert float(out.opacity[0, 0, 0]) < 1e-3


def test_gradient_through_the_renderer_matches_finite_differences():
    torch.manual_seed(0)
    grid = sphere_grid(8, 0.35, dtype=torch.float64)
    with torch.no_grad():
        grid.values.add_(0.01 * torch.randn_like(grid.values))
    cams = cameras([15.0, 40.0], [30.0, -100.0])
    weights = torch.randn(2, 2, 8, 8, dtype=torch.float64)

    def objective() -> torch.Tensor:
        return (render(grid, cams, res=8, samples=24, beta=0.05).image() * weights).sum()

    objective().backward()
    grad = grid.values.grad.clone()
    idx = torch.argsort(grad.abs().reshape(-1), descending=True)[:6]
    h = 1e-6
    for i in idx.tolist():
        with torch.no_grad():
            flat = grid.values.view(-1)
            flat[i] += h
            up = objective()
            flat[i] -= 2 * h
            down = objective()
            flat[i] += h
        fd = float((up - down) / (2 * h))
        assert fd == pytest.approx(float(grad.reshape(-1)[i]), rel=1e-4, abs=1e-8)


def test_random_cameras_respect_their_ranges_and_bad_input_is_refused():
    cams = random_cameras(64, elevation=(10, 30), azimuth=(-45, 45))
    assert len(cams) == 64
    assert float(cams.elevation.min()) >= 10
    assert float(cams.elevation.max()) <= 30
    assert float(cams.azimuth.abs().max()) <= 45
    assert torch.allclose(cams.eye().norm(dim=-1), torch.full((64,), cams.radius).double())
    with pytest.raises(InputError, match="elevation"):
        random_cameras(2, elevation=(30, 10))
    with pytest.raises(InputError, match="elevation"):
        random_cameras(2, elevation=(0, 90))
    with pytest.raises(InputError, match="values"):
        GridSDF(torch.zeros(4, 4))
    with pytest.raises(InputError, match="field"):
        render(lambda p: p, cameras([0.0], [0.0]), res=4, samples=4)


def test_grid_batch_renders_each_grid_as_its_own_pass_with_the_same_gradients():
    gen = torch.Generator().manual_seed(0)
    vals = sphere_grid(12, 0.3).values.detach() + 0.03 * torch.randn(3, 12, 12, 12, generator=gen)
    cams = random_cameras(6, generator=gen)  # grid-major: grid i sees cameras 2i, 2i + 1
    a = vals.clone().requires_grad_(True)
    batched = render(GridBatch(a, 2), cams, res=8, samples=10).image()
    b = vals.clone().requires_grad_(True)
    one = [
        render(lambda p, i=i: grid_sdf(b[i], p), cams[2 * i : 2 * i + 2], res=8, samples=10).image()
        for i in range(3)
    ]
    torch.testing.assert_close(batched, torch.cat(one))
    w = torch.randn(batched.shape, generator=gen)
    (batched * w).sum().backward()
    (torch.cat(one) * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    with pytest.raises(InputError, match="GridBatch"):
        render(GridBatch(vals, 3), cams, res=8, samples=10)
    with pytest.raises(InputError, match=r"\(G, R, R, R\)"):
        GridBatch(vals[0])
