"""Samplers benchmark section: the domain rows of issue 25, USF on domain models.

Graph, GDSS QM9 (the shipped ``qm9`` checkpoint): at each budget of network calls in ``CALLS``
(10-20, as the issue asks), today's best plain sampler against a USF schedule searched for this
model and budget (:func:`~polyfold.core.samplers.usf.search_schedule`, DC-Solver's per-step
compensation ratios searched with it: rows ``usf+dc``). The plain candidates are
polyfold-graph's probability-flow samplers as ``polyfold.graph.sampling.solve`` runs them
(``unipc``, ``dpm_solver_pp``, ``deis``, ``euler_ode`` with ``calls - 1`` steps and ``heun``
with ``(calls - 1) // 2``, each plus its final denoising call); the best is the one with the
lowest error on the calibration batch, never the evaluation one. USF runs on the flattened
state ``(x, adj)`` (:class:`FlatGraph`; QM9's two keys share one VE path) on the same grid, the
data point appended so that its last call is the same denoising call: equal calls. The search
sees ``CALIB`` calibration molecules (their own node masks and prior noise, seed 21) and twice
as many held-out ones (seed 23; a change is kept only if both agree); evaluation uses ``EVAL``
other molecules (seed 22). Each row is scored with the graph package's own QM9 metrics
(:class:`~polyfold.graph.evaluation.MoleculeEvaluator`: validity without correction,
uniqueness, FCD against the test split when ``FCD`` is on) and by ``ref_error``, the RMS
distance of the continuous end state (``x`` and ``adj``) to a ``REF_STEPS``-step DPM-Solver++
sample from the same noise and masks. A ``reference`` row scores that sample itself, with
``reference_self_error``, its distance to one of twice the steps on the calibration batch.

Timeseries, TSDiff forecasting with CRPS: :mod:`_samplers_domains_ts` (polyfold-timeseries ships
no checkpoint, so a small TSDiff is trained there first).

Teleportation is not run on QM9: the flat state's padding (node masks of every size) makes one
Gaussian over all molecules a poor fit, and a fit per node count was not written. Not covered:
the text package's shipped models are masked discrete diffusion (MDLM) and an
autoregressive model; USF, DC-Solver and teleportation integrate a Gaussian path's
probability-flow ODE, which those models do not have.

``--quick``: 10 calls, 32 + 64 calibration molecules, one search round, 128 evaluation
molecules, no FCD (the unreported novelty and NSPDK on 1000 train / test molecules), a
100-step reference. Full: 10, 15 and 20 calls, 64 + 128 calibration molecules, two rounds,
1000 evaluation molecules, FCD against the whole test split, a 200-step reference.

Summary (:func:`summarize_domains`):
``domain_<domain>_<metric>_nfe<calls>_{usf,teleport_usf,best_plain}`` (rows ``usf+dc``,
``teleport+usf+dc``, the best plain one) for ``validity``, ``uniqueness``, ``fcd`` (QM9),
``crps`` (timeseries) and ``ref_error``; the ratios ``..._over_best_plain`` of ``ref_error`` and
``crps``; per budget ``..._best_plain_sampler_nfe<calls>`` and
``..._{usf,teleport_usf}_search_seconds_nfe<calls>``; ``domain_<domain>_reference_self_error``,
``domain_timeseries_teleport_skip_fraction``.

The section alone: ``python apps/bench/_samplers_domains.py [--quick] [--out FILE]``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from _samplers_domains_ts import configure_ts, tsdiff_rows  # type: ignore[import-not-found]
from torch import Tensor

from polyfold.core.denoiser import NFECounter, as_denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.samplers import zero_time
from polyfold.core.samplers.usf import search_schedule, usf

CALLS = [10, 15, 20]
CALIB = 64
EVAL = 1000
ROUNDS = 2
FCD = True
REF_STEPS = 200
SUBSET = 1000  # --quick: train / test molecules behind the unreported novelty and NSPDK
PLAIN = ("unipc", "dpm_solver_pp", "deis", "euler_ode", "heun")
METRICS = ("validity", "uniqueness", "fcd", "crps", "ref_error")
LOWER = ("ref_error", "crps")  # metrics whose USF / best plain ratio the summary reports
TAGS = {"usf+dc": "usf", "teleport+usf+dc": "teleport_usf"}  # searched rows' summary tags


def configure_domains(quick: bool) -> None:
    """``--quick``: 10 calls, 32 calibration (+64 held-out), 128 evaluation molecules, one
    search round, no FCD; a full run: 10, 15, 20 calls, 64 (+128), 1000, two rounds, FCD. The
    timeseries section likewise (:func:`_samplers_domains_ts.configure_ts`)."""
    global CALLS, CALIB, EVAL, ROUNDS, FCD, REF_STEPS
    configure_ts(quick)
    CALLS, CALIB, EVAL, ROUNDS, FCD, REF_STEPS = (
        ([10], 32, 128, 1, False, 100) if quick else ([10, 15, 20], 64, 1000, 2, True, 200)
    )


class FlatGraph:
    """A GDSS network as a model of one flat state ``(B, N*F + N*N)``: ``x`` then ``adj``
    flattened, under the one path both keys share (QM9: VE 0.1..1). The node masks of the
    batches being sampled are set with :meth:`use` (told apart by their sizes, so that a search
    may run a calibration and a held-out batch with their own masks); outputs are masked as
    polyfold-graph masks states."""

    def __init__(self, gm: Any) -> None:
        paths = gm.sde.paths()
        preds = set(gm.sde.predictions().values())
        if repr(paths["x"]) != repr(paths["adj"]) or len(preds) != 1:
            raise InputError("gm: a flat state needs both keys on one path and one prediction")
        self.net, self.path, self.prediction = gm.model, paths["adj"], preds.pop()
        self.n, self.f = gm.max_nodes, gm.n_features
        self.masks: dict[int, Tensor] = {}

    def use(self, *masks: Tensor) -> FlatGraph:
        """Sample batches whose node masks are ``masks`` (each ``(B, N)``, distinct ``B``)."""
        self.masks = {int(m.shape[0]): m for m in masks}
        if len(self.masks) != len(masks):
            raise InputError("masks: expected batches of distinct sizes")
        return self

    def flatten(self, state: dict[str, Tensor]) -> Tensor:
        b = state["x"].shape[0]
        return torch.cat([state["x"].reshape(b, -1), state["adj"].reshape(b, -1)], dim=1)

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        b, k = flat.shape[0], self.n * self.f
        x = flat[:, :k].reshape(b, self.n, self.f)
        return {"x": x, "adj": flat[:, k:].reshape(b, self.n, self.n)}

    def mask(self, batch: int) -> Tensor:
        """The node masks of the batch of size ``batch``."""
        if batch not in self.masks:
            raise InputError(f"masks: no node masks for a batch of {batch}; call use() first")
        return self.masks[batch]

    def masked(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        from polyfold.graph.sde import mask_adj, mask_x

        mask = self.mask(int(state["x"].shape[0]))
        return {"x": mask_x(state["x"], mask), "adj": mask_adj(state["adj"], mask)}

    def __call__(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out = self.net(self.unflatten(x), t, self.mask(int(x.shape[0])))
        return self.flatten(self.masked(out))

    def denoiser(self, counter: NFECounter | None = None) -> Any:
        return as_denoiser(self, self.path, prediction=self.prediction, counter=counter)


def _draw(
    gm: Any, n: int, seed: int, mask: Tensor | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """``n`` node masks from the training node counts (or ``mask``) and prior noise on them."""
    from polyfold.graph.sampling import sample_masks
    from polyfold.graph.sde import prior_sample

    gen = torch.Generator().manual_seed(seed)
    if mask is None:
        mask = sample_masks(gm.node_counts, n, gm.max_nodes, generator=gen)
    return mask, prior_sample(gm.sde, mask, gm.n_features, generator=gen)


def _plain_steps(sampler: str, calls: int) -> int:
    return (calls - 1) // 2 if sampler == "heun" else calls - 1


def _solve(gm: Any, mask: Tensor, init: dict[str, Tensor], sampler: str, steps: int) -> Any:
    from polyfold.graph.sampling import solve

    counter = NFECounter()
    with torch.no_grad():
        out = solve(gm.model, gm.sde, init, mask, sampler=sampler, steps=steps, counter=counter)
    return out, counter.count


def _rms(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    sq = sum(float((a[k].to(F64) - b[k].to(F64)).pow(2).sum()) for k in ("x", "adj"))
    size = sum(a[k].numel() for k in ("x", "adj"))
    return math.sqrt(sq / size)


def _score(gm: Any, out: dict[str, Tensor], mask: Tensor, evaluator: Any) -> dict[str, float]:
    """The graph package's QM9 metrics of a continuous end state."""
    from polyfold.graph.sampling import GraphSamples, quantize_adjacency, quantize_nodes

    x, adj = quantize_nodes(out["x"], mask), out["adj"]
    adj = quantize_adjacency(adj, mask, molecule=True, scale=gm.sde.adj_scale)
    m = evaluator(GraphSamples(x, adj, mask, out, 0, 0.0), fcd=FCD)
    return {
        "validity": m["validity_wo_correction"],
        "uniqueness": m["uniqueness"],
        "fcd": m["fcd"],
    }


def usf_grid(gm: Any, calls: int) -> Tensor:
    """polyfold-graph's grid of ``calls - 1`` steps (1 to its ``t_end``) then the data point:
    ``calls`` intervals, the last one the denoising call."""
    from polyfold.graph.sampling import _grid

    grid = _grid("denoise", gm.sde, calls - 1)
    return torch.cat([grid, torch.tensor([zero_time(gm.sde.paths()["adj"])], dtype=F64)])


def qm9_rows(gm: Any, evaluator: Any) -> list[dict[str, Any]]:
    """Per budget in ``CALLS``: one row per plain sampler and one ``usf`` row, all on the
    evaluation molecules, the plain one chosen on calibration marked ``best_plain``."""
    flat = FlatGraph(gm)
    cal_mask, cal = _draw(gm, CALIB, 21)
    gate_mask, gate = _draw(gm, 2 * CALIB, 23)  # held-out: twice as many, their own masks
    ev_mask, ev = _draw(gm, EVAL, 22)
    cal_ref, _ = _solve(gm, cal_mask, cal, "dpm_solver_pp", REF_STEPS)
    ev_ref, ref_nfe = _solve(gm, ev_mask, ev, "dpm_solver_pp", REF_STEPS)
    finer, _ = _solve(gm, cal_mask, cal, "dpm_solver_pp", 2 * REF_STEPS)
    ref_row = {"sampler": "reference", "nfe": ref_nfe, "ref_error": 0.0}
    ref_row["reference_self_error"] = _rms(cal_ref, finer)
    rows = [{"domain": "qm9", "calls": ref_nfe, "n": EVAL, **ref_row}]
    rows[0].update(_score(gm, ev_ref, ev_mask, evaluator))
    for calls in CALLS:
        plain = []
        for name in PLAIN:
            steps = _plain_steps(name, calls)
            cal_out, _ = _solve(gm, cal_mask, cal, name, steps)
            out, nfe = _solve(gm, ev_mask, ev, name, steps)
            plain.append({"sampler": name, "nfe": nfe, "calib_error": _rms(cal_out, cal_ref)})
            plain[-1].update(_score(gm, out, ev_mask, evaluator), ref_error=_rms(out, ev_ref))
        best = min(plain, key=lambda r: r["calib_error"])
        best["best_plain"] = True
        grid = usf_grid(gm, calls)
        with torch.no_grad():
            found = search_schedule(
                flat.use(cal_mask, gate_mask).denoiser(),
                flat.path,
                flat.flatten(cal),
                calls,
                grid=grid,
                rounds=ROUNDS,
                holdout=flat.flatten(gate),
                compensation=True,
            )
            counter = NFECounter()
            sched = found.schedule
            res = usf(
                flat.use(ev_mask).denoiser(counter),
                flat.path,
                flat.flatten(ev),
                sched.grid,
                schedule=sched,
            )
        assert isinstance(res.x, Tensor)
        out = flat.masked(flat.unflatten(res.x))
        row = {
            "sampler": "usf+dc",
            "nfe": counter.count,
            "calib_error": found.error,
            "default_calib_error": found.default_error,  # its start: graph's unipc
            "search_seconds": found.seconds,
            "orders": list(sched.orders),
            "correctors": list(sched.correctors),
            "ratios": list(sched.ratios or ()),
            **_score(gm, out, ev_mask, evaluator),
            "ref_error": _rms(out, ev_ref),
        }
        for r in [*plain, row]:
            rows.append({"domain": "qm9", "calls": calls, "n": EVAL, **r})
        print(f"# domain qm9, {calls} calls: searched in {found.seconds:.0f}s", flush=True)
    return rows


def domain_rows() -> list[dict[str, Any]]:
    """Every domain's rows: QM9, then TSDiff (:mod:`_samplers_domains_ts`); text: see above."""
    from polyfold.graph.data import load_qm9_smiles
    from polyfold.graph.evaluation import MoleculeEvaluator
    from polyfold.graph.shipped import WEIGHTS
    from polyfold.graph.training import load_model

    train, test = load_qm9_smiles("train"), load_qm9_smiles("test")
    if not FCD:  # --quick: novelty and NSPDK are not reported, their statistics on a subset
        train, test = train[:SUBSET], test[:SUBSET]
    evaluator = MoleculeEvaluator(train, test)
    rows = qm9_rows(load_model(WEIGHTS / "qm9"), evaluator)
    return rows + tsdiff_rows()


def summarize_domains(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``domain_<domain>_<metric>_nfe<calls>_{usf,best_plain}``, their ratio
    ``..._usf_over_best_plain`` for ``ref_error`` and ``crps`` (lower is better), and per
    budget the best plain sampler's name and the search's seconds."""
    out: dict[str, Any] = {}
    for r in rows:
        if r["sampler"] == "reference":
            out[f"domain_{r['domain']}_reference_self_error"] = r["reference_self_error"]
        tag = TAGS.get(r["sampler"], "best_plain" if r.get("best_plain") else None)
        if tag is None:
            continue
        stem = f"domain_{r['domain']}"
        for m in METRICS:
            if m in r:
                out[f"{stem}_{m}_nfe{r['calls']}_{tag}"] = r[m]
        if tag != "best_plain":
            out[f"{stem}_{tag}_search_seconds_nfe{r['calls']}"] = r["search_seconds"]
            if tag == "teleport_usf":
                out[f"{stem}_teleport_skip_fraction"] = r["skip_fraction"]
        else:
            out[f"{stem}_best_plain_sampler_nfe{r['calls']}"] = r["sampler"]
    ends = tuple(f"_{t}" for t in TAGS.values())
    for key in [k for k in out if k.endswith(ends) and k.split("_nfe")[0].endswith(LOWER)]:
        plain = out.get(key.rsplit("_", 1)[0].removesuffix("_teleport") + "_best_plain")
        if plain:
            out[key + "_over_best_plain"] = out[key] / plain
    out["domain_not_covered"] = {
        "text": "masked discrete (MDLM) and autoregressive: no probability-flow ODE",
    }
    return out


def main(argv: list[str] | None = None) -> None:
    """This section alone (``samplers.py`` runs it after the mixture targets)."""
    from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]

    args = parse_args("Samplers benchmark: the domain rows alone", argv)
    torch.set_num_threads(1)
    configure_domains(args.quick)
    rows = domain_rows()
    summary = summarize_domains(rows)
    cols = ["domain", "calls", "sampler", "nfe", "calib_error", "ref_error", "validity"]
    print_table(rows, [*cols, "uniqueness", "fcd", "crps", "best_plain", "search_seconds"])
    for k, v in summary.items():
        print(f"{k}: {v}")
    write_json(args.out, rows, summary, quick=args.quick, threads=1)


if __name__ == "__main__":
    main()
