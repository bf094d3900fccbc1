"""polyfold-motion's benchmark on the held-out DeepMimic windows, every row on the same
held-out captions and the same shipped evaluator.

Rows: the shipped RVQ tokenizer's held-out reconstruction (MPJPE in mm with all codebooks and
with the first, codebook usage and perplexity, encode+decode time per window); the real-vs-real
floor of the evaluator (FID between two disjoint halves of the held-out windows, KID,
R-precision, MM-Dist, action accuracy, with 95 % bootstrap intervals); physical metrics of the
real held-out motion (the denominators of the generated/real ratios). EMDM and the DDPM
baseline (the shipped models, same network) generate one window per held-out caption and are
scored by :func:`polyfold.motion.evaluation.score`; time per sequence is the median wall time of
one caption (batch 1, one CPU thread) and of the whole held-out batch divided by its size.

    python apps/bench/motion.py --quick --out runs/bench/motion.json

Summary (goals from issue 21): ``rvq_mpjpe_mm`` (<= 20), ``emdm_accuracy`` (>= 0.9),
``emdm_fid_over_real_floor`` (<= 2), ``emdm_skating_over_real`` (<= 1.5), ``emdm_bone_std_cm``
(<= 1), ``emdm_speedup_vs_ddpm50`` (>= 10) with ``emdm_fid_over_ddpm50_fid`` (<= 1.2); also
``real_fid_floor``, ``real_accuracy``, ``real_r_precision_top3``. Issue 22: the shipped Mogo and
its single-codebook T2M-GPT ablation (one network call per 4-frame token) with the same keys
(``mogo_*``, ``t2m_gpt_*``), and ``mogo_long_sequence_max_velocity_over_real`` (<= 1): three
held-out captions chained, each a training window long (3x the context), largest joint speed
against the real held-out windows' (also at the 99th percentile). MMDM (the DDPM baseline's
network and budget trained with time-frame and body-part masks in its motion embedding):
``mmdm_*`` and ``mmdm_fid_over_unmasked_fid`` (< 1, against the shipped ``ddpm``). MMM, CDCD and
the retrieval baseline (``_motion_mmm.py``): ``best_token_model_fid_over_floor`` (<= 2) and
``best_token_model_accuracy`` (>= 0.9) over MMM, Mogo, T2M-GPT and BiPO,
``mmm_inbetween_mpjpe_over_slerp`` (<= 0.7), ``cdcd_rprecision_gain`` (> 0),
``cdcd_steps_for_equal_fid_ratio`` (<= 0.65), ``retrieval_*``. BiPO (``_motion_bipo.py``):
``bipo_*`` as Mogo's, ``bipo_part_edit_untouched_part_mpjpe_mm`` (<= 10) and
``bipo_free_length_mean_frames`` (lengths from its end token).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from _common import parse_args, print_table, time_call, write_json  # type: ignore[import-not-found]
from _motion_bipo import bipo_rows  # type: ignore[import-not-found]
from _motion_mmm import mmm_rows  # type: ignore[import-not-found]

from polyfold.motion.dataset import DatasetConfig, build_dataset
from polyfold.motion.evaluation import HeldOut, physical, score
from polyfold.motion.evaluator import evaluate_set
from polyfold.motion.features import joints_from_features
from polyfold.motion.generate import resolve_model
from polyfold.motion.shipped import shipped_path
from polyfold.motion.train_tokenizer import evaluate_tokenizer, load_tokenizer

EMDM_KEYS = (
    "emdm_accuracy",
    "emdm_fid_over_real_floor",
    "emdm_skating_over_real",
    "emdm_bone_std_cm",
    "emdm_speedup_vs_ddpm50",
    "emdm_fid_over_ddpm50_fid",
)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(1)
    reps = 30 if args.quick else 200
    # the held-out windows do not depend on the training counts: build only those
    cfg = DatasetConfig(train_windows_per_clip=0, train_then=0)
    data = build_dataset(cfg)
    test = data.indices("test")
    rows: list[dict[str, Any]] = []

    tok, t_mean, t_std, t_card = load_tokenizer(shipped_path("tokenizer"))
    tok_metrics = evaluate_tokenizer(tok, data, t_mean, t_std)
    x = torch.from_numpy((data.features[test[:32]] - t_mean) / t_std).float()
    per_window = time_call(lambda: tok.decode(tok.encode(x)), repeats=3) / len(x)
    rows.append({"row": "rvq tokenizer (shipped)", **tok_metrics, "s_per_window": per_window})

    held = HeldOut.build(data)
    emb, logits, text, labels = held.emb, held.logits, held.text, held.labels
    perm = np.random.default_rng(0).permutation(len(test))
    a, b = perm[: len(test) // 2], perm[len(test) // 2 :]
    floor = held.floor(0)
    res = evaluate_set(emb[a], logits[a], text[a], labels[a], emb[b], reps=reps)
    row = {"row": "real held-out half A vs half B"}
    for k, (v, lo, hi) in res.items():
        row[k] = v
        row[f"{k}_ci"] = f"[{lo:.3g}, {hi:.3g}]"
    rows.append(row)

    rows.append({"row": "real held-out physical", **physical(data.joints[test])})
    names = ("emdm", "ddpm", "mogo", "t2m-gpt", "mmdm", "bipo")
    gen = {name: _generated_row(name, held, reps) for name in names}
    rows += [row for row, _ in gen.values()]
    long_row = _long_sequence_row(held)
    rows.append(long_row)
    others = {n: gen[n][0] for n in ("mogo", "t2m-gpt", "bipo")}
    token_rows, token_summary = mmm_rows(held, reps, args.quick, others)  # MMM, CDCD, baselines
    rows += token_rows
    bipo_extra, bipo_summary = bipo_rows(held)  # part edit, length-free generation
    rows += bipo_extra
    for r in rows:
        print_table([r])
    summary: dict[str, Any] = {
        "rvq_mpjpe_mm": tok_metrics["mpjpe_mm"],
        "rvq_mpjpe_mm_true_root": tok_metrics["mpjpe_mm_true_root"],
        "rvq_mpjpe_mm_first_codebook": tok_metrics["mpjpe_mm_first_codebook"],
        "rvq_usage": tok_metrics["usage"],
        "rvq_perplexity": tok_metrics["perplexity"],
        "real_fid_floor": floor,
        "real_accuracy": res.get("accuracy", (float("nan"),))[0],
        "real_r_precision_top1": res["r_precision_top1"][0],
        "real_r_precision_top3": res["r_precision_top3"][0],
        **_emdm_summary(gen),
        **_mogo_summary(gen, long_row),
        **token_summary,
        **bipo_summary,
        "held_out_windows": len(test),
        "tokenizer_command": t_card.get("command", ""),
    }
    print(summary)
    write_json(args.out, rows, summary)


def _generated_row(name: str, held: HeldOut, reps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score the shipped ``name`` model on the held-out captions, with its timings."""
    m = resolve_model(name)
    length = held.data.features.shape[1]
    feats = m.sample(held.text, length, seed=0)
    res = score(held, feats, reps=reps)
    one = time_call(lambda: m.sample(held.text[:1], length), repeats=5)
    batch = time_call(lambda: m.sample(held.text, length), repeats=1) / len(held.text)
    calls = m.card.get("sample_steps") or -(-length // 4)  # token models: one call per token
    row: dict[str, Any] = {
        "row": f"{name} (shipped, {calls} network calls)",
        "network_calls": calls,
    }
    for k, v in res.items():
        row[k] = v[0] if isinstance(v, tuple) else v
        if isinstance(v, tuple):
            row[f"{k}_ci"] = f"[{v[1]:.3g}, {v[2]:.3g}]"
    row.update({"s_per_sequence": one, "s_per_sequence_batched": batch,
                "command": m.card.get("command", "")})  # fmt: skip
    return row, res


def _emdm_summary(gen: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    e, d = gen["emdm"][0], gen["ddpm"][0]
    out = {
        "emdm_accuracy": e["accuracy"],
        "emdm_fid_over_real_floor": e["fid_over_real_floor"],
        "emdm_skating_over_real": e["skating_over_real"],
        "emdm_bone_std_cm": e["bone_std_cm"],
        "emdm_speedup_vs_ddpm50": d["s_per_sequence"] / e["s_per_sequence"],
        "emdm_fid_over_ddpm50_fid": e["fid"] / d["fid"],
        "emdm_s_per_sequence": e["s_per_sequence"],
        "ddpm50_s_per_sequence": d["s_per_sequence"],
        "ddpm50_accuracy": d["accuracy"],
        "ddpm50_fid_over_real_floor": d["fid_over_real_floor"],
        "paper_emdm_s_per_sequence_gpu": 0.05,
    }
    assert set(EMDM_KEYS) <= set(out)
    return out


def _max_speed(joints: np.ndarray, q: float = 100.0) -> float:
    """Largest (``q = 100``) or ``q``-th percentile joint speed (m/s at 20 fps) over windows
    ``(N, T, J, 3)``."""
    return float(np.percentile(np.linalg.norm(np.diff(joints, axis=1), axis=-1), q) * 20.0)


def _long_sequence_row(held: HeldOut, chains: int = 16) -> dict[str, Any]:
    """Mogo on three held-out captions chained, each one training window long (3x the
    context): its joint speeds and physical metrics against the real held-out windows'."""
    m = resolve_model("mogo")
    tokens = -(-held.data.features.shape[1] // 4)
    pick = np.random.default_rng(1).permutation(len(held.text))[: 3 * chains].reshape(3, chains)
    segments = [(torch.from_numpy(held.text[i]).float(), tokens) for i in pick]
    feats = m.sample_segments(segments, seed=0)  # type: ignore[attr-defined]
    joints = np.stack([joints_from_features(f) for f in feats])
    real = held.data.joints[held.index]
    row: dict[str, Any] = {
        "row": f"mogo long sequence (3 chained captions, {feats.shape[1]} frames)",
        "frames": feats.shape[1],
        "max_speed_m_s": _max_speed(joints),
        "real_max_speed_m_s": _max_speed(real),
        "max_velocity_over_real": _max_speed(joints) / _max_speed(real),
        "p99_velocity_over_real": _max_speed(joints, 99) / _max_speed(real, 99),
    }
    real_phys = physical(real)
    for k, v in physical(joints).items():
        if real_phys[k] > 0:
            row[f"{k}_over_real"] = v / real_phys[k]
    return row


def _mogo_summary(
    gen: dict[str, tuple[dict[str, Any], dict[str, Any]]], long_row: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("mogo", "t2m-gpt", "mmdm", "bipo"):
        row, key = gen[name][0], name.replace("-", "_")
        for k in ("fid_over_real_floor", "accuracy", "r_precision_top1", "r_precision_top3",
                  "mm_dist", "skating_over_real", "bone_std_cm", "jerk_over_real",
                  "s_per_sequence"):  # fmt: skip
            if k in row:
                out[f"{key}_{k}"] = row[k]
    out["mogo_long_sequence_max_velocity_over_real"] = long_row["max_velocity_over_real"]
    out["mogo_long_sequence_p99_velocity_over_real"] = long_row["p99_velocity_over_real"]
    out["mogo_long_sequence_frames"] = long_row["frames"]
    out["mmdm_fid_over_unmasked_fid"] = gen["mmdm"][0]["fid"] / gen["ddpm"][0]["fid"]
    return out


if __name__ == "__main__":
    main()
