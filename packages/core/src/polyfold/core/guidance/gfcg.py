r"""Gradient-free classifier guidance (GFCG; Shenoy et al., "Gradient-Free Classifier Guidance for
Diffusion Model Sampling").

A classifier of clean data, run in inference mode only (no gradients), looks at the current data
estimate ``x0_hat`` at every step and gives class probabilities ``p(k | x0_hat)``. For target
class ``c`` it picks, per example,

- the reference class ``r = argmax_{k != c} p(k | x0_hat)``: the class the sample is most easily
  mistaken for now (the paper's choice);
- the time-adaptive scale ``w_t = scale * p_r / (p_c + p_r)``: near ``scale`` while the classifier
  prefers the reference class, ``scale / 2`` on a tie and near 0 once the sample is clearly of
  class ``c`` (guidance is spent where the sample is confused and fades when it is not);

and extrapolates away from the reference-class prediction:

    D = D_base + w_t (D(x | c) - D(x | r))      (for both x0 and eps, so the pair stays consistent)

with ``D_base = D(x | c)``, or with CFG ``D_base = D_u + w_cfg (D(x | c) - D_u)`` (the paper
combines GFCG with CFG and autoguidance this way). ``x0_hat`` is ``D_base``'s data prediction.
A step costs the base call (one batched ``2B`` call with CFG) plus one call for the reference
class. ``scale = 0`` returns the base prediction itself: the unguided (or CFG) sampler, exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, ModelDenoiser
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import Wrapper, check_scale, denoise, leaves
from polyfold.core.guidance.cfg import CFG
from polyfold.core.state import State, expand_to, tree_map

__all__ = ["GFCG", "ClassifierFn", "gfcg"]

#: ``classifier(x0_hat) -> (B, K)`` logits (log-probabilities up to a constant per example).
ClassifierFn = Any


def _labels(cond: Any, b: int) -> Tensor:
    """The target labels of a conditional network as ``(B,)`` integers, or InputError."""
    bad = isinstance(cond, bool) or not isinstance(cond, int | Tensor)
    c = None if bad else torch.as_tensor(cond)
    if c is None or c.is_floating_point() or c.is_complex() or c.dtype == torch.bool:
        raise InputError(
            f"cond: GFCG needs integer class labels as the network's condition, got {cond!r:.60}"
        )
    if c.ndim == 0 or c.numel() == 1:
        return c.reshape(()).expand(b).long()
    if c.shape != (b,):
        raise InputError(f"cond: expected an int or ({b},) labels, got shape {tuple(c.shape)}")
    return c.long()


class GFCG(Wrapper):
    """Gradient-free classifier guidance as a denoiser; built by :func:`gfcg`."""

    def __init__(
        self,
        cond: ModelDenoiser,
        classifier: ClassifierFn,
        scale: float,
        *,
        uncond: Any = None,
        cfg_scale: float = 1.0,
    ) -> None:
        if not isinstance(cond, ModelDenoiser):
            raise InputError(
                "cond: expected a class-conditional network wrapped by "
                f"polyfold.core.denoiser.as_denoiser(model, paths, cond=labels), got {cond!r}"
            )
        if not callable(classifier):
            raise InputError(
                f"classifier: expected a callable x0 -> (B, K) logits, got {classifier!r}"
            )
        self.cond, self.classifier = cond, classifier
        self.scale = check_scale(scale, "scale", 0.0)
        self.cfg_scale = check_scale(cfg_scale, "cfg_scale")
        if uncond is None and self.cfg_scale != 1.0:
            raise InputError(
                "uncond: CFG with cfg_scale != 1 needs an unconditional denoiser or null"
            )
        self.cfg: CFG | None = None if uncond is None else CFG(cond, uncond, self.cfg_scale)
        self.counter = cond.counter
        self.last_reference: Tensor | None = None  # the reference classes of the last call
        self.last_weight: Tensor | None = None  # and their guidance weights w_t

    @property
    def nfe(self) -> int:
        """Network evaluations made through the wrapped network so far."""
        return self.counter.count

    def _choose(self, x0: State, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(reference class, w_t)`` per example from the classifier on ``x0``."""
        with torch.no_grad():
            logits = self.classifier(x0)
        if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != len(target):
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise InputError(f"classifier: expected ({len(target)}, K) logits, got {got}")
        k = logits.shape[1]
        if k < 2 or bool(((target < 0) | (target >= k)).any()):
            raise InputError(
                f"cond: class labels must lie in [0, {k}) for a classifier of {k} classes, got "
                f"{sorted(set(target.tolist()))[:8]}"
            )
        logp = torch.log_softmax(logits.detach().double(), dim=1).cpu()
        tgt = target.cpu()
        masked = logp.scatter(1, tgt[:, None], -torch.inf)
        ref = masked.argmax(1)
        lp_c, lp_r = logp.gather(1, tgt[:, None])[:, 0], logp.gather(1, ref[:, None])[:, 0]
        weight = self.scale * torch.sigmoid(lp_r - lp_c)  # p_r / (p_c + p_r)
        return ref, weight

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        if self.cfg is None:
            base = denoise(self.cond, x, t, levels)
        elif self.scale == 0.0:
            return self.cfg._eval(x, t, levels)
        else:
            c, u = self.cfg._both(x, t, levels)
            base = self.cfg._combine(c, u)
        if self.scale == 0.0:
            return base
        target = _labels(self.cond.cond, leaves(x)[0].shape[0])
        ref, weight = self._choose(base.x0, target)
        self.last_reference, self.last_weight = ref, weight
        on_target = base if self.cfg is None else c
        ref_net = ModelDenoiser(
            self.cond.model,
            self.cond.paths,
            prediction=self.cond.prediction,
            cond=ref.to(target.device),
            counter=self.counter,
        )
        r = denoise(ref_net, x, t, levels)

        def push(b: Tensor, on: Tensor, off: Tensor) -> Tensor:
            w = expand_to(weight.to(device=b.device, dtype=b.dtype), b)
            return b + w * (on - off.to(b.dtype))

        return Denoised(
            tree_map(push, base.x0, on_target.x0, r.x0),
            tree_map(push, base.eps, on_target.eps, r.eps),
        )

    def __repr__(self) -> str:
        return f"GFCG(scale={self.scale}, cfg_scale={self.cfg_scale if self.cfg else None})"


def gfcg(
    cond: ModelDenoiser,
    classifier: ClassifierFn,
    scale: float,
    *,
    uncond: Any = None,
    cfg_scale: float = 1.0,
) -> GFCG:
    """Gradient-free classifier guidance (see the module docstring for the formulas).

    Args:
        cond: the class-conditional network wrapped by
            :func:`~polyfold.core.denoiser.as_denoiser` with ``cond`` the target labels (an int
            or a ``(B,)`` integer tensor); the reference class goes to the same network.
        classifier: ``classifier(x0_hat) -> (B, K)`` logits of a classifier of clean data (any
            callable; it is called without gradients).
        scale: the GFCG scale (>= 0; 0 is the base sampler exactly).
        uncond: for GFCG combined with CFG, the unconditional denoiser or the null condition
            (as :func:`~polyfold.core.guidance.cfg`); ``None``: no CFG.
        cfg_scale: the CFG scale of the base prediction (with ``uncond``).
    """
    return GFCG(cond, classifier, scale, uncond=uncond, cfg_scale=cfg_scale)
