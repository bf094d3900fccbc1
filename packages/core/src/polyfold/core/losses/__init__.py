"""Training losses: denoising score matching and flow matching, with weightings and OT coupling;
GAN losses for adversarial models (WGAN-GP; non-saturating with R1); the score Fokker-Planck
regulariser and the ODE-SDE gap."""

from polyfold.core.losses.dsm import Reduction, draw_noise, draw_times, dsm_loss
from polyfold.core.losses.flow import Coupling, cfm_loss
from polyfold.core.losses.fokker_planck import (
    GapResult,
    empirical_w2,
    fokker_planck_loss,
    fokker_planck_residual,
    ode_sde_gap,
)
from polyfold.core.losses.gan import (
    gradient_penalty,
    nonsaturating_critic_loss,
    nonsaturating_generator_loss,
    nonsaturating_r1_critic_loss,
    r1_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
    wgan_gp_critic_loss,
)
from polyfold.core.losses.ot import hungarian, linear_assignment, ot_coupling, pairwise_sq_cost
from polyfold.core.losses.weighting import (
    WEIGHTINGS,
    Weighting,
    target_scale2,
    target_weight,
    x0_weight,
)

__all__ = [
    "WEIGHTINGS",
    "Coupling",
    "GapResult",
    "Reduction",
    "Weighting",
    "cfm_loss",
    "draw_noise",
    "draw_times",
    "dsm_loss",
    "empirical_w2",
    "fokker_planck_loss",
    "fokker_planck_residual",
    "gradient_penalty",
    "hungarian",
    "linear_assignment",
    "nonsaturating_critic_loss",
    "nonsaturating_generator_loss",
    "nonsaturating_r1_critic_loss",
    "ode_sde_gap",
    "ot_coupling",
    "pairwise_sq_cost",
    "r1_penalty",
    "target_scale2",
    "target_weight",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "wgan_gp_critic_loss",
    "x0_weight",
]
