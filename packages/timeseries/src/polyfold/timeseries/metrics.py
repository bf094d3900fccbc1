"""Quality of synthetic time-series windows: population-level and individual-level scores.

Every score takes the real and the synthetic windows, ``(N, L, C)`` arrays or tensors (the two
may hold different numbers of windows), and returns a Python float; lower is better for all.

Population level (PaD-TS, Li et al. 2025):

- :func:`vds`, value distribution shift: for each channel, the MMD between the distribution of
  its values (pooled over windows and time steps) in the real and the synthetic set, averaged
  over channels;
- :func:`fdds`, functional dependency distribution shift: for each pair of channels, the MMD
  between the distributions over windows of their cross-correlation (Pearson) coefficient,
  averaged over pairs.

Both use PaD-TS's MMD: the biased estimate ``mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``
with a sum of Gaussian kernels ``exp(-d^2 / (2 a))`` over a fixed set of bandwidths ``a``
(:func:`multiscale_mmd`), which is exactly zero for identical samples. (Core's
:func:`polyfold.core.metrics.mmd` is the unbiased single-bandwidth estimate, not this one.)
:func:`cross_correlation_coefficients` and :func:`cc_mmd` are differentiable: PaD-TS's
population-aware training loss is built on them.

Individual level (TimeGAN, Yoon et al. 2019; Diffusion-TS, Yuan & Qiao 2024):

- :func:`discriminative_score`: ``|accuracy - 0.5|`` of a small post-hoc GRU classifier
  trained to tell real from synthetic windows (80/20 split of each set);
- :func:`predictive_score`: train-on-synthetic-test-on-real MAE of a small GRU that predicts the
  last channel one step ahead from the other channels;
- :func:`correlational_score`: the summed absolute difference between the real and synthetic
  lag-0 cross-correlation matrices (lower triangle with the diagonal) divided by 10.

The GRU scores scale both sets by the real set's per-channel min and max (TimeGAN's
preprocessing) and take a ``torch.Generator`` (or seed) for the split, the initial weights and
the batches, so the same seed gives the same score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError

__all__ = [
    "FDDS_BANDWIDTHS",
    "VDS_BANDWIDTHS",
    "cc_mmd",
    "correlational_score",
    "cross_correlation_coefficients",
    "discriminative_score",
    "fdds",
    "multiscale_mmd",
    "predictive_score",
    "vds",
]

#: PaD-TS's kernel bandwidths (variances ``a`` of ``exp(-d^2 / (2 a))``) for the CC distributions.
FDDS_BANDWIDTHS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5, 0.7, 1.0)
#: PaD-TS's bandwidths for the value distributions.
VDS_BANDWIDTHS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5, 0.7, 1.0, 1.5, 2.0)


# --- inputs ---------------------------------------------------------------------------------


def _windows(x: object, name: str, dtype: torch.dtype = F64) -> Tensor:
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(f"{name}: expected numeric windows, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise InputError(f"{name}: expected an array or tensor (N, L, C), got {type(x).__name__}")
    if x.ndim != 3 or min(x.shape) < 1:
        raise InputError(f"{name}: expected windows of shape (N, L, C), got {tuple(x.shape)}")
    x = x.detach().to("cpu", dtype)
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{name}: contains NaN or infinite values")
    return x


def _pair(real: object, fake: object, min_n: int = 1, min_len: int = 1) -> tuple[Tensor, Tensor]:
    r, f = _windows(real, "real"), _windows(fake, "fake")
    if r.shape[1:] != f.shape[1:]:
        raise InputError(
            f"fake: expected windows of the real ones' length and channels {tuple(r.shape[1:])}, "
            f"got {tuple(f.shape[1:])}"
        )
    if min(len(r), len(f)) < min_n:
        raise InputError(f"real, fake: expected at least {min_n} windows each")
    if r.shape[1] < min_len:
        raise InputError(f"real: expected windows of length >= {min_len}, got {r.shape[1]}")
    return r, f


def _gen(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None or (isinstance(generator, int) and not isinstance(generator, bool)):
        return torch.Generator().manual_seed(0 if generator is None else generator)
    raise InputError(f"generator: expected a torch.Generator or an integer seed, got {generator!r}")


def _positive(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"{name}: expected an integer >= 1, got {v!r}")
    return v


# --- population-level statistics (differentiable) --------------------------------------------


def cross_correlation_coefficients(x: Tensor) -> Tensor:
    """Pearson correlation over time of every channel pair of every window: ``(B, L, C)`` to
    ``(B, C (C - 1) / 2)``, pairs ``(i, j)`` with ``i > j`` in row-major order of the lower
    triangle. A constant channel has coefficient 0 (PaD-TS replaces NaN by 0). Differentiable.
    """
    if not isinstance(x, Tensor) or x.ndim != 3:
        raise InputError("x: expected a tensor of windows (B, L, C)")
    c = x.shape[-1]
    xc = x - x.mean(dim=1, keepdim=True)
    cov = xc.mT @ xc  # (B, C, C)
    var = cov.diagonal(dim1=-2, dim2=-1)  # (B, C)
    rows, cols = torch.tril_indices(c, c, offset=-1, device=x.device)
    den2 = var[:, rows] * var[:, cols]
    tiny = torch.finfo(x.dtype).tiny
    ok = den2 > tiny
    den = torch.sqrt(torch.where(ok, den2, torch.ones_like(den2)))
    return torch.where(ok, cov[:, rows, cols] / den, torch.zeros_like(den2))


def multiscale_mmd(x: Tensor, y: Tensor, bandwidths: Sequence[float] = FDDS_BANDWIDTHS) -> Tensor:
    """Biased MMD^2 with the kernel ``sum_a exp(-|u - v|^2 / (2 a))``, batched over a leading
    dimension: ``x`` ``(P, N, D)``, ``y`` ``(P, M, D)`` give ``(P,)``. Zero when ``x == y``."""
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise InputError(
            f"x, y: expected (P, N, D) and (P, M, D), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not bandwidths or any(not a > 0 for a in bandwidths):
        raise InputError(f"bandwidths: expected positive numbers, got {bandwidths!r}")

    def sq_dist(u: Tensor, v: Tensor) -> Tensor:
        d = (u * u).sum(-1)[:, :, None] + (v * v).sum(-1)[:, None, :] - 2.0 * u @ v.mT
        return d.clamp_min(0.0)

    def k(d: Tensor) -> Tensor:
        return sum(torch.exp(-0.5 * d / a) for a in bandwidths)  # type: ignore[return-value]

    dxx, dyy, dxy = sq_dist(x, x), sq_dist(y, y), sq_dist(x, y)
    return k(dxx).mean((1, 2)) + k(dyy).mean((1, 2)) - 2.0 * k(dxy).mean((1, 2))


def cc_mmd(real: Tensor, fake: Tensor, bandwidths: Sequence[float] = FDDS_BANDWIDTHS) -> Tensor:
    """Mean over channel pairs of the MMD between the real and fake batches' distributions of
    cross-correlation coefficients (PaD-TS's population loss term); a differentiable scalar.
    Zero for fewer than two channels."""
    if real.shape[-1] < 2:
        return (fake * 0.0).sum()
    cr = cross_correlation_coefficients(real).mT[..., None]  # (P, N, 1)
    cf = cross_correlation_coefficients(fake).mT[..., None]
    return multiscale_mmd(cr, cf, bandwidths).mean()


# --- population-level scores ------------------------------------------------------------------


def fdds(
    real: np.ndarray | Tensor,
    fake: np.ndarray | Tensor,
    *,
    bandwidths: Sequence[float] = FDDS_BANDWIDTHS,
) -> float:
    """Functional dependency distribution shift (PaD-TS): :func:`cc_mmd` of the two sets.

    Needs windows of length >= 2 and at least 2 channels."""
    r, f = _pair(real, fake, min_len=2)
    if r.shape[2] < 2:
        raise InputError(f"real: FDDS needs at least 2 channels, got {r.shape[2]}")
    with torch.no_grad():
        return float(cc_mmd(r, f, bandwidths))


def vds(
    real: np.ndarray | Tensor,
    fake: np.ndarray | Tensor,
    *,
    max_values: int = 2000,
    bandwidths: Sequence[float] = VDS_BANDWIDTHS,
    generator: torch.Generator | int | None = None,
) -> float:
    """Value distribution shift (PaD-TS): per channel, the MMD between the real and synthetic
    values pooled over windows and time, averaged over channels.

    Each side uses at most ``max_values`` values per channel drawn without replacement with
    ``generator`` (PaD-TS draws 10000 on a GPU; the kernel matrices grow as its square); two
    sets of the same size share the draw, so identical sets score exactly 0."""
    r, f = _pair(real, fake)
    _positive("max_values", max_values)
    gen = _gen(generator)

    perms: dict[int, Tensor] = {}  # one draw per size: identical sets give exactly 0

    def pick(x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])  # (N L, C)
        if len(flat) > max_values:
            if len(flat) not in perms:
                perms[len(flat)] = torch.randperm(len(flat), generator=gen)[:max_values]
            flat = flat[perms[len(flat)]]
        return flat.mT[..., None]  # (C, n, 1)

    return float(multiscale_mmd(pick(r), pick(f), bandwidths).mean())


def correlational_score(real: np.ndarray | Tensor, fake: np.ndarray | Tensor) -> float:
    """Diffusion-TS's correlational score: each set standardised per channel (over windows and
    time), its lag-0 cross-correlation matrix ``mean(x_i x_j)``; the score is the sum over the
    lower triangle (with the diagonal) of the absolute differences, divided by 10."""
    r, f = _pair(real, fake)

    def ccm(x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        std = flat.std(0)
        z = (flat - flat.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
        c = x.shape[-1]
        rows, cols = torch.tril_indices(c, c)
        return (z[:, rows] * z[:, cols]).mean(0)

    return float((ccm(r) - ccm(f)).abs().sum() / 10.0)


# --- post-hoc GRU scores ------------------------------------------------------------------------


class _GRUHead(nn.Module):
    """One GRU layer and a linear read-out, for each time step or the last one."""

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x: Tensor, last: bool) -> Tensor:
        h, _ = self.gru(x)
        out: Tensor = self.out(h[:, -1] if last else h)
        return out


def _min_max(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    lo = real.amin(dim=(0, 1))
    span = real.amax(dim=(0, 1)) - lo
    span = torch.where(span > 0, span, torch.ones_like(span))
    return ((real - lo) / span).float(), ((fake - lo) / span).float()


def _build(n_in: int, hidden: int, n_out: int, gen: torch.Generator) -> _GRUHead:
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _GRUHead(n_in, hidden, n_out)


def discriminative_score(
    real: np.ndarray | Tensor,
    fake: np.ndarray | Tensor,
    *,
    iterations: int = 2000,
    batch_size: int = 128,
    hidden: int | None = None,
    lr: float = 1e-3,
    generator: torch.Generator | int | None = None,
) -> float:
    """TimeGAN's discriminative score ``|accuracy - 0.5|`` (0 = indistinguishable).

    A GRU (``hidden`` units, default ``max(C // 2, 1)`` as TimeGAN) with a logistic read-out of
    its last state is trained for ``iterations`` Adam steps on 80% of each set (real = 1,
    synthetic = 0, balanced batches) and tested on the remaining 20%."""
    r, f = _pair(real, fake, min_n=5)
    _positive("iterations", iterations)
    _positive("batch_size", batch_size)
    gen = _gen(generator)
    r, f = _min_max(r, f)
    c = r.shape[-1]
    model = _build(c, hidden or max(c // 2, 1), 1, gen)

    def split(x: Tensor) -> tuple[Tensor, Tensor]:
        idx = torch.randperm(len(x), generator=gen)
        n_train = round(0.8 * len(x))
        return x[idx[:n_train]], x[idx[n_train:]]

    (r_tr, r_te), (f_tr, f_te) = split(r), split(f)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    half = max(batch_size // 2, 1)
    for _ in range(iterations):
        xr = r_tr[torch.randint(0, len(r_tr), (half,), generator=gen)]
        xf = f_tr[torch.randint(0, len(f_tr), (half,), generator=gen)]
        logits = model(torch.cat([xr, xf]), last=True).squeeze(-1)
        labels = torch.cat([torch.ones(half), torch.zeros(half)])
        opt.zero_grad(set_to_none=True)
        loss_fn(logits, labels).backward()
        opt.step()
    with torch.no_grad():
        pr = model(r_te, last=True).squeeze(-1) > 0
        pf = model(f_te, last=True).squeeze(-1) > 0
    correct = int(pr.sum()) + int((~pf).sum())
    return abs(correct / (len(r_te) + len(f_te)) - 0.5)


def predictive_score(
    real: np.ndarray | Tensor,
    fake: np.ndarray | Tensor,
    *,
    iterations: int = 5000,
    batch_size: int = 128,
    hidden: int | None = None,
    lr: float = 1e-3,
    generator: torch.Generator | int | None = None,
) -> float:
    """TimeGAN's predictive score: train on synthetic, test on real (MAE, lower is better).

    A GRU (``hidden`` units, default ``max(C // 2, 1)``) reads channels ``0 .. C-2`` at steps
    ``0 .. L-2`` and predicts channel ``C-1`` at steps ``1 .. L-1`` (a one-channel series
    predicts itself one step ahead); trained with the L1 loss for ``iterations`` Adam steps on
    the synthetic windows, scored by its mean absolute error on all real windows."""
    r, f = _pair(real, fake, min_len=2)
    _positive("iterations", iterations)
    _positive("batch_size", batch_size)
    gen = _gen(generator)
    r, f = _min_max(r, f)
    c = r.shape[-1]
    n_in = c - 1 if c > 1 else 1

    def xy(x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, :-1, :n_in], x[:, 1:, c - 1 :]

    model = _build(n_in, hidden or max(c // 2, 1), 1, gen)
    fx, fy = xy(f)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(iterations):
        idx = torch.randint(0, len(fx), (min(batch_size, len(fx)),), generator=gen)
        pred = torch.sigmoid(model(fx[idx], last=False))
        loss = (pred - fy[idx]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    rx, ry = xy(r)
    with torch.no_grad():
        pred = torch.sigmoid(model(rx, last=False))
    return float((pred - ry).abs().mean())
