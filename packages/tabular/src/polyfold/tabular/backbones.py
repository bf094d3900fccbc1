"""The classifiers behind TabEBM's energy: a pluggable protocol and its implementations.

For each class c, TabEBM fits a *binary* classifier to "class c rows" (label 0) against a few
surrogate negatives (label 1) and reads the class energy off its two logits,
``E_c(x) = -logsumexp(f_c(x))``. A backbone is anything with

    fit(X, y, *, seed) -> logits_fn

where ``X`` is the (n, d) float32 standardised matrix, ``y`` the (n,) int64 labels in {0, 1},
and ``logits_fn(x)`` returns (B, 2) unnormalised logits, differentiable in ``x`` (SGLD needs
the gradient of the energy).

Backbones here:

* ``"pfn"``: polyfold's own prior-fitted network (:mod:`polyfold.tabular.pfn`), the default
  (:func:`default_backbone`) when its checkpoint ships with the package: it classifies in
  context, like TabPFN, so nothing is trained per class.
* ``"mlp"`` (:class:`MLPEnsemble`): a few small SiLU MLPs trained together (one batched
  forward), full batch, class-balanced cross-entropy with an L2 penalty; the logits are the
  members' mean. The penalty fixes the logits' free offset (cross-entropy only sees
  ``f0 - f1``): the cheapest weights put ``f0 = -f1``, so ``logsumexp`` grows with the
  classifier's confidence, as TabPFN's does, and the energy is low where the class is.
* ``"logistic"`` (:class:`LogisticBackbone`): one L2-penalised linear classifier; the simplest
  possible energy, kept for comparison.
* ``"tabpfn"`` (:class:`TabPFNBackbone`): the paper's classifier, when the ``tabpfn`` package
  is installed and its weights are on local disk (``model_path=`` or ``$TABPFN_MODEL_PATH``).
  It is imported only when used, and never downloads anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.tabular.pfn import PFNBackbone, default_checkpoint

__all__ = [
    "BACKBONES",
    "Backbone",
    "LogisticBackbone",
    "LogitsFn",
    "MLPEnsemble",
    "TabPFNBackbone",
    "default_backbone",
    "energy_from_logits",
    "get_backbone",
]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
"""``logits_fn(x (B, d)) -> (B, 2)`` unnormalised logits, differentiable in ``x``."""


@runtime_checkable
class Backbone(Protocol):
    """A binary classifier for TabEBM's surrogate task (see the module docstring)."""

    name: str

    def fit(self, X: torch.Tensor, y: torch.Tensor, *, seed: int) -> LogitsFn: ...


def energy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """TabEBM's class energy ``E(x) = -logsumexp_k f(x)[k]`` from (B, K) logits -> (B,)."""
    if logits.dim() != 2:
        raise InputError(f"logits: expected a (B, K) tensor, got shape {tuple(logits.shape)}")
    return -torch.logsumexp(logits, dim=1)


def _class_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-row weights that give both labels the same total weight."""
    counts = torch.bincount(y, minlength=2).clamp_min(1).to(torch.float32)
    return (counts.sum() / (2 * counts))[y]


class _BatchedMLP(nn.Module):
    """``members`` independent MLPs d -> hidden -> hidden -> 2, evaluated in one batched pass."""

    def __init__(self, d: int, hidden: int, members: int, generator: torch.Generator) -> None:
        super().__init__()

        def init(fan_in: int, fan_out: int) -> nn.Parameter:
            bound = 1.0 / fan_in**0.5
            w = (torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            return nn.Parameter(w)

        self.w1, self.w2, self.w3 = init(d, hidden), init(hidden, hidden), init(hidden, 2)
        self.b1 = nn.Parameter(torch.zeros(members, 1, hidden))
        self.b2 = nn.Parameter(torch.zeros(members, 1, hidden))
        self.b3 = nn.Parameter(torch.zeros(members, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (members, B, 2)."""
        h = nn.functional.silu(torch.matmul(x, self.w1) + self.b1)
        h = nn.functional.silu(torch.bmm(h, self.w2) + self.b2)
        return torch.bmm(h, self.w3) + self.b3


class MLPEnsemble:
    """An ensemble of small MLPs, trained per class (see the module docstring)."""

    name = "mlp"

    def __init__(
        self,
        members: int = 4,
        hidden: int = 64,
        steps: int = 300,
        lr: float = 1e-2,
        weight_decay: float = 1e-3,
    ) -> None:
        if members < 1 or hidden < 1 or steps < 1 or lr <= 0 or weight_decay < 0:
            raise InputError(
                "MLPEnsemble: members, hidden and steps must be >= 1, lr > 0, weight_decay >= 0"
            )
        self.members, self.hidden, self.steps = members, hidden, steps
        self.lr, self.weight_decay = lr, weight_decay

    def fit(self, X: torch.Tensor, y: torch.Tensor, *, seed: int) -> LogitsFn:
        gen = torch.Generator().manual_seed(seed)
        net = _BatchedMLP(X.shape[1], self.hidden, self.members, gen).to(X.device)
        weights = _class_weights(y)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                logits = net(X)  # (M, n, 2)
                ce = nn.functional.cross_entropy(
                    logits.reshape(-1, 2), y.repeat(self.members), reduction="none"
                )
                loss = (ce * weights.repeat(self.members)).mean() * self.members
                l2 = sum(p.pow(2).sum() for p in (net.w1, net.w2, net.w3, net.b3))
                loss = loss + self.weight_decay * l2
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        net.requires_grad_(False)
        net.eval()

        def logits_fn(x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = net(x)
            return out.mean(dim=0)

        return logits_fn


class LogisticBackbone:
    """One L2-penalised logistic classifier (two logits)."""

    name = "logistic"

    def __init__(self, steps: int = 200, lr: float = 5e-2, weight_decay: float = 1e-2) -> None:
        self.steps, self.lr, self.weight_decay = steps, lr, weight_decay

    def fit(self, X: torch.Tensor, y: torch.Tensor, *, seed: int) -> LogitsFn:
        gen = torch.Generator().manual_seed(seed)
        w = (torch.randn(X.shape[1], 2, generator=gen) * 0.01).to(X.device).requires_grad_(True)
        b = torch.zeros(2, device=X.device, requires_grad=True)
        weights = _class_weights(y)
        opt = torch.optim.Adam([w, b], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                ce = nn.functional.cross_entropy(X @ w + b, y, reduction="none")
                loss = (ce * weights).mean() + self.weight_decay * (w.pow(2).sum() + b.pow(2).sum())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        w_f, b_f = w.detach(), b.detach()

        def logits_fn(x: torch.Tensor) -> torch.Tensor:
            return x @ w_f + b_f

        return logits_fn


class TabPFNBackbone:
    """TabPFN (v2 API, as TabEBM's reference uses it) from weights on local disk.

    ``model_path`` (or ``$TABPFN_MODEL_PATH``) must name a checkpoint file that exists:
    nothing is downloaded. TabPFN's preprocessing is switched off (SGLD needs gradients with
    respect to the raw inputs), so one estimator is used, as in the reference implementation.
    """

    name = "tabpfn"

    def __init__(self, model_path: str | os.PathLike[str] | None = None, device: str = "cpu"):
        path = model_path or os.environ.get("TABPFN_MODEL_PATH")
        if not path:
            raise InputError(
                "backbone 'tabpfn': pass model_path= (or set TABPFN_MODEL_PATH) to a TabPFN "
                "classifier checkpoint on local disk; polyfold never downloads weights"
            )
        if not Path(path).is_file():
            raise InputError(f"backbone 'tabpfn': model_path {str(path)!r} is not a file")
        try:
            import tabpfn  # noqa: F401
        except ImportError:
            raise InputError(
                "backbone 'tabpfn' needs the tabpfn package (pip install tabpfn) and its "
                "weights on local disk; use backbone='mlp' otherwise"
            ) from None
        self.model_path = str(path)
        self.device = device

    def fit(self, X: torch.Tensor, y: torch.Tensor, *, seed: int) -> LogitsFn:  # pragma: no cover
        # Requires tabpfn and its weights, neither of which ships with polyfold's test setup.
        from tabpfn import TabPFNClassifier
        from tabpfn.config import ModelInterfaceConfig, PreprocessorConfig

        config = ModelInterfaceConfig(
            FINGERPRINT_FEATURE=False,
            FEATURE_SHIFT_METHOD=None,
            CLASS_SHIFT_METHOD=None,
            PREPROCESS_TRANSFORMS=[PreprocessorConfig(name="none")],
        )
        model: Any = TabPFNClassifier(
            model_path=self.model_path,
            n_estimators=1,
            fit_mode="batched",
            inference_config=config,
            device=self.device,
            random_state=seed,
        )
        from tabpfn.utils import meta_dataset_collator

        def preprocessed(Xa: torch.Tensor, ya: torch.Tensor) -> tuple[Any, ...]:
            def split(Xs: Any, ys: Any, **_: Any) -> tuple[Any, Any, Any, Any]:
                return Xs, Xs[:0], ys, ys[:0]

            sets = model.get_preprocessed_datasets(
                Xa.cpu().numpy(), ya.cpu().numpy(), split, max_data_size=10000
            )
            loader = torch.utils.data.DataLoader(
                sets, batch_size=1, collate_fn=meta_dataset_collator
            )
            return tuple(next(iter(loader)))

        X_tr, _, y_tr, _, cat_ix, confs = preprocessed(X, y)
        model.fit_from_preprocessed(
            [t.to(self.device) for t in X_tr], [t.to(self.device) for t in y_tr], cat_ix, confs
        )

        def logits_fn(x: torch.Tensor) -> torch.Tensor:
            out = model.forward([x.unsqueeze(0).to(self.device)], return_logits=True)
            logits: torch.Tensor = out.reshape(-1, out.shape[-1])[:, :2]
            return logits.to(x.device)

        return logits_fn


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "mlp": MLPEnsemble,
    "logistic": LogisticBackbone,
    "tabpfn": TabPFNBackbone,
}


def default_backbone() -> str:
    """``"pfn"`` when the in-house PFN's checkpoint ships with the package, else ``"mlp"``."""
    return "pfn" if default_checkpoint() is not None else "mlp"


def get_backbone(backbone: str | Backbone, **kwargs: Any) -> Backbone:
    """A backbone by name (``mlp``, ``logistic``, ``tabpfn``, ``pfn``) or the object itself."""
    if not isinstance(backbone, str):
        if not isinstance(backbone, Backbone):
            raise InputError(
                f"backbone: expected a name or an object with fit(X, y, *, seed) -> logits_fn, "
                f"got {type(backbone).__name__}"
            )
        return backbone
    if backbone == "pfn":
        return PFNBackbone(**kwargs)
    if backbone not in BACKBONES:
        names = ", ".join([*BACKBONES, "pfn"])
        raise InputError(f"backbone: unknown name {backbone!r}; choose one of {names}")
    return BACKBONES[backbone](**kwargs)
