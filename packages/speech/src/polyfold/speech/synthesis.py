"""Text to mel with a trained acoustic model: front end, predicted (or given) durations, then the
model's sampler: DDIM (core's ``ddim`` by name) on the model's path for the teacher and the
ProDiff student, one-step (or multistep) consistency sampling for CoMoSpeech."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from polyfold.core.denoiser import NFECounter, as_denoiser
from polyfold.core.distill import consistency_sample, karras_sigmas
from polyfold.core.errors import InputError, check_int
from polyfold.core.samplers import get_sampler
from polyfold.speech.g2p import text_to_phones
from polyfold.speech.model import (
    EDM_RHO,
    EDM_SIGMA_MAX,
    EDM_SIGMA_MIN,
    AcousticModel,
    step_grid,
)
from polyfold.speech.phones import phone_ids

__all__ = ["Synthesis", "sample_mel", "synthesize"]


@dataclass
class Synthesis:
    """A synthesised utterance: log-mel ``(n_mels, T)``, frames per phone, the phones, NFE."""

    mel: Tensor
    durations: Tensor
    phones: list[str]
    nfe: int


def sample_mel(
    model: AcousticModel, cond: dict[str, Tensor], steps: int, generator: torch.Generator
) -> tuple[Tensor, int]:
    """``(normalised mel (B, T, n_mels), NFE)`` for a condition, with ``steps`` sampler steps."""
    check_int("steps", steps)
    b, t = cond["mask"].shape
    shape = (b, t, model.cfg.n_mels)
    device = cond["h"].device
    if model.cfg.kind == "comospeech":
        sigmas = karras_sigmas(steps + 1, EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO).flip(0)[:-1]
        noise = torch.randn(shape, generator=generator, device=device)
        counter = NFECounter()

        def f(x: Tensor, tt: Tensor, c: dict[str, Tensor]) -> Tensor:
            counter.count += 1
            out: Tensor = model(x, tt, c)
            return out

        x = consistency_sample(
            f, noise, path=model.path, sigmas=sigmas, cond=cond, generator=generator
        )
        return x * cond["mask"].unsqueeze(-1), counter.count
    if model.cfg.kind == "prodiff" and steps != model.cfg.steps:
        raise InputError(
            f"steps: this ProDiff student was distilled for {model.cfg.steps} steps, got {steps}"
        )
    denoiser = as_denoiser(model, model.path, prediction="x0", cond=cond)
    x = model.path.prior_sample(shape, generator=generator, device=device)
    result = get_sampler("ddim")(
        denoiser, model.path, x, step_grid(model.path, steps), mask=cond["mask"]
    )
    return result.x * cond["mask"].unsqueeze(-1), result.nfe


@torch.no_grad()
def synthesize(
    model: AcousticModel,
    text: str | None = None,
    *,
    phones: Sequence[str] | None = None,
    durations: Sequence[int] | None = None,
    steps: int | None = None,
    seed: int = 0,
    length_scale: float = 1.0,
) -> Synthesis:
    """Mel of ``text`` (or of ``phones``, optionally with gold ``durations``)."""
    if phones is None:
        if text is None:
            raise InputError("text: give the text or its phones")
        phones = text_to_phones(text)
    phones = list(phones)
    device = next(model.parameters()).device
    ids = torch.tensor([phone_ids(phones)], device=device)
    mask = torch.ones_like(ids, dtype=torch.bool)
    h, log_dur, _ = model.encode(ids, mask)
    if durations is None:
        dur = model.predict_durations(log_dur, mask, length_scale)
    else:
        if len(durations) != len(phones):
            raise InputError(f"durations: {len(durations)} for {len(phones)} phones")
        dur = torch.tensor([list(durations)], device=device)
    cond = model.condition(h, dur)
    gen = torch.Generator(device=device).manual_seed(seed)
    x, nfe = sample_mel(model, cond, steps or model.cfg.steps, gen)
    mel = model.denormalize(x)[0].T
    return Synthesis(mel=mel, durations=dur[0], phones=phones, nfe=nfe)
