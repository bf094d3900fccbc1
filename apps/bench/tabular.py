"""TabEBM data augmentation vs real-only, SMOTE and a class-conditional Gaussian mixture.

The protocol of the TabEBM paper on the offline tables bundled with polyfold-tabular: stratified
training subsets of 20/50/100/200 rows (several seeds), each augmented with synthetic rows per
class by every method in the same run, then logistic regression, KNN, random forest and MLP
(scikit-learn) scored by balanced accuracy on a held-out 30% test set. Also statistical
fidelity (per-feature KS, inverse KL) and distance to closest record.

    python apps/bench/tabular.py --quick --out runs/bench/tabular.json

Summary: ``win_rate_vs_real`` (fraction of (dataset, size) cells where TabEBM's mean balanced
accuracy beats real-only), ``mean_gain_vs_real`` and ``mean_gain_vs_smote`` (points of balanced
accuracy), ``win_rate_vs_smote``, ``gain_vs_smote_interval`` (95% over seeds) and ``vs_smote``
(the verdict on these tables: a tie within seed noise when the interval holds 0), ``datasets``.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import Any

import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]

from polyfold.tabular.backbones import default_backbone
from polyfold.tabular.datasets import DATASETS, load_dataset
from polyfold.tabular.evaluation import EvalConfig, evaluate, smote_line, summarize

QUICK_DATASETS = (
    "iris",
    "wine",
    "breast-cancer",
    "pima",
    "biopsy",
    "penguins",
    "swiss-labor",
    "glass",
)


WORKERS = 2  # the target machine: 2 CPU cores; each worker runs torch on one thread


def _init_worker() -> None:
    torch.set_num_threads(1)  # tiny per-class models: one thread is fastest on a shared machine


def _run_job(name: str, seed: int, cfg: EvalConfig) -> list[dict[str, Any]]:
    """One dataset, one seed, every size and method (run in a worker process)."""
    table = load_dataset(name)
    return evaluate(table.X, table.y, replace(cfg, seeds=(seed,)), dataset=name)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    backbone = default_backbone()
    alternative = "mlp" if backbone != "mlp" else "logistic"
    methods = ("real", "smote", "gmm", "tabebm", f"tabebm-{alternative}")
    if args.quick:
        names = QUICK_DATASETS
        cfg = EvalConfig(
            sizes=(20, 100),
            seeds=(0, 1),
            methods=methods,
            n_syn=100,
            rf_trees=50,
            mlp_iter=200,
            backbone=backbone,
        )
    else:
        names = tuple(DATASETS)
        cfg = EvalConfig(
            sizes=(20, 50, 100, 200),
            seeds=(0, 1, 2),
            methods=methods,
            n_syn=500,
            backbone=backbone,
        )
    start = time.perf_counter()
    rows = []
    config = {
        "datasets": list(names),
        "sizes": list(cfg.sizes),
        "seeds": list(cfg.seeds),
        "n_syn": cfg.n_syn,
        "methods": list(methods),
        "quick": bool(args.quick),
    }
    # the widest tables last, so that a run stopped early still covers most datasets
    jobs = [(n, seed) for n in sorted(names, key=lambda n: n == "digits") for seed in cfg.seeds]
    order = {name: k for k, name in enumerate(names)}
    with ProcessPoolExecutor(max_workers=WORKERS, initializer=_init_worker) as pool:
        futures = {pool.submit(_run_job, name, seed, cfg): (name, seed) for name, seed in jobs}
        for done, future in enumerate(as_completed(futures), 1):
            name, seed = futures[future]
            rows += future.result()
            print(
                f"[{time.perf_counter() - start:6.0f} s] {name} seed {seed} done "
                f"({done}/{len(jobs)})",
                flush=True,
            )
            if args.out is not None and not args.quick and done < len(jobs):
                # a long run's partial results survive a stop
                write_json(args.out, rows, summarize(rows)[1], config=config, complete=False)
    rows.sort(
        key=lambda r: (order[r["dataset"]], r["seed"], r["n_train"], methods.index(r["method"]))
    )
    means, summary = summarize(rows, method="tabebm")
    summary.update({"backbone": backbone, "alternative_backbone": alternative})

    wide: dict[tuple[str, int], dict[str, object]] = {}
    for r in means:
        cell = wide.setdefault(
            (r["dataset"], r["n_train"]), {"dataset": r["dataset"], "n_train": r["n_train"]}
        )
        cell[r["method"]] = float(r["bal_acc"])
    print("\nmean balanced accuracy over seeds and the 4 downstream classifiers")
    print_table(list(wide.values()), ["dataset", "n_train", *methods])

    fid = []
    for m in methods[1:]:
        sel = [r for r in means if r["method"] == m]
        fid.append(
            {
                "method": m,
                "ks": sum(r["ks"] for r in sel) / len(sel),
                "inv_kl": sum(r["inv_kl"] for r in sel) / len(sel),
                "dcr": sum(r["dcr"] for r in sel) / len(sel),
                "gen_seconds": sum(r["gen_seconds"] for r in sel) / len(sel),
            }
        )
    print("\nfidelity vs held-out real rows (mean over cells)")
    print_table(fid)
    print("\nsummary")
    for k, v in summary.items():
        print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"\n{smote_line(summary)}")
    print(f"total {time.perf_counter() - start:.0f} s")
    write_json(args.out, rows, summary, means=means, config=config, complete=True)


if __name__ == "__main__":
    main()
