"""A loudness-consistency term for training: the A-weighted loudness of the resynthesis against
the target's, both measured the same way on the crop (the reference's loudness, which is also
the decoder's input, so the term asks the output to play the loudness it was given)."""

from __future__ import annotations

import torch

from polyfold.ddsp.checks import check_tensor
from polyfold.ddsp.loudness import a_weighted_loudness

__all__ = ["loudness_l1"]


def loudness_l1(
    output: torch.Tensor, target: torch.Tensor, sample_rate: float, hop: int = 256
) -> torch.Tensor:
    """Mean |loudness(output) - loudness(target)| in dB over frames every ``hop`` samples, for
    audio (B, T); differentiable in ``output`` (bins at the -120 dB floor pass no gradient)."""
    check_tensor("output", output, 2)
    check_tensor("target", target, 2)
    ld_out = a_weighted_loudness(output, sample_rate, hop)
    with torch.no_grad():
        ld_tgt = a_weighted_loudness(target, sample_rate, hop)
    return (ld_out - ld_tgt).abs().mean()
