"""Motion editing with MMM by placing mask tokens (the tokens that stay are fixed in core's
confidence sampler, so they never change):

- :func:`edit_range` / in-betweening: the tokens covering frames ``[start, end)`` are masked and
  regenerated under a caption; frames outside the range are returned exactly as given, and the
  first and last ``blend`` frames inside it cross-fade from the given motion to the decoded one.
  ``start = 0`` completes a prefix from what follows, ``end = len`` a suffix.
- :func:`continue_motion`: new tokens appended after the given ones (prefix completion).
- :func:`chain_captions`: long sequences, one window per caption, each window starting from the
  last ``overlap`` tokens of the previous one, decoded in one pass (the convolutional decoder
  smooths the seams).
- :func:`body_part_edit`: the tokenizer has one token per time step for the whole body, so a
  part cannot be masked on its own. The mechanism here is feature-space blending through
  decode: the motion for the new caption is generated with the edited window's timing, and the
  feature columns of the chosen joints (their positions, rotations and velocities) come from it
  while the root track and every other joint keep the given values exactly.

Features are raw (unnormalised) rows ``(L, D)`` as in :mod:`polyfold.motion.features`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from polyfold.core.errors import InputError, check_int
from polyfold.motion.features import LAYOUT
from polyfold.motion.mmm import MMM
from polyfold.motion.quaternion import qrotate, yaw_quat
from polyfold.motion.skeleton import HUMANOID

__all__ = [
    "PARTS",
    "body_part_edit",
    "chain_captions",
    "continue_motion",
    "edit_range",
    "match_root_track",
    "part_columns",
]

_SIDES = ("left", "right")
PARTS: dict[str, tuple[str, ...]] = {
    "upper": (
        "chest",
        "neck",
        *(f"{s}_{j}" for s in _SIDES for j in ("shoulder", "elbow", "wrist")),
    ),
    "torso": ("chest", "neck"),
    "arms": tuple(f"{s}_{j}" for s in _SIDES for j in ("shoulder", "elbow", "wrist")),
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "legs": tuple(f"{s}_{j}" for s in _SIDES for j in ("hip", "knee", "ankle")),
    "left_leg": ("left_hip", "left_knee", "left_ankle"),
    "right_leg": ("right_hip", "right_knee", "right_ankle"),
}
"""Body parts by name (the root is never a part: its track stays with the given motion)."""


def part_columns(parts: Sequence[str]) -> np.ndarray:
    """Sorted feature columns of the joints of ``parts`` (names of :data:`PARTS` or joints)."""
    if isinstance(parts, str) or not parts:
        raise InputError(f"parts: expected a non-empty list of part names, got {parts!r}")
    sk, g = HUMANOID, LAYOUT.groups
    joints: set[int] = set()
    for p in parts:
        names = PARTS.get(p, (p,) if p in sk.names and p != "root" else None)
        if names is None:
            raise InputError(
                f"part {p!r}: expected one of {', '.join(PARTS)} or a joint name other than root"
            )
        joints.update(sk.index(n) for n in names)
    ball, hinge = sk.joints_of("ball"), sk.joints_of("hinge")
    cols: list[int] = []
    for j in sorted(joints):
        cols += range(g["ric"].start + 3 * (j - 1), g["ric"].start + 3 * j)
        cols += range(g["joint_vel"].start + 3 * j, g["joint_vel"].start + 3 * j + 3)
        if j in ball:
            k = 1 + ball.index(j)
            cols += range(g["rot6d"].start + 6 * k, g["rot6d"].start + 6 * k + 6)
        if j in hinge:
            k = hinge.index(j)
            cols += range(g["hinge"].start + 2 * k, g["hinge"].start + 2 * k + 2)
        if sk.names[j] in ("left_ankle", "right_ankle"):
            cols.append(g["contact"].start + _SIDES.index(sk.names[j].split("_")[0]))
    return np.array(sorted(cols))


def _check_features(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2 or f.shape[1] != LAYOUT.dim or len(f) < 2 or not np.isfinite(f).all():
        raise InputError(
            f"motion: expected finite feature rows (L >= 2, {LAYOUT.dim}), got {f.shape}"
        )
    return f


def _padded(model: MMM, f: np.ndarray) -> np.ndarray:
    """``f`` with its last row repeated up to a multiple of the tokenizer's factor."""
    pad = -len(f) % model.factor
    return np.concatenate([f, np.repeat(f[-1:], pad, axis=0)]) if pad else f


def edit_range(
    model: MMM,
    features: np.ndarray,
    caption: str,
    start: int,
    end: int,
    *,
    steps: int | None = None,
    seed: int = 0,
    blend: int = 2,
    candidates: int = 1,
) -> np.ndarray:
    """Regenerate frames ``[start, end)`` of ``features (L, D)`` under ``caption``; with
    ``candidates > 1`` that many are drawn and the one whose decoding agrees best with the given
    frames just outside the range (the decoder sees across the seams) is kept."""
    f = _check_features(features)
    length = len(f)
    for name, v in (("start", start), ("end", end)):
        check_int(name, v, 0)
    if not 0 <= start < end <= length:
        raise InputError(
            f"frame range: expected 0 <= start < end <= {length} (the motion's frames), "
            f"got start={start}, end={end}"
        )
    check_int("blend", blend, 0)
    check_int("candidates", candidates, 1)
    fac = model.factor
    full = model.encode(_padded(model, f)[None])
    n = full.shape[1]
    fixed = torch.ones(1, n, dtype=torch.bool)
    fixed[0, start // fac : -(-end // fac)] = False
    cond = tuple(c.repeat_interleave(candidates, dim=0) for c in model.condition([caption]))
    full, fixed = full.repeat(candidates, 1, 1), fixed.repeat(candidates, 1)
    res = model.generate_tokens(cond, full[..., 0], fixed, steps=steps, seed=seed)  # type: ignore[arg-type]
    decs = model.decode(res.tokens, full, fixed)[:, :length]
    near = np.r_[max(0, start - fac) : start, end : min(length, end + fac)]
    cost = (((decs[:, near] - f[near]) / model.std.numpy()) ** 2).sum(axis=(1, 2))
    dec = decs[int(np.argmin(cost))]
    out = f.copy()
    out[start:end] = dec[start:end]
    k = min(blend, (end - start) // 2)
    ramp = (np.arange(1, k + 1) / (k + 1))[:, None]
    if start > 0 and k:
        out[start : start + k] = (1 - ramp) * f[start : start + k] + ramp * dec[start : start + k]
    if end < length and k:
        back = ramp[::-1]
        out[end - k : end] = (1 - back) * f[end - k : end] + back * dec[end - k : end]
    return match_root_track(out, f, start, end) if end < length else out


def _world(yaw: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Facing-frame xz vectors ``v (T, 2)`` in world xz, at yaws ``yaw (T,)``."""
    v3 = np.zeros((len(v), 3))
    v3[:, [0, 2]] = v
    return qrotate(yaw_quat(yaw), v3)[:, [0, 2]]


def match_root_track(edited: np.ndarray, original: np.ndarray, start: int, end: int) -> np.ndarray:
    """``edited`` with the yaw and root velocities of frames ``[start, end)`` shifted by one
    constant each (yaw rate, then world xz step) so that the range turns and travels as far as
    in ``original``: every frame after the range then lands where the original has it."""
    g = LAYOUT.groups
    out = np.array(edited, dtype=np.float64)
    orig = np.asarray(original, dtype=np.float64)
    n = end - start
    yaw_col = g["yaw_vel"].start
    gap = orig[start:end, yaw_col].sum() - out[start:end, yaw_col].sum()
    out[start:end, yaw_col] += gap / n
    yaw_new = np.cumsum(out[:, yaw_col])[start:end]
    yaw_old = np.cumsum(orig[:, yaw_col])[start:end]
    rv = g["root_vel"]
    step = _world(yaw_new, out[start:end, rv])
    want = _world(yaw_old, orig[start:end, rv]).sum(axis=0)
    step += (want - step.sum(axis=0)) / n
    out[start:end, rv] = _world(-yaw_new, step)
    return out.astype(np.asarray(edited).dtype)


def continue_motion(
    model: MMM,
    features: np.ndarray,
    caption: str,
    frames: int,
    *,
    steps: int | None = None,
    seed: int = 0,
    candidates: int = 1,
) -> np.ndarray:
    """``features`` followed by ``frames`` new frames generated under ``caption`` (best of
    ``candidates`` by agreement with the given frames before them)."""
    f = _check_features(features)
    check_int("frames", frames, 1)
    longer = np.concatenate([f, np.repeat(f[-1:], frames, axis=0)])
    return edit_range(model, longer, caption, len(f), len(longer), steps=steps, seed=seed,
                      candidates=candidates)  # fmt: skip


def body_part_edit(
    model: MMM,
    features: np.ndarray,
    caption: str,
    parts: Sequence[str],
    *,
    steps: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``features`` with the joints of ``parts`` following ``caption`` (feature-space blending,
    see the module text); every other column is returned unchanged."""
    f = _check_features(features)
    cols = part_columns(parts)
    new = model.generate([caption], len(f), steps=steps, seed=seed)[0]
    out = f.copy()
    out[:, cols] = new[:, cols]
    return out


def chain_captions(
    model: MMM,
    captions: Sequence[str],
    frames_each: int = 48,
    *,
    overlap: int = 2,
    steps: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """One long motion ``(frames, D)``: a window of ``frames_each`` frames per caption, each
    starting from the previous window's last ``overlap`` tokens (fixed), decoded at once."""
    if isinstance(captions, str) or not captions:
        raise InputError(f"captions: expected a non-empty list of captions, got {captions!r}")
    check_int("frames_each", frames_each, 1)
    n = -(-frames_each // model.factor)
    check_int("overlap", overlap, 0)
    if overlap >= n:
        raise InputError(f"overlap: expected fewer than {n} tokens (one window), got {overlap}")
    tokens = torch.zeros(1, 0, dtype=torch.long)
    for i, cap in enumerate(captions):
        keep = overlap if i else 0
        window = torch.zeros(1, n, dtype=torch.long)
        fixed = torch.zeros(1, n, dtype=torch.bool)
        if keep:
            window[0, :keep] = tokens[0, -keep:]
            fixed[0, :keep] = True
        res = model.generate_tokens(
            model.condition([cap]), window, fixed, steps=steps, seed=seed + i
        )
        tokens = torch.cat([tokens, res.tokens[:, keep:]], dim=1)
    return model.decode(tokens)[0]
