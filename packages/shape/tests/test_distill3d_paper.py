"""The papers' pieces of VSD and ISM in distill3d: distinct particles, the auxiliary network's
denoising loss, ISM's weighting and its fixed point."""

import pytest
import torch

from polyfold.core.distill import ddim_invert, ism_gradient, vsd_aux_loss
from polyfold.core.errors import InputError
from polyfold.core.paths import VPCosine
from polyfold.core.samplers.steps import ddim_step
from polyfold.shape.distill3d import AuxNet, DistillConfig, initial_shapes
from polyfold.shape.teachers import RenderPosterior
from polyfold.shape.volrender import cameras, render, sphere_grid

PATH = VPCosine()


def test_particles_start_distinct_and_one_particle_is_the_sphere():
    cfg = DistillConfig(particles=4, grid=12)
    grids = [s.values.detach() for s in initial_shapes(cfg, torch.Generator().manual_seed(0))]
    assert len(grids) == 4
    for i in range(4):
        for j in range(i):
            assert float((grids[i] - grids[j]).abs().max()) > 0.05
    again = initial_shapes(cfg, torch.Generator().manual_seed(0))
    assert all(torch.equal(a.values, b) for a, b in zip(again, grids, strict=True))
    cams = cameras([25.0], [30.0])
    with torch.no_grad():
        opac = [float(render(s, cams, res=12, samples=16).opacity.mean()) for s in again]
    assert min(opac) > 0.05  # every start is a visible blob inside the volume
    one = initial_shapes(DistillConfig(particles=1, grid=12), torch.Generator().manual_seed(0))
    assert torch.equal(one[0].values, sphere_grid(12, cfg.init_radius).values)


def test_aux_network_denoising_loss_falls_on_fixed_renders():
    torch.manual_seed(0)
    x = torch.rand(4, 2, 12, 12) * 2 - 1
    cond = cameras([20.0, 20.0, 35.0, 35.0], [0.0, 90.0, 180.0, -90.0]).embedding()
    aux = AuxNet(width=16)
    opt = torch.optim.Adam(aux.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(64, 4, 2, 12, 12, generator=g)
    ts = torch.rand(64, 4, generator=g) * 0.9 + 0.05

    def held_out() -> float:
        with torch.no_grad():
            return sum(
                float(vsd_aux_loss(aux, x, path=PATH, cond=cond, noise=n, t=t))
                for n, t in zip(noise[:16], ts[:16], strict=True)
            )

    before = held_out()
    for _ in range(150):
        loss = vsd_aux_loss(aux, x, path=PATH, cond=cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_out() < 0.7 * before


def _ism_setup(tau):
    g = torch.Generator().manual_seed(3)
    mu = torch.rand(2, 1, 2, 6, 6, generator=g, dtype=torch.float64) * 2 - 1
    return mu, RenderPosterior(mu, PATH, tau=tau)


def test_ism_gradient_is_zero_at_the_target_where_inversion_is_exact():
    # one target widened by tau: from alpha(t_min) mu the DDIM trajectory is alpha(t) mu with
    # eps = 0 exactly, so x_s and x_t lie on the teacher's own DDIM path and G vanishes
    mu, d = _ism_setup(0.3)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    cfg = DistillConfig(method="ism")
    g = ism_gradient(mu[:, 0], d, path=PATH, t=t, weighting=cfg.weighting_value)
    assert float(g.abs().max()) < 1e-10
    off = mu[:, 0] + 0.2
    assert float(ism_gradient(off, d, path=PATH, t=t).abs().max()) > 1e-3


def test_ism_weighting_is_the_change_of_the_x0_estimate_over_the_interval():
    mu, d = _ism_setup(0.3)
    x = mu[:, 0] * 0.5
    t = torch.tensor([0.4, 0.8], dtype=torch.float64)
    cfg = DistillConfig(method="ism", delta_t=0.05, inversion_steps=8)
    assert DistillConfig(method="sds").weighting_value == "sigma2"
    g = ism_gradient(
        x, d, path=PATH, t=t, delta_t=0.05, inversion_steps=8, weighting=cfg.weighting_value
    )
    # LucidDreamer's w = sigma / alpha: G = x0(x_s, s) - x0(x_t, t), x_t = DDIM step from x_s
    s = t - 0.05
    start = PATH.alpha(torch.tensor(PATH.t_min)) * x
    x_s = ddim_invert(d, start, PATH.t_min, s, path=PATH, steps=8)
    x_t, d_s = ddim_step(d, PATH, x_s, s, t)
    assert torch.allclose(g, d_s.x0 - d(x_t, t).x0, atol=1e-9)
    with pytest.raises(InputError, match="weighting"):
        DistillConfig(weighting="snr").check()


def test_vsd_with_the_ideal_aux_is_zero_when_the_particles_are_the_targets():
    from polyfold.shape.distill3d import distill
    from polyfold.shape.teachers import ExactTeacher

    small = {"grid": 12, "res": 12, "samples": 16, "views": 1, "log_every": 1, "eikonal": 0.0}
    cfg = DistillConfig(method="vsd", aux="exact", steps=1, particles=2, **small)
    starts = initial_shapes(cfg, torch.Generator().manual_seed(cfg.seed))
    teacher = ExactTeacher({"p": starts}, res=12, samples=16, beta=cfg.beta)
    ideal = distill(teacher, "p", cfg).log[-1]["grad_norm"]
    sds = distill(teacher, "p", DistillConfig(method="sds", steps=1, particles=2, **small))
    assert ideal < 1e-4 < sds.log[-1]["grad_norm"]
    with pytest.raises(InputError, match="aux"):
        DistillConfig(aux="lora").check()
