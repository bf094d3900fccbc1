"""S^3, self-adaptive schema scaffolding (Xiong et al., "Unveiling the Potential of Diffusion Large
Language Model in Controllable Generation"): structured JSON output from a masked diffusion LM.

A JSON schema becomes a *scaffold*: the structure tokens (braces, quoted keys, colons, commas,
the quotes around string values, brackets of fixed-length arrays) are written into the output
context and fixed; every value gets a slot of ``budget`` mask tokens. The model fills the slots
with top-K confidence remasking (core's :func:`~polyfold.core.discrete.sample_confidence`); a
value shorter than its slot ends in ``[NULL]`` tokens, which decoding removes ("self-adaptive"
length). The baseline, :func:`unscaffolded_generate`, asks the same model for the whole record
after a ``"{"`` prompt.

Supported schemas: an ``object`` with ``properties`` whose values are ``string``, ``integer``,
``number``, ``boolean``, ``enum`` (strings or numbers), nested objects, and arrays of fixed length
(``minItems == maxItems``, one ``items`` schema). Every property is generated.

The null filler has to be something the model predicts. A large instruction-tuned dLLM (LLaDA in
the paper) learns it from EOS padding and instructions; our small models learn it from their
training layout: :func:`polyfold.text.json_records.null_augmented_chunks` follows every value
with a random number of ``[NULL]`` tokens (the shipped ``json-records-char-mdlm`` is trained so).

Measured by :func:`evaluate_schema_adherence`: structural adherence (the text parses as JSON and
validates against the schema, :func:`validate_json`, via ``jsonschema``) and content fidelity
(:func:`content_fidelity`: values inside the range / vocabulary of a reference corpus).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from polyfold.core.discrete import MaskedProcess, sample_confidence
from polyfold.core.errors import InputError
from polyfold.text.metrics import mdlm_process

__all__ = [
    "DEFAULT_SLOT_LEN",
    "S3Generation",
    "Scaffold",
    "Slot",
    "build_scaffold",
    "content_fidelity",
    "evaluate_schema_adherence",
    "extract_json",
    "load_schema",
    "render_with_nulls",
    "s3_generate",
    "slot_vocabulary",
    "unscaffolded_generate",
    "validate_json",
    "validation_error",
]

DEFAULT_SLOT_LEN = 8
"""Mask tokens per value slot when neither the schema (enum, boolean, ``maxLength``) nor the
caller's ``slot_len`` gives one."""

_SCALARS = ("string", "integer", "number", "boolean")


@dataclass(frozen=True)
class Slot:
    """A value slot: its property path (``"a.b"``, ``"a.0"``), kind and token span."""

    path: str
    kind: str
    start: int
    length: int


@dataclass(frozen=True)
class Scaffold:
    """``tokens (L,)`` with the mask id in the slots, ``fixed (L,)`` True at structure tokens,
    the slots in order, and ``template`` (the scaffold as text: ``_`` per masked token, ``\u2400``
    per null of a given value)."""

    tokens: Tensor
    fixed: Tensor
    slots: tuple[Slot, ...]
    template: str

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


# --- schemas -------------------------------------------------------------------------------------


def load_schema(schema: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A schema from a mapping, a JSON string or a ``.json`` file path; checked by jsonschema."""
    import jsonschema

    if isinstance(schema, Path) or (
        isinstance(schema, str) and schema.strip().endswith(".json") and "{" not in schema
    ):
        path = Path(schema)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise InputError(f"schema: cannot read {path}: {err}") from None
        where = str(path)
    elif isinstance(schema, str):
        text, where = schema, "the given string"
    elif isinstance(schema, Mapping):
        text, where = None, ""
    else:
        raise InputError(
            f"schema: expected a JSON schema (dict, JSON text or file), got {schema!r}"
        )
    if text is not None:
        try:
            schema = json.loads(text)
        except ValueError as err:
            raise InputError(f"schema: {where} is not valid JSON ({err})") from None
    if not isinstance(schema, Mapping):
        raise InputError(f"schema: expected a JSON object, got {type(schema).__name__}")
    schema = dict(schema)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        raise InputError(f"schema: not a valid JSON schema: {err.message}") from None
    return schema


def _kind(node: Any, path: str) -> str:
    where = path or "the root"
    if not isinstance(node, Mapping):
        raise InputError(f"schema: {where}: expected a schema object, got {node!r}")
    if "enum" in node:
        values = node["enum"]
        if (
            not isinstance(values, list)
            or not values
            or not (
                all(isinstance(v, str) for v in values)
                or all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            )
        ):
            raise InputError(f"schema: {where}: expected a non-empty enum of strings or of numbers")
        return "enum"
    kind = node.get("type")
    if kind in _SCALARS or kind in ("object", "array"):
        return str(kind)
    if kind is None:
        raise InputError(f"schema: {where}: missing 'type' (or 'enum')")
    raise InputError(
        f"schema: {where}: unsupported type {kind!r}; expected one of string, integer, number, "
        "boolean, object, array (fixed length) or an enum"
    )


def _budget(node: Mapping[str, Any], kind: str, path: str, slot_len: Any, tokenizer: Any) -> int:
    if isinstance(slot_len, Mapping) and path in slot_len:
        budget = slot_len[path]
    elif kind == "enum":
        budget = max(len(tokenizer.encode(_value_text(v))) for v in node["enum"])
    elif kind == "boolean":
        budget = max(len(tokenizer.encode("true")), len(tokenizer.encode("false")))
    elif kind == "string" and isinstance(node.get("maxLength"), int):
        budget = max(1, int(node["maxLength"]))
    else:
        budget = slot_len if isinstance(slot_len, int) else DEFAULT_SLOT_LEN
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"slot_len: expected an int >= 1 for {path!r}, got {budget!r}")
    return budget


def _value_text(value: Any) -> str:
    """A value as it appears inside its slot (strings without their quotes)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _segments(schema: Mapping[str, Any], slot_len: Any, tokenizer: Any) -> list[Any]:
    """The scaffold as a list of ``str`` (fixed text) and ``(path, kind, budget)`` slots."""
    out: list[Any] = []

    def walk(node: Any, path: str) -> None:
        kind = _kind(node, path)
        if kind == "object":
            props = node.get("properties")
            if not isinstance(props, Mapping) or not props:
                raise InputError(
                    f"schema: {path or 'the root'}: an object needs a non-empty 'properties'"
                )
            out.append("{")
            for i, (key, sub) in enumerate(props.items()):
                out.append(("," if i else "") + json.dumps(key, ensure_ascii=False) + ":")
                walk(sub, f"{path}.{key}" if path else str(key))
            out.append("}")
        elif kind == "array":
            n, items = node.get("minItems"), node.get("items")
            if not isinstance(n, int) or n < 1 or node.get("maxItems") != n:
                raise InputError(
                    f"schema: {path or 'the root'}: arrays need a fixed length "
                    "(minItems == maxItems >= 1)"
                )
            if not isinstance(items, Mapping):
                raise InputError(f"schema: {path or 'the root'}: arrays need one 'items' schema")
            out.append("[")
            for i in range(n):
                if i:
                    out.append(",")
                walk(items, f"{path}.{i}" if path else str(i))
            out.append("]")
        else:
            quoted = kind == "string" or (kind == "enum" and isinstance(node["enum"][0], str))
            budget = _budget(node, kind, path, slot_len, tokenizer)
            if quoted:
                out.append('"')
            out.append((path, kind, budget))
            if quoted:
                out.append('"')

    if _kind(schema, "") != "object":
        raise InputError("schema: the root must be an object schema ('type': 'object')")
    walk(schema, "")
    # merge consecutive fixed pieces
    merged: list[Any] = []
    for seg in out:
        if isinstance(seg, str) and merged and isinstance(merged[-1], str):
            merged[-1] += seg
        else:
            merged.append(seg)
    return merged


def _encode_fixed(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.encode(text)
    unk = getattr(tokenizer, "unk_id", None)
    if unk is not None and unk in ids:
        raise InputError(
            f"tokenizer: cannot encode the structure text {text!r} (a character is not in its "
            "vocabulary)"
        )
    return ids


def build_scaffold(
    schema: Mapping[str, Any] | str | Path,
    tokenizer: Any,
    *,
    slot_len: int | Mapping[str, int] = DEFAULT_SLOT_LEN,
    values: Mapping[str, Any] | None = None,
) -> Scaffold:
    """The scaffold of ``schema``: structure tokens fixed, one slot of mask tokens per value.

    ``slot_len`` is the budget of every value slot, or a mapping ``{path: budget}`` (paths like
    ``"species"``, ``"address.city"``, ``"scores.0"``); enums default to their longest value,
    booleans to ``false``, strings with ``maxLength`` to it, the rest to :data:`DEFAULT_SLOT_LEN`.
    ``values`` ``{path: value}`` pre-fills slots (the value's tokens then ``[NULL]``, all fixed):
    the model completes the other fields given these.
    """
    schema = load_schema(schema)
    values = dict(values or {})
    if not (isinstance(slot_len, Mapping) or (isinstance(slot_len, int) and slot_len >= 1)):
        raise InputError(
            f"slot_len: expected an int >= 1 or a mapping path -> int, got {slot_len!r}"
        )
    tokens: list[int] = []
    fixed: list[bool] = []
    slots: list[Slot] = []
    template: list[str] = []
    for seg in _segments(schema, slot_len, tokenizer):
        if isinstance(seg, str):
            ids = _encode_fixed(tokenizer, seg)
            tokens += ids
            fixed += [True] * len(ids)
            template.append(seg)
        else:
            path, kind, budget = seg
            slots.append(Slot(path, kind, len(tokens), budget))
            if path in values:
                text = _value_text(values.pop(path))
                ids = _encode_fixed(tokenizer, text)
                if len(ids) > budget:
                    raise InputError(
                        f"values: {path!r} = {text!r} needs {len(ids)} tokens, more than its "
                        f"slot of {budget}"
                    )
                tokens += ids + [tokenizer.null_id] * (budget - len(ids))
                fixed += [True] * budget
                template.append(text + "\u2400" * (budget - len(ids)))
                continue
            tokens += [tokenizer.mask_id] * budget
            fixed += [False] * budget
            template.append("_" * budget)
    if values:
        known = ", ".join(s.path for s in slots)
        raise InputError(f"values: unknown path {next(iter(values))!r}; the slots are {known}")
    return Scaffold(
        tokens=torch.tensor(tokens, dtype=torch.long),
        fixed=torch.tensor(fixed, dtype=torch.bool),
        slots=tuple(slots),
        template="".join(template),
    )


def render_with_nulls(
    record: Mapping[str, Any],
    schema: Mapping[str, Any],
    tokenizer: Any,
    nulls: Sequence[int] | None = None,
) -> list[int]:
    """Token ids of ``record`` laid out like the scaffold of ``schema``, each value followed by
    ``nulls[i]`` ``[NULL]`` tokens (inside the quotes of strings). Decoding drops the nulls and
    gives the compact JSON of the record (keys in the schema's order)."""
    segments = _segments(load_schema(schema), DEFAULT_SLOT_LEN, tokenizer)
    n_slots = sum(1 for s in segments if not isinstance(s, str))
    nulls = [0] * n_slots if nulls is None else list(nulls)
    if len(nulls) != n_slots:
        raise InputError(f"nulls: expected {n_slots} counts (one per value), got {len(nulls)}")
    ids: list[int] = []
    i = 0
    for seg in segments:
        if isinstance(seg, str):
            ids += _encode_fixed(tokenizer, seg)
            continue
        value: Any = record
        for key in seg[0].split("."):
            try:
                value = value[int(key)] if isinstance(value, list) else value[key]
            except (KeyError, IndexError, ValueError, TypeError):
                raise InputError(f"record: missing value for {seg[0]!r}") from None
        ids += tokenizer.encode(_value_text(value)) + [tokenizer.null_id] * nulls[i]
        i += 1
    return ids


# --- validation and fidelity ---------------------------------------------------------------------


def validation_error(text: str, schema: Mapping[str, Any]) -> str | None:
    """``None`` when ``text`` is one JSON value that validates against ``schema``, else why not."""
    import jsonschema

    try:
        value = json.loads(text)
    except (ValueError, TypeError) as err:
        return f"not JSON: {err}"
    try:
        jsonschema.validate(value, dict(schema))
    except jsonschema.ValidationError as err:
        return f"schema: {err.message}"
    return None


def validate_json(text: str, schema: Mapping[str, Any]) -> bool:
    """True when ``text`` parses as JSON and validates against ``schema`` (jsonschema)."""
    return validation_error(text, schema) is None


def extract_json(text: str) -> str | None:
    """The first JSON object of ``text`` (from its first ``{``; trailing text ignored), re-dumped
    compactly, or ``None`` when there is none: how the unscaffolded baseline is read."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def content_fidelity(
    texts: Sequence[str | None], reference: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """How plausible the generated records are next to a reference corpus of records.

    * ``value_fidelity``: over the top-level fields of the parsed records, the fraction whose
      value has the type seen in the reference and lies in its range (numbers: ``[min, max]``;
      strings and booleans: a value seen in the reference).
    * ``record_fidelity``: the fraction of records whose every field passes and whose
      combination of string fields occurs in the reference (e.g. species with island).
    * ``novel_rate``: the fraction of parsed records that are not copies of a reference record.
    * ``distinct_rate``: distinct parsed records over parsed records (diversity).
    Unparseable texts count as failures in the first two.
    """
    if not reference:
        raise InputError("reference: expected at least one reference record")
    fields: dict[str, dict[str, Any]] = {}
    for rec in reference:
        for key, v in rec.items():
            f = fields.setdefault(
                key, {"values": set(), "min": math.inf, "max": -math.inf, "types": set()}
            )
            f["types"].add(
                "number"
                if isinstance(v, int | float) and not isinstance(v, bool)
                else type(v).__name__
            )
            if isinstance(v, int | float) and not isinstance(v, bool):
                f["min"], f["max"] = min(f["min"], v), max(f["max"], v)
            else:
                f["values"].add(json.dumps(v))
    categorical = [k for k, f in fields.items() if "number" not in f["types"]]
    combos = {tuple(json.dumps(r.get(k)) for k in categorical) for r in reference}
    seen = {json.dumps(dict(r), sort_keys=True) for r in reference}
    ok_values = total_values = ok_records = valid = novel = 0
    distinct: set[str] = set()
    for text in texts:
        try:
            rec = json.loads(text) if text is not None else None
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            total_values += len(fields)
            continue
        valid += 1
        key_text = json.dumps(rec, sort_keys=True)
        novel += key_text not in seen
        distinct.add(key_text)
        all_ok = set(rec) == set(fields)
        for key, f in fields.items():
            total_values += 1
            v = rec.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool):
                good = "number" in f["types"] and f["min"] <= v <= f["max"]
            else:
                good = key in rec and json.dumps(v) in f["values"]
            ok_values += good
            all_ok &= good
        if all_ok and tuple(json.dumps(rec.get(k)) for k in categorical) in combos:
            ok_records += 1
    n = max(len(texts), 1)
    return {
        "value_fidelity": ok_values / max(total_values, 1),
        "record_fidelity": ok_records / n,
        "novel_rate": novel / max(valid, 1),
        "distinct_rate": len(distinct) / max(valid, 1),
    }


# --- generation ----------------------------------------------------------------------------------


def _process(tokenizer: Any, process: MaskedProcess | None) -> MaskedProcess:
    return mdlm_process(tokenizer) if process is None else process


def _context(model: Any, length: int | None) -> int | None:
    if length is not None:
        return length
    cfg = getattr(model, "cfg", None)
    return getattr(cfg, "max_length", None)


def _steps(steps: int | None, k: int | None, to_fill: int) -> int:
    if (steps is None) == (k is None):
        raise InputError("steps, k: give the number of steps or the tokens per step k, not both")
    name, value = ("steps", steps) if steps is not None else ("k", k)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}: expected an int >= 1, got {value!r}")
    return value if name == "steps" else max(1, math.ceil(to_fill / value))


def _prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    if not isinstance(prompt, str):
        raise InputError(f"prompt: expected a str, got {type(prompt).__name__}")
    return tokenizer.encode(prompt)


@dataclass(frozen=True)
class S3Generation:
    """Decoded texts, the model calls of the whole batch, and wall seconds."""

    texts: list[str]
    nfe: int
    seconds: float


def _run(
    model: Any,
    tokenizer: Any,
    tokens: list[int],
    fixed: list[bool],
    *,
    n: int,
    steps: int,
    generator: torch.Generator,
    temperature: float,
    process: MaskedProcess | None,
    start: int,
    disallowed: Tensor | None = None,
    sampler: str = "confidence",
    callback: Any = None,
) -> S3Generation:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n: expected an int >= 1, got {n!r}")
    device = next(model.parameters()).device if hasattr(model, "parameters") else None
    if disallowed is not None:
        model = _Constrained(model, disallowed.to(device))
    x = torch.tensor(tokens, dtype=torch.long, device=device).expand(n, -1).clone()
    fx = torch.tensor(fixed, dtype=torch.bool, device=device).expand(n, -1).clone()
    t0 = time.perf_counter()
    with torch.no_grad():
        if sampler == "confidence":
            result = sample_confidence(
                model,
                _process(tokenizer, process),
                x,
                steps=steps,
                generator=generator,
                fixed=fx,
                temperature=temperature,
                callback=callback,
            )
        else:
            from polyfold.text.generate import build_sampler

            run = build_sampler(sampler, steps=steps, length=x.shape[1], temperature=temperature)
            result = run(
                model,
                _process(tokenizer, process),
                x,
                generator=generator,
                fixed=fx,
                callback=callback,
            )
    seconds = time.perf_counter() - t0
    texts = [tokenizer.decode(row[start:].tolist(), mask_char=None) for row in result.tokens]
    return S3Generation(texts, result.nfe, seconds)


_CHARSETS = {
    "integer": set("0123456789-"),
    "number": set("0123456789-+.eE"),
    "boolean": set("truefals"),
}


def slot_vocabulary(tokenizer: Any, scaffold: Scaffold, vocab_size: int) -> Tensor:
    """``(L, V)`` bool, True where a token may not fill a slot position: special tokens other
    than ``[NULL]``, and tokens with characters outside the slot's kind (numbers: digits, sign,
    point, exponent; booleans: the letters of true/false; strings: anything but a quote or a
    backslash). Structure positions allow everything (they are fixed anyway)."""
    pieces = [tokenizer.decode([i], mask_char=None) for i in range(vocab_size)]
    special = {tokenizer.pad_id, tokenizer.mask_id, tokenizer.bos_id, tokenizer.eos_id}
    special.add(getattr(tokenizer, "unk_id", tokenizer.pad_id))
    out = torch.zeros(len(scaffold), vocab_size, dtype=torch.bool)
    for slot in scaffold.slots:
        allowed = _CHARSETS.get(slot.kind)
        row = torch.zeros(vocab_size, dtype=torch.bool)
        for i, piece in enumerate(pieces):
            if i == tokenizer.null_id:
                continue
            if i in special or not piece:
                row[i] = True
            elif allowed is None:
                row[i] = '"' in piece or "\\" in piece
            else:
                row[i] = not set(piece) <= allowed
        out[slot.start : slot.start + slot.length] = row
    return out


class _Constrained:
    """A denoiser whose logits are ``-inf`` at the disallowed ``(L, V)`` entries."""

    def __init__(self, model: Any, disallowed: Tensor) -> None:
        self.model, self.disallowed = model, disallowed

    def __call__(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        logits = self.model(x_t, t, cond)
        return logits.masked_fill(self.disallowed[None], float("-inf"))


def s3_generate(
    model: Any,
    tokenizer: Any,
    schema: Mapping[str, Any] | str | Path,
    *,
    n: int,
    generator: torch.Generator,
    steps: int | None = None,
    k: int | None = None,
    slot_len: int | Mapping[str, int] = DEFAULT_SLOT_LEN,
    prompt: str = "",
    values: Mapping[str, Any] | None = None,
    length: int | None = None,
    temperature: float = 1.0,
    constrain_slots: bool = False,
    process: MaskedProcess | None = None,
    return_details: bool = False,
    sampler: str = "confidence",
    callback: Any = None,
) -> list[str] | S3Generation:
    """``n`` JSON texts for ``schema`` by S^3: ``prompt`` then the scaffold, slots filled by
    top-K confidence remasking in ``steps`` steps (or ``k`` slot tokens per step); ``values``
    pre-fills some slots (see :func:`build_scaffold`). ``constrain_slots`` (an extension, off
    by default: the paper's S^3 does not constrain tokens) forbids, per slot, the tokens of
    :func:`slot_vocabulary` (e.g. a quote inside a number).

    The sequence is padded with fixed ``[EOS]`` to ``length`` (default: the model's context,
    ``model.cfg.max_length``, when it has one). ``[NULL]`` and the other special tokens are
    dropped from the decoded texts. Raises :class:`InputError` when prompt and scaffold do not
    fit the context. ``return_details`` gives a :class:`S3Generation` (texts, NFE, seconds).

    ``sampler`` fills the slots with another of core's masked samplers instead (``ancestral``,
    ``first-hitting``, ``blockwise``: :func:`polyfold.text.generate.build_sampler`, in
    ``steps`` steps); ``callback(step, t, x, x0)`` is the sampler's per-step callback.
    """
    scaffold = build_scaffold(schema, tokenizer, slot_len=slot_len, values=values)
    head = _prompt_ids(tokenizer, prompt)
    need = len(head) + len(scaffold)
    context = _context(model, length)
    if context is not None and need > context:
        raise InputError(
            f"schema: the prompt ({len(head)} tokens) and the scaffold ({len(scaffold)} tokens) "
            f"need {need} tokens, more than the context of {context}; shorten the prompt or the "
            "slot budgets (slot_len)"
        )
    tail = (context or need) - need
    tokens = head + scaffold.tokens.tolist() + [tokenizer.eos_id] * tail
    fixed = [True] * len(head) + scaffold.fixed.tolist() + [True] * tail
    to_fill = sum(not f for f in fixed)
    disallowed = None
    if constrain_slots:
        rows = slot_vocabulary(tokenizer, scaffold, tokenizer.vocab_size)
        disallowed = torch.zeros(len(tokens), tokenizer.vocab_size, dtype=torch.bool)
        disallowed[len(head) : len(head) + len(scaffold)] = rows
    gen = _run(
        model,
        tokenizer,
        tokens,
        fixed,
        disallowed=disallowed,
        n=n,
        steps=_steps(steps, k, to_fill),
        generator=generator,
        temperature=temperature,
        process=process,
        start=len(head),
        sampler=sampler,
        callback=callback,
    )
    return gen if return_details else gen.texts


def unscaffolded_generate(
    model: Any,
    tokenizer: Any,
    prompt: str = "{",
    *,
    n: int,
    generator: torch.Generator,
    steps: int | None = None,
    k: int | None = None,
    length: int | None = None,
    temperature: float = 1.0,
    process: MaskedProcess | None = None,
    return_details: bool = False,
) -> list[str] | S3Generation:
    """The baseline: the model writes everything after ``prompt`` (default ``"{"``) in a
    sequence of ``length`` tokens (default: the model's context), with the same top-K confidence
    remasking. Texts include the prompt; read them with :func:`extract_json`."""
    head = _prompt_ids(tokenizer, prompt)
    context = _context(model, length)
    if context is None:
        raise InputError("length: the model has no known context; give length")
    if len(head) >= context:
        raise InputError(
            f"prompt: {len(head)} tokens leave no room in the context of {context} tokens"
        )
    tokens = head + [tokenizer.mask_id] * (context - len(head))
    fixed = [True] * len(head) + [False] * (context - len(head))
    gen = _run(
        model,
        tokenizer,
        tokens,
        fixed,
        n=n,
        steps=_steps(steps, k, context - len(head)),
        generator=generator,
        temperature=temperature,
        process=process,
        start=0,
    )
    return gen if return_details else gen.texts


def evaluate_schema_adherence(
    model: Any,
    tokenizer: Any,
    schema: Mapping[str, Any] | str | Path,
    *,
    reference: Sequence[Mapping[str, Any]],
    n: int = 64,
    steps: int | None = None,
    k: int | None = None,
    baseline_steps: int | None = None,
    slot_len: int | Mapping[str, int] = DEFAULT_SLOT_LEN,
    length: int | None = None,
    temperature: float = 1.0,
    constrain_slots: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """S^3 vs the unscaffolded baseline on the same model: schema-valid rate, parse rate,
    content fidelity against ``reference`` records, model calls per sample (one call denoises
    the whole batch) and wall seconds per sample.

    ``steps``/``k`` set S^3's decoding; the baseline uses ``baseline_steps`` (default: the
    same number of steps as S^3). ``constrain_slots`` applies to S^3 only.
    """
    schema = load_schema(schema)
    s3 = s3_generate(
        model,
        tokenizer,
        schema,
        n=n,
        steps=steps,
        k=k,
        slot_len=slot_len,
        length=length,
        temperature=temperature,
        constrain_slots=constrain_slots,
        generator=torch.Generator().manual_seed(seed),
        return_details=True,
    )
    assert isinstance(s3, S3Generation)
    s3_steps = (
        steps
        if steps is not None
        else _steps(
            None, k, int((~build_scaffold(schema, tokenizer, slot_len=slot_len).fixed).sum())
        )
    )
    base = unscaffolded_generate(
        model,
        tokenizer,
        "{",
        n=n,
        steps=baseline_steps or s3_steps,
        length=length,
        temperature=temperature,
        generator=torch.Generator().manual_seed(seed),
        return_details=True,
    )
    assert isinstance(base, S3Generation)
    base_json = [extract_json(t) for t in base.texts]
    out = {
        "s3_schema_valid_rate": sum(validate_json(t, schema) for t in s3.texts) / n,
        "s3_parse_rate": sum(extract_json(t) is not None for t in s3.texts) / n,
        "s3_nfe_per_sample": float(s3.nfe),
        "s3_seconds_per_sample": s3.seconds / n,
        "unscaffolded_schema_valid_rate": sum(
            t is not None and validate_json(t, schema) for t in base_json
        )
        / n,
        "unscaffolded_parse_rate": sum(t is not None for t in base_json) / n,
        "unscaffolded_nfe_per_sample": float(base.nfe),
        "unscaffolded_seconds_per_sample": base.seconds / n,
        "steps": float(s3_steps),
        "baseline_steps": float(baseline_steps or s3_steps),
    }
    for name, texts in (("s3", s3.texts), ("unscaffolded", base_json)):
        for key, value in content_fidelity(texts, reference).items():
            out[f"{name}_{key}"] = value
    return out
