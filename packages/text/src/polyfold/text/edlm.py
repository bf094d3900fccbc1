"""EDLM: energy-based diffusion language models (Xu et al., "Energy-Based Diffusion Language
Models for Text Generation").

A masked-diffusion denoiser ``mu(x_0 | x_t)`` predicts every masked token independently; when a
step reveals many tokens at once their joint is a product of marginals, which is what degrades
quality at low step counts. EDLM corrects the denoising distribution at the sequence level with a
residual energy,

    p(x_0 | x_t)  ∝  mu(x_0 | x_t) * exp(-E(x_0, x_t, t)),

and samples it by *parallel importance sampling*: draw ``k`` candidates ``x_0 ~ mu(. | x_t)`` in
one batch, weight them by ``exp(-E)``, resample one, then take the usual masked-diffusion step
``x_s ~ q(x_s | x_t, x_0)`` (reveal each masked position with probability
``(alpha_s - alpha_t) / (1 - alpha_t)`` with the chosen candidate's token). Outside the time window
``[t_lo, t_hi]`` (default ``(0.4, 0.6)``, the authors' released configuration) the step is plain
MDLM ancestral sampling.

Two energies:

* :func:`ar_energy`: the residual energy from an autoregressive model,
  ``E = -log p_AR(x_0) + log mu(x_0 | x_t)``, so that ``mu * exp(-E) = p_AR`` on the sequences
  consistent with ``x_t`` and the importance weights are ``p_AR / mu``.
* :class:`EnergyTransformer` trained by :func:`train_nce_energy`: a bidirectional transformer with
  a scalar head, trained by noise-contrastive estimation with positives the data ``x_0`` and
  negatives the denoiser's samples given ``x_t`` (then ``-E`` estimates ``log p_data / mu``).

An energy is any callable ``energy(x0, x_t, t, log_q, mask) -> (N,)`` where ``log_q (N, L)`` holds
``log mu(x0^l | x_t)`` at the masked positions of ``x_t`` (0 elsewhere) and ``mask`` is the
``(N, L)`` validity mask or ``None``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.denoiser import NFECounter
from polyfold.core.discrete import MaskedProcess, sample_ancestral
from polyfold.core.errors import InputError, check_int
from polyfold.core.ops import sample_categorical
from polyfold.core.samplers import StepCallback
from polyfold.core.train import Trainer
from polyfold.text.model import DiffusionTransformer, TransformerConfig

__all__ = [
    "DEFAULT_WINDOW",
    "EDLMResult",
    "EnergyTransformer",
    "ImportanceResampling",
    "NCEResult",
    "ResidualEnergy",
    "ar_energy",
    "ar_token_log_probs",
    "compare_genppl",
    "denoiser_log_probs",
    "edlm_sample",
    "generative_perplexity",
    "nce_energy",
    "nce_loss",
    "train_nce_energy",
]

DEFAULT_WINDOW = (0.4, 0.6)
"""``(t_lo, t_hi)``: importance sampling at the steps starting at a time in this interval (the
authors' released configuration: ``is_end = 0.4``, ``is_start = 0.6``)."""


class ResidualEnergy(Protocol):
    """``energy(x0 (N, L), x_t (N, L), t (N,), log_q (N, L), mask (N, L) | None) -> (N,)``."""

    def __call__(
        self, x0: Tensor, x_t: Tensor, t: Tensor, log_q: Tensor, mask: Tensor | None
    ) -> Tensor: ...


@dataclass(frozen=True)
class EDLMResult:
    """Generated tokens ``(B, L)``, network calls ``nfe`` (denoiser + energy), and the split.

    Unpacks as ``tokens, nfe = edlm_sample(...)``. ``energy_calls`` counts batched calls of the
    energy (each scores ``k`` candidates of every sequence at once); ``is_steps`` the steps that
    used importance sampling.
    """

    tokens: Tensor
    nfe: int
    denoiser_calls: int = 0
    energy_calls: int = 0
    is_steps: int = 0

    def __iter__(self) -> Iterator[Any]:
        """``tokens, nfe = result``."""
        return iter((self.tokens, self.nfe))


# --- log-likelihoods -----------------------------------------------------------------------------


def denoiser_log_probs(process: MaskedProcess, logits: Tensor, x_t: Tensor, x0: Tensor) -> Tensor:
    """``(B, L)`` ``log mu(x0^l | x_t)`` under SUBS at the masked positions of ``x_t``, 0 elsewhere
    (an unmasked token is carried over with probability one)."""
    masked = x_t == process.mask_id
    scores = logits.double().masked_fill(
        process.mask_onehot(logits.shape[-1], logits.device), float("-inf")
    )
    logp = scores.log_softmax(-1).gather(-1, x0[..., None]).squeeze(-1)
    return torch.where(masked, logp, torch.zeros_like(logp))


def ar_token_log_probs(
    ar_model: Callable[..., Tensor],
    tokens: Tensor,
    mask: Tensor | None = None,
    *,
    bos_id: int | None = None,
) -> tuple[Tensor, Tensor]:
    """``(log_p (B, L), scored (B, L) bool)``: ``log p_AR(tokens^l | tokens^{<l})`` per position.

    ``ar_model(tokens, mask) -> logits (B, L, V)`` with ``logits[:, i]`` predicting token
    ``i + 1``. With ``bos_id`` the sequence is read after a ``[BOS]`` token so every valid
    position is scored; without it the first position has no prediction and is not scored.
    """
    valid = torch.ones_like(tokens, dtype=torch.bool) if mask is None else mask
    if bos_id is not None:
        bos = torch.full_like(tokens[:, :1], bos_id)
        inputs = torch.cat([bos, tokens], dim=1)
        in_mask = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        logits = ar_model(inputs, in_mask)[:, :-1]
        scored = valid
    else:
        logits = ar_model(tokens, valid)[:, :-1]
        logits = torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1)
        scored = valid.clone()
        scored[:, 0] = False
    logp = logits.double().log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    return torch.where(scored, logp, torch.zeros_like(logp)), scored


def generative_perplexity(
    ar_model: Callable[..., Tensor],
    tokens: Tensor,
    mask: Tensor | None = None,
    *,
    bos_id: int | None = None,
    batch_size: int = 64,
) -> float:
    """``exp`` of the AR model's mean negative log-likelihood per scored token of ``tokens``."""
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, tokens.shape[0], batch_size):
            m = None if mask is None else mask[i : i + batch_size]
            logp, scored = ar_token_log_probs(
                ar_model, tokens[i : i + batch_size], m, bos_id=bos_id
            )
            total -= float(logp.sum())
            count += int(scored.sum())
    if count == 0:
        raise InputError("tokens: no scored positions to compute a perplexity on")
    return math.exp(total / count)


# --- energies ------------------------------------------------------------------------------------


def ar_energy(ar_model: Callable[..., Tensor], *, bos_id: int | None = None) -> ResidualEnergy:
    """The residual energy of an AR model: ``E = -log p_AR(x0) + log mu(x0 | x_t)``.

    Importance weights ``exp(-E) = p_AR(x0) / mu(x0 | x_t)`` target ``p_AR`` restricted to the
    sequences consistent with ``x_t``. Without ``bos_id`` the first position is not scored by the
    AR model and is left to the denoiser (its ``log mu`` is left out of ``E`` too).
    """
    if not callable(ar_model):
        raise InputError(
            f"ar_model: expected a callable (tokens, mask) -> logits, got {ar_model!r}"
        )

    def energy(x0: Tensor, x_t: Tensor, t: Tensor, log_q: Tensor, mask: Tensor | None) -> Tensor:
        logp, scored = ar_token_log_probs(ar_model, x0, mask, bos_id=bos_id)
        return -logp.sum(dim=1) + (log_q.double() * scored).sum(dim=1)

    return energy


class EnergyTransformer(nn.Module):
    """A bidirectional transformer energy ``E(x0, x_t, t)`` for the NCE variant of EDLM.

    The backbone is the package's DiT (:class:`polyfold.text.model.DiffusionTransformer`) reading
    ``x0`` with a doubled vocabulary (token ``v`` becomes ``v + V`` where ``x_t`` was masked), so
    it sees both the candidate and which positions the denoiser filled; its output layer is a
    zero-initialised scalar per position, summed over valid positions. At initialisation ``E = 0``
    (uniform importance weights: plain MDLM).
    """

    def __init__(self, vocab_size: int, mask_id: int, **transformer: Any) -> None:
        super().__init__()
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
            raise InputError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
        if not isinstance(mask_id, int) or not 0 <= mask_id < vocab_size:
            raise InputError(f"mask_id: expected an int in [0, {vocab_size}), got {mask_id!r}")
        self.vocab_size, self.mask_id = vocab_size, mask_id
        self.transformer = dict(transformer)
        self.backbone = DiffusionTransformer(
            TransformerConfig(vocab_size=2 * vocab_size, **transformer)
        )
        d = self.backbone.cfg.d_model
        self.backbone.out = nn.Linear(d, 1)
        nn.init.zeros_(self.backbone.out.weight)
        nn.init.zeros_(self.backbone.out.bias)

    @property
    def config(self) -> dict[str, Any]:
        """The JSON hyperparameters that rebuild the model."""
        return {"vocab_size": self.vocab_size, "mask_id": self.mask_id, **self.transformer}

    def init_from_denoiser(self, denoiser: nn.Module) -> EnergyTransformer:
        """Copy a same-sized :class:`DiffusionTransformer`'s weights (as the paper fine-tunes the
        pretrained diffusion backbone): blocks, time MLP and modulations; both halves of the
        embedding get the denoiser's embedding. The scalar head stays zero."""
        own = self.backbone.state_dict()
        for name, value in denoiser.state_dict().items():
            if name.startswith("out."):
                continue
            if name == "embed.weight":
                value = torch.cat([value, value], dim=0)
            if name not in own or own[name].shape != value.shape:
                raise InputError(
                    f"denoiser: parameter {name} of shape {tuple(value.shape)} does not match "
                    "the energy's backbone; build the energy with the denoiser's hyperparameters"
                )
            own[name] = value
        self.backbone.load_state_dict(own)
        return self

    def forward(self, x0: Tensor, x_t: Tensor, t: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(N,)`` energies of the candidates ``x0`` given ``x_t`` at times ``t``."""
        if x0.shape != x_t.shape:
            raise InputError(
                f"x_t: expected the shape of x0 {tuple(x0.shape)}, got {tuple(x_t.shape)}"
            )
        tokens = x0 + self.vocab_size * (x_t == self.mask_id).long()
        per_position = self.backbone(tokens, t.float(), mask)[..., 0]
        if mask is not None:
            per_position = per_position * mask
        return per_position.sum(dim=1)


def nce_energy(model: EnergyTransformer) -> ResidualEnergy:
    """Adapt a trained :class:`EnergyTransformer` to the :class:`ResidualEnergy` signature."""
    if not isinstance(model, nn.Module):
        raise InputError(f"model: expected an EnergyTransformer, got {type(model).__name__}")

    def energy(x0: Tensor, x_t: Tensor, t: Tensor, log_q: Tensor, mask: Tensor | None) -> Tensor:
        return model(x0, x_t, t, mask).double()

    return energy


# --- sampling ------------------------------------------------------------------------------------


def _check_window(window: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(w) for w in window)
    except (TypeError, ValueError):
        raise InputError(f"window: expected a pair (t_lo, t_hi), got {window!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise InputError(f"window: expected 0 <= t_lo <= t_hi <= 1, got {window!r}")
    return lo, hi


def _draw_candidates(
    process: MaskedProcess,
    logits: Tensor,
    x_t: Tensor,
    k: int,
    generator: torch.Generator,
    precision: torch.dtype,
) -> Tensor:
    """``(k, B, L)``: ``k`` independent draws of ``x0 ~ mu(. | x_t)`` (unmasked carried over)."""
    masked = x_t == process.mask_id
    rows = logits[masked]  # (M, V)
    draws = sample_categorical(
        rows.expand(k, *rows.shape),
        generator=generator,
        disallowed=process.mask_onehot(logits.shape[-1], logits.device),
        precision=precision,
    )  # (k, M)
    out = x_t.expand(k, *x_t.shape).clone()
    out[:, masked] = draws
    return out


class ImportanceResampling:
    """EDLM's :class:`~polyfold.core.discrete.Proposal` for core's ancestral sampler: in the
    steps starting inside ``window``, ``k`` candidates ``x0 ~ mu(. | x_t)`` drawn in one batch,
    one of them resampled per sequence with weights ``exp(-energy)``. ``counter`` counts the
    (batched) energy calls."""

    def __init__(
        self,
        process: MaskedProcess,
        energy: ResidualEnergy,
        *,
        k: int,
        window: tuple[float, float] = DEFAULT_WINDOW,
        mask: Tensor | None = None,
        precision: torch.dtype = torch.float64,
    ) -> None:
        check_int("k_candidates", k)
        if not callable(energy):
            raise InputError(f"energy: expected a callable residual energy, got {energy!r}")
        self.process, self.energy, self.k, self.mask = process, energy, k, mask
        self.window, self.precision = _check_window(window), precision
        self.counter = NFECounter()

    def active(self, t: float) -> bool:
        """Importance sampling at the steps starting at ``t_lo <= t <= t_hi`` (with ``k > 1``)."""
        lo, hi = self.window
        return self.k > 1 and lo <= t <= hi

    def __call__(
        self, logits: Tensor, x_t: Tensor, t: Tensor, generator: torch.Generator
    ) -> Tensor:
        """One resampled ``x0 (B, L)`` per sequence out of ``k`` denoiser candidates."""
        batch, length, k = x_t.shape[0], x_t.shape[1], self.k
        candidates = _draw_candidates(
            self.process, logits, x_t, k, generator, self.precision
        )  # (k, B, L)
        flat = candidates.reshape(k * batch, length)
        x_rep = x_t.repeat(k, 1)
        log_q = denoiser_log_probs(self.process, logits.repeat(k, 1, 1), x_rep, flat)
        m_rep = None if self.mask is None else self.mask.repeat(k, 1)
        with torch.no_grad():
            e = self.energy(flat, x_rep, t.to(torch.float32).repeat(k), log_q, m_rep)
        self.counter.add()
        if not isinstance(e, Tensor) or e.shape != (k * batch,):
            got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise InputError(f"energy: expected a tensor of shape ({k * batch},), got {got}")
        log_w = (-e.double()).reshape(k, batch).T  # (B, k)
        # a candidate with infinite energy (e.g. probability 0 under the AR model) gets weight 0;
        # if all do, fall back to uniform weights
        log_w = torch.where(torch.isfinite(log_w), log_w, torch.full_like(log_w, float("-inf")))
        dead = torch.isinf(log_w).all(dim=1, keepdim=True)
        log_w = torch.where(dead, torch.zeros_like(log_w), log_w)
        choice = sample_categorical(log_w, generator=generator, precision=torch.float64)  # (B,)
        return candidates[choice, torch.arange(batch, device=x_t.device)]


def edlm_sample(
    denoiser: Callable[..., Tensor],
    energy: ResidualEnergy,
    process: MaskedProcess,
    x: Tensor,
    *,
    steps: int,
    k_candidates: int,
    generator: torch.Generator,
    window: tuple[float, float] = DEFAULT_WINDOW,
    fixed: Tensor | None = None,
    mask: Tensor | None = None,
    cache: bool = True,
    precision: torch.dtype = torch.float64,
    callback: StepCallback | None = None,
) -> EDLMResult:
    """EDLM sampling: core's MDLM ancestral steps with :class:`ImportanceResampling` inside
    ``window``.

    Same grid and conventions as :func:`polyfold.core.discrete.sample_ancestral` (``x`` holds the
    given tokens, ``fixed`` the positions kept, ``mask`` the validity mask handed to the denoiser
    as its third argument and to the energy, ``callback`` called at every step). A step from
    ``t`` to ``s`` with ``t_lo <= t <= t_hi`` draws ``k_candidates`` full ``x0`` from the
    denoiser, resamples one with weights ``exp(-energy)`` and reveals the positions chosen by the
    usual Bernoulli draws with the resampled tokens. With ``k_candidates = 1`` resampling is the
    identity and the sampler is exactly :func:`~polyfold.core.discrete.sample_ancestral` (same
    draws from ``generator``). ``cache`` reuses logits after a step that revealed nothing,
    outside the window only.
    """
    check_int("steps", steps)
    proposal = ImportanceResampling(
        process, energy, k=k_candidates, window=window, mask=mask, precision=precision
    )
    result = sample_ancestral(
        denoiser,
        process,
        x,
        steps=steps,
        generator=generator,
        fixed=fixed,
        cond=mask,
        callback=callback,
        cache=cache,
        precision=precision,
        proposal=proposal,
    )
    energy_calls = proposal.counter.count
    return EDLMResult(
        tokens=result.tokens,
        nfe=result.nfe + energy_calls,
        denoiser_calls=result.nfe,
        energy_calls=energy_calls,
        is_steps=energy_calls,
    )


# --- NCE training --------------------------------------------------------------------------------


def nce_loss(
    energy_model: Callable[..., Tensor],
    denoiser: Callable[..., Tensor],
    process: MaskedProcess,
    x0: Tensor,
    *,
    generator: torch.Generator,
    mask: Tensor | None = None,
    window: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """Noise-contrastive estimation loss of the residual energy (scalar, mean over the batch).

    ``t ~ U(window)`` (clipped to ``>= 1e-3``), ``x_t ~ q(x_t | x0)``; the positive is ``x0``,
    the negative a draw from the (frozen) denoiser ``mu(. | x_t)``. With classifier logit
    ``-E`` the loss is ``softplus(E(x0)) + softplus(-E(x_neg))``; at its optimum
    ``-E = log p_data(x0 | x_t) / mu(x0 | x_t)``.
    """
    lo, hi = _check_window(window)
    batch = x0.shape[0]
    u = torch.rand(batch, generator=generator, dtype=torch.float64, device=x0.device)
    t = (lo + (hi - lo) * u).clamp(min=1e-3).float()
    keep = None if mask is None else ~mask
    x_t = process.noise(x0, t, generator=generator, keep=keep)
    with torch.no_grad():
        logits = denoiser(x_t, t, mask)
        negative = _draw_candidates(process, logits, x_t, 1, generator, torch.float64)[0]
    e_pos = energy_model(x0, x_t, t, mask)
    e_neg = energy_model(negative, x_t, t, mask)
    return (F.softplus(e_pos) + F.softplus(-e_neg)).mean()


@dataclass
class NCEResult:
    """What :func:`train_nce_energy` returns: the trained model and the trainer's last loss."""

    model: EnergyTransformer
    loss: float | None
    checkpoint: Path | None


def train_nce_energy(
    energy_model: EnergyTransformer,
    denoiser: nn.Module,
    process: MaskedProcess,
    data: Tensor,
    *,
    out_dir: str | Path,
    max_steps: int,
    batch_size: int = 32,
    lr: float = 3e-4,
    valid: Tensor | None = None,
    window: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
    quiet: bool = True,
    **trainer_options: Any,
) -> NCEResult:
    """Train ``energy_model`` by NCE against the frozen ``denoiser`` with core's ``Trainer``.

    ``data (N, L)`` token ids (and optional ``valid (N, L)`` bool padding mask); checkpoints go to
    ``out_dir``. The denoiser is put in eval mode and never updated. Extra keyword options go to
    :class:`polyfold.core.train.TrainConfig` (default: no EMA, constant LR).
    """
    if not isinstance(data, Tensor) or data.dim() != 2 or data.is_floating_point():
        raise InputError("data: expected a LongTensor of token ids (N, L)")
    if valid is not None and (valid.dtype != torch.bool or valid.shape != data.shape):
        raise InputError(f"valid: expected a bool tensor of shape {tuple(data.shape)}")
    _check_window(window)
    denoiser.eval()
    for p in denoiser.parameters():
        p.requires_grad_(False)
    items: Sequence[Any] = (
        list(data) if valid is None else list(zip(data, valid, strict=True))  # type: ignore[arg-type]
    )

    def loss_fn(model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        x0, m = (batch, None) if valid is None else batch
        if next(denoiser.parameters()).device != x0.device:
            denoiser.to(x0.device)
        return nce_loss(model, denoiser, process, x0, generator=generator, mask=m, window=window)

    options: dict[str, Any] = {"ema_decay": None, "lr_schedule": "constant", "quiet": quiet}
    options.update(trainer_options)
    trainer = Trainer(
        energy_model,
        loss_fn,
        items,
        out_dir=out_dir,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        model_config=energy_model.config,
        **options,
    )
    result = trainer.fit()
    trainer.close()
    return NCEResult(model=energy_model, loss=result.loss, checkpoint=result.checkpoint)


# --- measurement ---------------------------------------------------------------------------------


def compare_genppl(
    denoiser: Callable[..., Tensor],
    ar_model: Callable[..., Tensor],
    process: MaskedProcess,
    *,
    length: int,
    n: int,
    steps: Sequence[int] = (8, 16),
    k_candidates: int = 4,
    window: tuple[float, float] = DEFAULT_WINDOW,
    energy: ResidualEnergy | None = None,
    bos_id: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
) -> list[dict[str, float]]:
    """Generative perplexity under ``ar_model`` of plain MDLM vs EDLM samples per step count.

    ``energy`` defaults to :func:`ar_energy` of the same AR model (the paper's EDLM-AR; the
    perplexity is then measured by the model the energy uses, as in the paper with GPT-2). Each
    row: ``steps``, ``mdlm_genppl``, ``edlm_genppl``, ``ratio`` (EDLM / MDLM), mean ``nfe`` and
    wall seconds per sample of both. Samples are ``n`` unconditional sequences of ``length``.
    """
    check_int("length", length)
    check_int("n", n)
    if energy is None:
        energy = ar_energy(ar_model, bos_id=bos_id)
    rows = []
    for s in steps:
        check_int("steps", s)
        out: dict[str, float] = {"steps": float(s)}
        for name in ("mdlm", "edlm"):
            gen = torch.Generator().manual_seed(seed)
            samples, nfe, wall = [], 0, 0.0
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                x = torch.full((b, length), process.mask_id, dtype=torch.long)
                t0 = time.perf_counter()
                with torch.no_grad():
                    if name == "mdlm":
                        res = sample_ancestral(denoiser, process, x, steps=s, generator=gen)
                        tokens, calls = res.tokens, res.nfe
                    else:
                        r = edlm_sample(
                            denoiser,
                            energy,
                            process,
                            x,
                            steps=s,
                            k_candidates=k_candidates,
                            window=window,
                            generator=gen,
                        )
                        tokens, calls = r.tokens, r.nfe
                wall += time.perf_counter() - t0
                nfe += calls * b
                samples.append(tokens)
            tokens = torch.cat(samples)
            out[f"{name}_genppl"] = generative_perplexity(ar_model, tokens, bos_id=bos_id)
            out[f"{name}_nfe"] = nfe / n
            out[f"{name}_seconds_per_sample"] = wall / n
        out["ratio"] = out["edlm_genppl"] / out["mdlm_genppl"]
        rows.append(out)
    return rows
