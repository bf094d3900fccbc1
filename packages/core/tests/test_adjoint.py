"""AdjointDPM against finite differences and back-propagation through the sampler."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polyfold.core.adjoint import adjoint_gradients, adjoint_sample, pf_ode_sample
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VE, LinearInterpolant, VPCosine, VPLinear
from polyfold.core.samplers import get_sampler, log_snr_grid, uniform_t_grid

F64 = torch.float64


class Net(nn.Module):
    """A small conditional network ``(x, t, cond) -> prediction`` for 2-d states."""

    def __init__(self, d: int = 2, c: int = 3) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(d + 1 + c, 32), nn.Tanh(), nn.Linear(32, d))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = cond.expand(x.shape[0], -1)
        return self.f(torch.cat([x, t[:, None].to(x.dtype), c], 1))  # type: ignore[no-any-return]


class DictNet(nn.Module):
    """A network over ``{"a": (B, 3, 2), "b": (B, 2)}`` states coupling both keys."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(9, 24), nn.Tanh(), nn.Linear(24, 8))

    def forward(self, x: dict, t: torch.Tensor, cond: object) -> dict:
        h = torch.cat([x["a"].flatten(1), x["b"], t[:, None].to(x["b"].dtype)], 1)
        out = self.f(h)
        return {"a": out[:, :6].reshape(-1, 3, 2), "b": out[:, 6:]}


def loss(y: torch.Tensor) -> torch.Tensor:
    return (y**2).sum() + (y[:, 0] * y[:, 1]).sum()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def setup() -> tuple[Net, torch.Tensor, torch.Tensor]:
    net = Net().to(F64)
    g = torch.Generator().manual_seed(1)
    return net, torch.randn(5, 2, generator=g, dtype=F64), torch.randn(1, 3, generator=g, dtype=F64)


def test_matches_finite_differences_in_noise_condition_and_parameters() -> None:
    net, x, cond = setup()
    path = VPLinear()
    grid = log_snr_grid(path, 40, append_zero=True)
    res = adjoint_gradients(net, path, x, grid, loss, prediction="eps", cond=cond)

    def value() -> float:
        with torch.no_grad():
            out = pf_ode_sample(net, path, x, grid, prediction="eps", cond=cond)
            return float(loss(out))

    h = 1e-6
    for target, grad in ((x, res.grad_x), (cond, res.grad_cond)):
        v = torch.randn(target.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
        target += h * v
        up = value()
        target -= 2 * h * v
        down = value()
        target += h * v
        fd = (up - down) / (2 * h)
        assert float((grad * v).sum()) == pytest.approx(fd, rel=1e-4)
    weight = net.f[0].weight
    with torch.no_grad():
        weight[0, 1] += h
        up = value()
        weight[0, 1] -= 2 * h
        down = value()
        weight[0, 1] += h
    assert float(res.grad_params[0][0, 1]) == pytest.approx((up - down) / (2 * h), rel=1e-4)
    assert res.loss == pytest.approx(value(), rel=1e-12)
    assert res.nfe_forward == 2 * 39 + 1  # Heun steps, then the final denoising step


def test_matches_backprop_through_core_ddim() -> None:
    net, x, cond = setup()
    path = VPCosine()
    grid = log_snr_grid(path, 60, append_zero=True)
    res = adjoint_gradients(
        net, path, x, grid, loss, prediction="eps", cond=cond, order=1, refine=2
    )
    xr, cr = x.clone().requires_grad_(True), cond.clone().requires_grad_(True)
    den = as_denoiser(net, path, prediction="eps", cond=cr)
    out = get_sampler("ddim")(den, path, xr, grid).x
    assert torch.allclose(res.x, out.detach(), rtol=0, atol=1e-12)
    ps = list(net.parameters())
    grads = torch.autograd.grad(loss(out), [xr, cr, *ps])
    assert rel(res.grad_x, grads[0]) < 1e-3
    assert rel(res.grad_cond, grads[1]) < 1e-3
    for mine, ref in zip(res.grad_params, grads[2:], strict=True):
        assert rel(mine, ref) < 1e-3


@pytest.mark.parametrize(
    ("path", "prediction", "start"),
    [(VE(), "v", None), (LinearInterpolant(), "velocity", 0.98)],
)
def test_autograd_function_on_other_paths(path: object, prediction: str, start: object) -> None:
    net, x, cond = setup()
    grid = log_snr_grid(path, 60, t_start=start, t_end=1e-3)  # type: ignore[arg-type]
    xr = x.clone().requires_grad_(True)
    cr = cond.clone().requires_grad_(True)
    out = adjoint_sample(net, path, xr, grid, prediction=prediction, cond=cr)  # type: ignore[arg-type]
    loss(out).backward()
    xb, cb = x.clone().requires_grad_(True), cond.clone().requires_grad_(True)
    ref = pf_ode_sample(net, path, xb, grid, prediction=prediction, cond=cb)  # type: ignore[arg-type]
    ps = list(net.parameters())
    grads = torch.autograd.grad(loss(ref), [xb, cb, *ps])
    assert torch.equal(out.detach(), ref.detach())
    assert rel(xr.grad, grads[0]) < 1e-3
    assert rel(cr.grad, grads[1]) < 1e-3
    for p, g in zip(ps, grads[2:], strict=True):
        assert p.grad is not None
        assert rel(p.grad, g) < 1e-3


def test_dict_state_with_per_key_paths_and_mask() -> None:
    net = DictNet().to(F64)
    paths = {"a": VPLinear(), "b": VPCosine()}
    g = torch.Generator().manual_seed(3)
    x = {"a": torch.randn(4, 3, 2, generator=g, dtype=F64), "b": torch.randn(4, 2, generator=g)}
    x["b"] = x["b"].to(F64)
    mask = {"a": torch.tensor([[True, True, False]] * 4), "b": None}
    grid = uniform_t_grid(VPLinear(), 50, t_start=0.99, t_end=0.02)

    def dict_loss(y: dict) -> torch.Tensor:
        return (y["a"] ** 2).sum() + (y["b"] * y["a"][:, 0]).sum()

    res = adjoint_gradients(net, paths, x, grid, dict_loss, prediction="eps", mask=mask)
    xb = {k: v.clone().requires_grad_(True) for k, v in x.items()}
    ref = pf_ode_sample(net, paths, xb, grid, prediction="eps", mask=mask)
    assert torch.equal(ref["a"][:, 2], x["a"][:, 2])  # padding untouched
    grads = torch.autograd.grad(dict_loss(ref), [xb["a"], xb["b"], *net.parameters()])
    assert rel(res.grad_x["a"], grads[0]) < 1e-3
    assert rel(res.grad_x["b"], grads[1]) < 1e-3
    assert torch.equal(res.x["a"][:, 2], x["a"][:, 2])
    for mine, want in zip(res.grad_params, grads[2:], strict=True):
        assert rel(mine, want) < 1e-3


def test_backward_memory_does_not_keep_a_graph_across_steps() -> None:
    net, x, cond = setup()
    path = VPLinear()
    counts = []
    for steps in (5, 40):
        saved = []

        def pack(t: torch.Tensor, saved: list = saved) -> torch.Tensor:
            saved.append(t.numel())
            return t

        xr = x.clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = adjoint_sample(
                net, path, xr, log_snr_grid(path, steps), prediction="eps", cond=cond
            )
        counts.append(sum(saved))
        loss(out).backward()
    assert counts[0] == counts[1] == 0  # the forward keeps no graph at all


def test_bad_input() -> None:
    net, x, cond = setup()
    path = VPLinear()
    grid = log_snr_grid(path, 4, append_zero=True)
    with pytest.raises(InputError, match="loss: returned nan"):
        adjoint_gradients(
            net, path, x, grid, lambda y: y.sum() * float("nan"), prediction="eps", cond=cond
        )
    with pytest.raises(InputError, match="scalar"):
        adjoint_gradients(net, path, x, grid, lambda y: y, prediction="eps", cond=cond)
    with pytest.raises(InputError, match="alpha"):
        adjoint_gradients(
            net, LinearInterpolant(), x, [1.0, 0.5, 0.1], loss, prediction="eps", cond=cond
        )
    with pytest.raises(InputError, match="decreasing"):
        adjoint_gradients(net, path, x, [0.5, 0.9], loss, prediction="eps", cond=cond)
    with pytest.raises(InputError, match="order"):
        adjoint_gradients(net, path, x, grid, loss, prediction="eps", cond=cond, order=3)
    xr = x.clone().requires_grad_(True)
    out = adjoint_sample(net, path, xr, grid, prediction="eps", cond=cond)
    with pytest.raises(InputError, match="NaN"):
        (out * float("nan")).sum().backward()
