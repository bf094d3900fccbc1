"""Generation with core's masked-diffusion samplers, with prefix/suffix conditioning and infilling.

Samplers (:data:`SAMPLERS`): ``ancestral`` (MDLM's reverse process on ``steps`` uniform steps,
with the time-agnostic cache unless ``cache=False``), ``first-hitting`` (Zheng et al.: one model
call per revealed token, ``steps`` unused), ``confidence`` (LLaDA's low-confidence remasking in
``steps`` steps) and ``blockwise`` (semi-autoregressive blocks of ``block_length`` tokens, each
decoded by ``inner`` with its share of ``steps``).

Conditioning: :func:`build_template` turns a prefix, a suffix, or an infilling template (``hole``
characters mark the positions to generate, one token each) into ``x`` and a ``fixed`` mask; the
samplers never change fixed positions. Categorical draws run in float64 (``precision="float32"``
reproduces the truncated Gumbel noise Zheng et al. analyse).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from polyfold.core.discrete import TokenSample
from polyfold.core.errors import InputError
from polyfold.core.samplers import StepCallback, available_samplers, get_sampler
from polyfold.text.metrics import mdlm_process

__all__ = [
    "SAMPLERS",
    "Generation",
    "NoSpecialTokens",
    "build_sampler",
    "build_template",
    "generate",
    "planned_steps",
    "sampler_name",
]

_ALIASES = {"fhs": "first_hitting", "first_hit": "first_hitting"}
SAMPLERS = tuple(n.replace("_", "-") for n in available_samplers("masked"))
"""The user-facing names of core's masked samplers (``fhs`` is an alias of ``first-hitting``)."""
_PRECISIONS = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Generation:
    """Texts and tokens ``(B, L)``, the fixed mask, model calls (one call = the whole batch, so
    also the calls per sample), wall time and this process's CPU time in seconds (CPU time is
    the robust speed measure on a shared machine)."""

    texts: list[str]
    tokens: Tensor
    fixed: Tensor
    nfe: int
    wall_s: float
    sampler: str
    steps: int | None
    cpu_s: float = float("nan")

    @property
    def wall_s_per_sample(self) -> float:
        return self.wall_s / max(len(self.texts), 1)

    @property
    def cpu_s_per_sample(self) -> float:
        return self.cpu_s / max(len(self.texts), 1)


class NoSpecialTokens(nn.Module):
    """Wraps a denoiser so that it never proposes ``[PAD]``, ``[BOS]``, ``[EOS]``, ``[UNK]`` or
    ``[NULL]`` (their logits set to ``-inf``; ``[MASK]`` is left to the samplers' SUBS)."""

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.model = model
        banned = [tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.null_id]
        banned += [getattr(tokenizer, "unk_id", tokenizer.pad_id)]
        self.banned = sorted(set(banned) - {tokenizer.mask_id})

    @property
    def config(self) -> Any:
        return self.model.config

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        logits = self.model(x, t, cond)
        logits[..., self.banned] = float("-inf")
        return logits


def sampler_name(sampler: str) -> str:
    """The registry name of a user-facing sampler name (``first-hitting``, ``fhs``, ...)."""
    name = str(sampler).replace("-", "_").lower()
    name = _ALIASES.get(name, name)
    if name not in available_samplers("masked"):
        choices = ", ".join(_user_name(n) for n in available_samplers("masked"))
        raise InputError(f"sampler: expected one of {choices}, got {sampler!r}")
    return name


def _user_name(name: str) -> str:
    return name.replace("_", "-")


def _precision(precision: str | torch.dtype) -> torch.dtype:
    if isinstance(precision, torch.dtype) and precision in _PRECISIONS.values():
        return precision
    if precision in _PRECISIONS:
        return _PRECISIONS[precision]  # type: ignore[index]
    raise InputError(f"precision: expected 'float32' or 'float64', got {precision!r}")


def _block_count(length: int, block_length: int) -> int:
    if isinstance(block_length, bool) or not isinstance(block_length, int) or block_length < 1:
        raise InputError(f"block_length: expected an int >= 1, got {block_length!r}")
    return -(-length // block_length)


def build_sampler(
    sampler: str,
    *,
    steps: int,
    length: int,
    precision: str | torch.dtype = "float64",
    block_length: int = 32,
    inner: str = "ancestral",
    **options: Any,
) -> Callable[..., TokenSample]:
    """Core's masked sampler ``sampler`` (by name, :func:`polyfold.core.samplers.get_sampler`)
    with ``steps``, the categorical ``precision`` and those ``options`` it takes (``cache``,
    ``temperature``) bound: call it as ``(model, process, x, *, generator, fixed, cond,
    callback)``. ``blockwise`` decodes blocks of ``block_length`` of the ``length`` positions,
    each with ``inner`` and ``steps // blocks`` steps (at least one)."""
    name = sampler_name(sampler)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps: expected an int >= 1, got {steps!r}")
    options["precision"] = _precision(precision)
    if name == "blockwise":
        if sampler_name(inner) == "blockwise":
            raise InputError("inner: a blockwise sampler cannot nest another blockwise sampler")
        per_block = max(1, steps // _block_count(length, block_length))
        block = build_sampler(inner, steps=per_block, length=block_length, **options)
        options = {"block_length": block_length, "sampler": block}
    spec = get_sampler(name, kind="masked")
    taken = {k: v for k, v in options.items() if k in spec.options}
    return functools.partial(spec, steps=steps, **taken)


def planned_steps(
    fixed: Tensor,
    sampler: str,
    *,
    steps: int,
    block_length: int = 32,
    inner: str = "ancestral",
) -> int:
    """How many times the sampler built by :func:`build_sampler` calls its ``callback`` on a
    template with this ``fixed (L,)`` mask: ``steps`` (ancestral, confidence), the number of
    positions to generate (first-hitting), the sum over blocks (blockwise)."""
    name = sampler_name(sampler)
    free = int((~fixed).sum())
    if name == "first_hitting":
        return free
    if name != "blockwise":
        return steps
    length = fixed.shape[-1]
    per_block = max(1, steps // _block_count(length, block_length))
    return sum(
        planned_steps(fixed[i : i + block_length], inner, steps=per_block)
        for i in range(0, length, block_length)
    )


def build_template(
    tokenizer: Any,
    length: int | None,
    max_length: int,
    *,
    prefix: str = "",
    suffix: str = "",
    infill: str | None = None,
    hole: str = "_",
) -> tuple[Tensor, Tensor]:
    """``(x (L,), fixed (L,))`` for a prefix/suffix prompt or an infilling template.

    With ``infill`` every ``hole`` character is one position to generate and all other text is
    fixed (``prefix``/``suffix`` are then not allowed); ``length`` defaults to the template's.
    Otherwise ``prefix`` is fixed at the start, ``suffix`` at the end and the ``length`` minus
    their tokens are generated. Raises :class:`InputError` when the prompt does not fit the
    requested length or the model's context ``max_length``.
    """
    if infill is not None:
        if prefix or suffix:
            raise InputError("infill: give either an infilling template or prefix/suffix, not both")
        if not isinstance(hole, str) or len(hole) != 1:
            raise InputError(f"hole: expected a single character, got {hole!r}")
        if hole not in infill:
            raise InputError(f"infill: the template has no {hole!r} positions to generate")
        ids: list[int] = []
        fixed: list[bool] = []
        for i, part in enumerate(infill.split(hole)):
            if i:
                ids.append(tokenizer.mask_id)
                fixed.append(False)
            enc = tokenizer.encode(part)
            ids.extend(enc)
            fixed.extend([True] * len(enc))
        if len(ids) > max_length:
            raise InputError(
                f"infill: the template is {len(ids)} tokens, longer than the model's context of "
                f"{max_length} tokens"
            )
        if length is not None and length != len(ids):
            raise InputError(f"length: the infilling template is {len(ids)} tokens, got {length}")
        return torch.tensor(ids, dtype=torch.long), torch.tensor(fixed, dtype=torch.bool)
    length = max_length if length is None else length
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise InputError(f"length: expected an int >= 1, got {length!r}")
    if length > max_length:
        raise InputError(
            f"length: {length} tokens is longer than the model's context of {max_length} tokens"
        )
    pre, suf = tokenizer.encode(prefix), tokenizer.encode(suffix)
    if len(pre) + len(suf) > max_length:
        raise InputError(
            f"prompt: prefix and suffix are {len(pre) + len(suf)} tokens, longer than the "
            f"model's context of {max_length} tokens"
        )
    if len(pre) + len(suf) >= length:
        raise InputError(
            f"prompt: prefix and suffix are {len(pre) + len(suf)} tokens, leaving nothing to "
            f"generate in length {length}"
        )
    middle = length - len(pre) - len(suf)
    ids = [*pre, *([tokenizer.mask_id] * middle), *suf]
    fixed = [True] * len(pre) + [False] * middle + [True] * len(suf)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(fixed, dtype=torch.bool)


@torch.inference_mode()
def generate(
    model: nn.Module,
    tokenizer: Any,
    *,
    num_samples: int = 1,
    length: int | None = None,
    prefix: str = "",
    suffix: str = "",
    infill: str | None = None,
    hole: str = "_",
    sampler: str = "first-hitting",
    steps: int | None = None,
    precision: str | torch.dtype = "float64",
    seed: int = 0,
    cache: bool = True,
    block_length: int = 32,
    inner: str = "ancestral",
    temperature: float = 1.0,
    allow_special: bool = False,
    callback: StepCallback | None = None,
) -> Generation:
    """Draw ``num_samples`` texts from the MDLM ``model`` (see the module docstring).

    ``steps`` defaults to the number of positions to generate; unless ``allow_special``, the
    generated positions hold text tokens only (:class:`NoSpecialTokens`). ``callback(step, t,
    x, x0)`` is the sampler's, called once per step with the tokens ``x (B, L)`` (and the step's
    clean estimate ``x0`` or ``None``): :func:`planned_steps` calls in all, ``t`` falling to 0
    (a progress bar can count steps or show ``1 - t``).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise InputError(f"num_samples: expected an int >= 1, got {num_samples!r}")
    max_length = int(model.config["max_length"])  # type: ignore[index]
    x1, fixed1 = build_template(
        tokenizer, length, max_length, prefix=prefix, suffix=suffix, infill=infill, hole=hole
    )
    device = next(model.parameters()).device
    x = x1.to(device).expand(num_samples, -1).clone()
    fixed = fixed1.to(device).expand(num_samples, -1).clone()
    n_gen = int((~fixed1).sum())
    steps = n_gen if steps is None else steps
    generator = torch.Generator(device=device).manual_seed(seed)
    process = mdlm_process(tokenizer)
    was = model.training
    model.eval()
    net = model if allow_special else NoSpecialTokens(model, tokenizer)
    start, cpu_start = time.perf_counter(), time.process_time()
    run = build_sampler(
        sampler,
        steps=steps,
        length=x.shape[1],
        precision=precision,
        block_length=block_length,
        inner=inner,
        cache=cache,
        temperature=temperature,
    )
    try:
        result = run(net, process, x, generator=generator, fixed=fixed, callback=callback)
    finally:
        model.train(was)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    tokens = result.tokens.cpu()
    texts = [tokenizer.decode(row.tolist()) for row in tokens]
    name = _user_name(sampler_name(sampler))
    return Generation(
        texts=texts,
        tokens=tokens,
        fixed=fixed.cpu(),
        nfe=result.nfe,
        wall_s=wall,
        sampler=name,
        steps=None if name == "first-hitting" else steps,
        cpu_s=cpu,
    )
