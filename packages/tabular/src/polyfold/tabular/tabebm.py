"""TabEBM (Margeloiu et al.): one energy-based model per class, sampled with SGLD.

For each class c, in standardised space (see :mod:`polyfold.tabular.encoding`):

1. **Surrogate task.** The class's rows (label 0) against a few *surrogate negatives*
   (label 1) placed at corners of the hypercube ``[-alpha, alpha]^d``: the four corners
   ``(±alpha, ±alpha)`` when d = 2, otherwise two random corners and their antipodes (four
   points), as in the reference implementation (d = 1: the two points ``±alpha``).
2. **Energy.** A binary classifier ``f_c`` (the *backbone*, :mod:`polyfold.tabular.backbones`)
   fitted to that task gives ``E_c(x) = -logsumexp(f_c(x))``: low where the classifier is
   confident, i.e. near the class's rows, high in between.
3. **Sampling.** SGLD chains start at random rows of the class plus N(0, 0.01²) noise and run
   :func:`polyfold.tabular.sgld.tabebm_sgld` with the reference defaults (200 steps, step 0.1 on
   the gradient of the mean energy, noise std 0.01). The final states are decoded back to the
   original columns, categories and dtypes.

Defaults are the reference implementation's: ``alpha = 5``, the ``TABEBM_*`` constants of
:mod:`polyfold.tabular.sgld`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from polyfold.core.errors import InputError
from polyfold.tabular.backbones import (
    Backbone,
    LogitsFn,
    default_backbone,
    energy_from_logits,
    get_backbone,
)
from polyfold.tabular.encoding import TableEncoder, check_table, check_target, to_frame
from polyfold.tabular.sgld import (
    TABEBM_SGLD_NOISE_STD,
    TABEBM_SGLD_STEP_SIZE,
    TABEBM_SGLD_STEPS,
    TABEBM_START_NOISE_STD,
    tabebm_sgld,
)

__all__ = ["TABEBM_ALPHA", "TabEBM", "surrogate_negatives"]

TABEBM_ALPHA = 5.0
"""Reference distance of the surrogate negatives: every coordinate is ``±alpha``."""


def surrogate_negatives(d: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """TabEBM's surrogate negatives: corners of ``[-alpha, alpha]^d`` (see the module docstring).

    Returns a (4, d) array (a (2, 1) array when d = 1): for d > 2 two distinct random corners
    and their antipodes, so the negatives surround the standardised data symmetrically.
    """
    if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
        raise InputError(f"surrogate_negatives: d must be an integer >= 1, got {d!r}")
    if not (np.isfinite(alpha) and alpha > 0):
        raise InputError(f"surrogate_negatives: alpha must be a finite number > 0, got {alpha!r}")
    if d == 1:
        return np.array([[-alpha], [alpha]])
    if d == 2:
        return np.array([[-alpha, -alpha], [alpha, alpha], [-alpha, alpha], [alpha, -alpha]])
    corners: list[tuple[float, ...]] = []
    while len(corners) < 4:
        corner = tuple(rng.choice([-alpha, alpha], size=d).tolist())
        if corner not in corners:
            corners += [corner, tuple(-v for v in corner)]
    return np.asarray(corners, dtype=np.float64)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_pos(name: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    ok = ok and bool(np.isfinite(value)) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise InputError(
            f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}"
        )
    return float(value)


class TabEBM:
    """Class-specific energy-based data augmentation for small tables.

    >>> X_syn, y_syn = TabEBM().fit(X, y).sample(100, seed=0)   # 100 new rows per class

    ``X`` is a numpy array or a pandas DataFrame (numeric and categorical columns), ``y`` the
    class labels. ``backbone`` is a name (``"mlp"``, ``"logistic"``, ``"pfn"``, ``"tabpfn"``;
    None: :func:`~polyfold.tabular.backbones.default_backbone`)
    or an object following :class:`~polyfold.tabular.backbones.Backbone`; ``backbone_kwargs``
    go to its constructor. ``categorical`` names numeric columns to treat as categories.
    The fitted per-class classifiers are trained in :meth:`fit`; :meth:`sample` runs SGLD.
    """

    def __init__(
        self,
        backbone: str | Backbone | None = None,
        *,
        alpha: float = TABEBM_ALPHA,
        sgld_steps: int = TABEBM_SGLD_STEPS,
        sgld_step_size: float = TABEBM_SGLD_STEP_SIZE,
        sgld_noise_std: float = TABEBM_SGLD_NOISE_STD,
        start_noise_std: float = TABEBM_START_NOISE_STD,
        categorical: Sequence[Any] | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        backbone_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.alpha = _check_pos("alpha", alpha)
        self.sgld_steps = _check_int("sgld_steps", sgld_steps, 0)
        self.sgld_step_size = _check_pos("sgld_step_size", sgld_step_size)
        self.sgld_noise_std = _check_pos("sgld_noise_std", sgld_noise_std, allow_zero=True)
        self.start_noise_std = _check_pos("start_noise_std", start_noise_std, allow_zero=True)
        self.seed = _check_int("seed", seed, 0)
        self.categorical = list(categorical) if categorical is not None else None
        self.device = torch.device(device)
        self._auto_backbone = backbone is None
        if backbone is None:
            backbone = default_backbone()
        self.backbone = get_backbone(backbone, **dict(backbone_kwargs or {}))
        self._fitted = False

    # ----------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> TabEBM:
        """Encode ``X`` and fit one surrogate classifier per class of ``y``."""
        frame, _ = to_frame(X)
        check_table(frame)
        labels = check_target(y, len(frame))
        self.encoder_ = TableEncoder(self.categorical).fit(X)
        Z = self.encoder_.transform(X)
        self.y_is_series_ = isinstance(y, pd.Series)
        self.y_name_ = y.name if isinstance(y, pd.Series) else None
        self.y_dtype_ = labels.dtype
        self.classes_ = np.asarray(
            sorted(labels.unique().tolist(), key=lambda v: (str(type(v)), v))
        )
        rng = np.random.default_rng(self.seed)
        d = Z.shape[1]
        width = getattr(getattr(self.backbone, "model", None), "cfg", None)
        if self._auto_backbone and width is not None and d > width.max_features:
            warnings.warn(
                f"TabEBM: {d} encoded features exceed the prior-fitted network's "
                f"{width.max_features}; using the 'mlp' backbone instead",
                stacklevel=2,
            )
            self.backbone = get_backbone("mlp")
        self.negatives_: dict[Any, np.ndarray] = {}
        self.class_rows_: dict[Any, torch.Tensor] = {}
        self._logits: dict[Any, LogitsFn] = {}
        label_values = labels.to_numpy()
        for i, cls in enumerate(self.classes_):
            rows = Z[label_values == cls]
            negatives = surrogate_negatives(d, self.alpha, rng)
            X_ebm = torch.as_tensor(np.concatenate([rows, negatives]), dtype=torch.float32)
            y_ebm = torch.cat(
                [
                    torch.zeros(len(rows), dtype=torch.long),
                    torch.ones(len(negatives), dtype=torch.long),
                ]
            )
            self._logits[cls] = self.backbone.fit(
                X_ebm.to(self.device), y_ebm.to(self.device), seed=self.seed * 1000 + i
            )
            self.negatives_[cls] = negatives
            self.class_rows_[cls] = X_ebm[: len(rows)].to(self.device)
        self._fitted = True
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise InputError("TabEBM: call fit(X, y) before sample() or energy()")

    def _class(self, cls: Any) -> Any:
        for c in self.classes_:
            if c == cls:
                return c
        raise InputError(f"class {cls!r} was not seen in fit; classes: {self.classes_.tolist()}")

    def class_energy(self, cls: Any) -> Any:
        """``E_c``: a function of standardised (B, d) tensors returning (B,) energies."""
        self._check_fitted()
        logits_fn = self._logits[self._class(cls)]

        def energy(x: torch.Tensor) -> torch.Tensor:
            return energy_from_logits(logits_fn(x))

        return energy

    def energy(self, X: Any, cls: Any) -> np.ndarray:
        """Class ``cls``'s energy of each row of the table ``X`` (same columns as in fit)."""
        self._check_fitted()
        Z = torch.as_tensor(self.encoder_.transform(X), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            energies: np.ndarray = self.class_energy(cls)(Z).cpu().numpy().astype(np.float64)
        return energies

    # ----------------------------------------------------------------------------------------
    def sample_encoded(
        self,
        cls: Any,
        n: int,
        generator: torch.Generator,
        on_step: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """``n`` SGLD samples of class ``cls`` in standardised space, (n, d); ``on_step(k)`` is
        called after SGLD step k."""
        self._check_fitted()
        cls = self._class(cls)
        rows = self.class_rows_[cls]
        start = torch.randint(len(rows), (n,), generator=generator, device=self.device)
        noise = torch.randn(n, rows.shape[1], generator=generator, device=self.device)
        x0 = rows[start] + self.start_noise_std * noise
        if self.sgld_steps == 0:
            return x0
        return tabebm_sgld(
            x0,
            energy=self.class_energy(cls),
            generator=generator,
            steps=self.sgld_steps,
            step_size=self.sgld_step_size,
            noise_scale=self.sgld_noise_std,
            on_step=on_step,
        ).samples

    def sample(
        self,
        n_per_class: int | Mapping[Any, int],
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: Callable[[Any, int], None] | None = None,
    ) -> tuple[Any, Any]:
        """``(X_syn, y_syn)``: ``n_per_class`` new rows of each class (an int, or a mapping
        class -> count), in the input's format: a DataFrame (and Series) for pandas input, a
        numpy array otherwise. Same seed (or generator state), same rows.

        ``on_step(cls, k)`` is called after SGLD step k of class ``cls`` (classes in
        ``classes_`` order, ``sgld_steps`` steps each), e.g. to drive a progress display."""
        self._check_fitted()
        if isinstance(n_per_class, Mapping):
            counts = {
                self._class(c): _check_int(f"n_per_class[{c!r}]", n, 0)
                for c, n in n_per_class.items()
            }
        else:
            n = _check_int("n_per_class", n_per_class, 1)
            counts = dict.fromkeys(self.classes_, n)
        if generator is None:
            seed = self.seed if seed is None else _check_int("seed", seed, 0)
            generator = torch.Generator(device=self.device).manual_seed(seed)
        elif seed is not None:
            raise InputError("sample: pass seed= or generator=, not both")
        parts, labels = [], []
        for cls in self.classes_:
            n = counts.get(cls, 0)
            if n == 0:
                continue
            tick = None if on_step is None else (lambda k, c=cls: on_step(c, k))
            parts.append(self.sample_encoded(cls, n, generator, tick).detach().cpu().numpy())
            labels += [cls] * n
        d = self.encoder_.n_features_out
        Z = np.concatenate(parts) if parts else np.zeros((0, d))
        X_syn = self.encoder_.inverse_transform(Z)
        y_syn: Any = pd.Series(labels, name=self.y_name_, dtype=object).astype(self.y_dtype_)
        if not self.y_is_series_:
            y_syn = y_syn.to_numpy()
        return X_syn, y_syn
