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
``real_fid_floor``, ``real_accuracy``, ``real_r_precision_top3``. Issue 22 (``_motion_mmm.py``):
``best_token_model_fid_over_floor`` (<= 2), ``best_token_model_accuracy`` (>= 0.9),
``mmm_inbetween_mpjpe_over_slerp`` (<= 0.7), ``cdcd_rprecision_gain`` (> 0),
``cdcd_steps_for_equal_fid_ratio`` (<= 0.65), ``retrieval_*``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from _common import parse_args, print_table, time_call, write_json  # type: ignore[import-not-found]
from _motion_mmm import mmm_rows  # type: ignore[import-not-found]

from polyfold.motion.dataset import DatasetConfig, build_dataset
from polyfold.motion.emdm import load_motion_model
from polyfold.motion.evaluation import HeldOut, physical, score
from polyfold.motion.evaluator import evaluate_set
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
    gen = {name: _generated_row(name, held, reps) for name in ("emdm", "ddpm")}
    rows += [row for row, _ in gen.values()]
    token_rows, token_summary = mmm_rows(held, reps, args.quick)  # issue 22: MMM, CDCD, baselines
    rows += token_rows
    for r in rows:
        print_table([r])
    summary: dict[str, Any] = {
        "rvq_mpjpe_mm": tok_metrics["mpjpe_mm"],
        "rvq_mpjpe_mm_true_root": tok_metrics["mpjpe_mm_true_root"],
        "rvq_usage": tok_metrics["usage"],
        "rvq_perplexity": tok_metrics["perplexity"],
        "real_fid_floor": floor,
        "real_accuracy": res.get("accuracy", (float("nan"),))[0],
        "real_r_precision_top1": res["r_precision_top1"][0],
        "real_r_precision_top3": res["r_precision_top3"][0],
        **_emdm_summary(gen),
        **token_summary,
        "held_out_windows": len(test),
        "tokenizer_command": t_card.get("command", ""),
    }
    print(summary)
    write_json(args.out, rows, summary)


def _generated_row(name: str, held: HeldOut, reps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score the shipped ``name`` model on the held-out captions, with its timings."""
    m = load_motion_model(shipped_path(name))
    length = held.data.features.shape[1]
    feats = m.sample(held.text, length, seed=0)
    res = score(held, feats, reps=reps)
    one = time_call(lambda: m.sample(held.text[:1], length), repeats=5)
    batch = time_call(lambda: m.sample(held.text, length), repeats=1) / len(held.text)
    row: dict[str, Any] = {"row": f"{name} (shipped, {m.card['sample_steps']} steps)"}
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


if __name__ == "__main__":
    main()
