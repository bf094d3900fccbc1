r"""Guidance: :class:`~polyfold.core.denoiser.Denoiser` wrappers that steer any sampler.

Every wrapper is itself a denoiser ``(x, t) -> Denoised(x0, eps)``, so it works with every
sampler of :mod:`polyfold.core.samplers` unchanged. On a path ``x_t = alpha x0 + sigma eps``:

- :func:`cfg`, classifier-free guidance (Ho & Salimans) with scale ``w``:
  ``x0 = x0_u + w (x0_c - x0_u)``, ``eps = eps_u + w (eps_c - eps_u)`` (``w = 1`` is the
  conditional model, ``w = 0`` the unconditional one; the pair stays consistent). With
  ``interval=(t_lo, t_hi)`` guidance acts only for ``t_lo <= t <= t_hi`` and the conditional
  prediction alone is used elsewhere (Kynkäänniemi et al., "Applying Guidance in a Limited
  Interval Improves Sample and Distribution Quality").
- :func:`cfg_pp`, CFG++ (Chung et al.): ``x0 = x0_u + lam (x0_c - x0_u)`` with ``lam`` in
  [0, 1] and ``eps = eps_u``, a deliberately inconsistent pair: samplers that re-noise with
  ``eps`` (DDIM: ``x' = alpha' x0 + sigma' eps``) re-noise with the unconditional noise. On one
  DDIM step from half log-SNR ``ell`` to ``ell' = ell + h`` (``ell = log(alpha/sigma)``) it
  equals CFG with ``w = lam / (1 - e^{-h})`` (:func:`cfg_pp_equivalent_scale`): small ``lam``
  is large ``w`` on fine grids.
- :func:`classifier_guidance`: ``score' = score + w grad_x log p(y | x_t)``, i.e.
  ``eps' = eps - w sigma grad`` and ``x0' = x0 + w (sigma^2/alpha) grad`` (Dhariwal & Nichol);
  by Bayes, ``w = 1`` with the exact classifier gives the exact conditional score.
- :func:`observation_guidance`: the same with ``grad = -grad_{x_t} E(x0_hat(x_t), t)`` for a
  differentiable energy ``E`` of the predicted data, back-propagated through the denoiser:
  TSDiff's self-guidance (``E`` the MSE or quantile loss on the observed entries, and
  ``eps' = eps + w sigma grad_x E`` exactly as its DDIM guidance), DPS-style reconstruction
  (``E = ||y - A(x0_hat)||``: DPS's step ``zeta / ||y - A(x0_hat)||`` on the squared norm is
  the gradient of the norm), motion editing. ``sigma_scaling=False`` drops the ``sigma``:
  ``eps' = eps + w grad_x E``.
- :func:`gfcg`, gradient-free classifier guidance (:mod:`~polyfold.core.guidance.gfcg`): a clean
  classifier in inference mode picks a reference class and a time-adaptive scale per step;
  ``D = D_base + w_t (D_c - D_ref)``, combinable with CFG.
- :func:`inpaint`: replacement in the known entries: ``x0 = y`` there and
  ``eps = (x - alpha y)/sigma`` (the pair stays consistent), the unknown entries as predicted.
  Exponential-integrator samplers (DDIM, DPM-Solver(++), UniPC, DEIS) are exact on constant
  predictions, so the known entries of the state stay exactly ``alpha_t y + sigma_t eps_0``
  (``y`` re-noised to the current time with the initial noise ``eps_0``) and reach ``y`` at the
  data point; with ``generator`` the network instead sees them re-noised with fresh noise at
  every call (the classic replacement of Song et al.). RePaint's resampling (jump back up and
  denoise again) is a sampler: :func:`polyfold.core.samplers.repaint.repaint`.

A wrapper's ``nfe`` counts network evaluations (one per call of a wrapped
:class:`~polyfold.core.denoiser.ModelDenoiser`, whatever its batch size); a sampler's
``SampleResult.nfe`` counts calls of the wrapper. Batched CFG evaluates the conditional and the
unconditional predictions in one network call on a ``2B`` batch.
"""

from polyfold.core.guidance.cfg import CFG, cfg, cfg_pp, cfg_pp_equivalent_scale, drop_labels
from polyfold.core.guidance.gfcg import GFCG, gfcg
from polyfold.core.guidance.gradient import (
    ClassifierGuidance,
    ObservationGuidance,
    classifier_guidance,
    observation_guidance,
)
from polyfold.core.guidance.inpaint import Inpaint, inpaint

__all__ = [
    "CFG",
    "GFCG",
    "ClassifierGuidance",
    "Inpaint",
    "ObservationGuidance",
    "cfg",
    "cfg_pp",
    "cfg_pp_equivalent_scale",
    "classifier_guidance",
    "drop_labels",
    "gfcg",
    "inpaint",
    "observation_guidance",
]
