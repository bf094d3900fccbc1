"""EDLM: importance sampling against an analytic joint, exactness at k = 1, energies, NCE."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from polyfold.core.discrete import LinearSchedule, MaskedProcess, sample_ancestral
from polyfold.core.errors import InputError
from polyfold.text.edlm import (
    EnergyTransformer,
    ImportanceResampling,
    ar_energy,
    ar_token_log_probs,
    compare_genppl,
    denoiser_log_probs,
    edlm_sample,
    generative_perplexity,
    nce_energy,
    nce_loss,
    train_nce_energy,
)
from polyfold.text.model import CausalTransformer, DiffusionTransformer, TransformerConfig

# vocabulary: data tokens 0, 1, 2; mask 3; [BOS] 4
DATA_TOKENS, MASK, BOS, VOCAB, LENGTH = 3, 3, 4, 5, 3


class Joint:
    """A known distribution over the 27 sequences of 3 tokens, with its exact factorised
    denoiser (per-position conditionals given the unmasked tokens) and exact AR model."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.seqs = torch.tensor(list(itertools.product(range(DATA_TOKENS), repeat=LENGTH)))
        # strongly correlated: most mass on the three constant sequences
        p = torch.rand(len(self.seqs), generator=g, dtype=torch.float64) * 0.05
        for v in range(DATA_TOKENS):
            p[(self.seqs == v).all(dim=1)] += 1.0
        self.p = p / p.sum()
        self.onehot = torch.nn.functional.one_hot(self.seqs, VOCAB).double()  # (S, L, V)

    def denoiser(self, x_t: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
        consistent = ((x_t[:, None, :] == MASK) | (x_t[:, None, :] == self.seqs[None])).all(-1)
        w = self.p[None] * consistent  # (B, S)
        marg = torch.einsum("bs,slv->blv", w, self.onehot)
        marg = marg / marg.sum(-1, keepdim=True)
        return marg.clamp_min(1e-300).log().float()

    def ar(self, tokens: torch.Tensor, mask: object = None) -> torch.Tensor:
        """``tokens (B, 1 + L)`` with [BOS] first: logits[:, i] = log p(x_{i+1} | x_{<=i})."""
        out = torch.zeros(tokens.shape[0], tokens.shape[1], VOCAB, dtype=torch.float64)
        for i in range(LENGTH):
            prefix = tokens[:, 1 : i + 1]
            match = (self.seqs[None, :, :i] == prefix[:, None, :]).all(-1)  # (B, S)
            nxt = torch.einsum("bs,sv->bv", self.p[None] * match, self.onehot[:, i])
            out[:, i] = (nxt / nxt.sum(-1, keepdim=True)).clamp_min(1e-300).log()
        return out

    def index(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens * torch.tensor([DATA_TOKENS**2, DATA_TOKENS, 1])).sum(-1)

    def histogram(self, tokens: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(self.index(tokens), minlength=len(self.seqs)).double()
        return counts / counts.sum()

    def product_of_marginals(self) -> torch.Tensor:
        marg = torch.einsum("s,slv->lv", self.p, self.onehot)
        return torch.stack([marg[range(LENGTH), s].prod() for s in self.seqs])


def tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return 0.5 * float((a - b).abs().sum())


@pytest.fixture
def joint() -> Joint:
    return Joint()


@pytest.fixture
def process() -> MaskedProcess:
    return MaskedProcess(LinearSchedule(), MASK)


def all_masked(n: int) -> torch.Tensor:
    return torch.full((n, LENGTH), MASK, dtype=torch.long)


def test_k1_is_exactly_mdlm_ancestral(joint: Joint, process: MaskedProcess) -> None:
    for steps in (1, 3, 8):
        ref = sample_ancestral(
            joint.denoiser,
            process,
            all_masked(64),
            steps=steps,
            generator=torch.Generator().manual_seed(5),
        )
        out = edlm_sample(
            joint.denoiser,
            ar_energy(joint.ar, bos_id=BOS),
            process,
            all_masked(64),
            steps=steps,
            k_candidates=1,
            window=(0.0, 1.0),
            generator=torch.Generator().manual_seed(5),
        )
        assert torch.equal(out.tokens, ref.tokens)
        assert out.nfe == ref.nfe
        assert out.energy_calls == 0


def test_k1_matches_ancestral_with_a_network_and_padding(process: MaskedProcess) -> None:
    model = DiffusionTransformer(
        TransformerConfig(vocab_size=VOCAB, d_model=16, n_heads=2, n_layers=1, max_length=8)
    )
    torch.nn.init.normal_(model.out.weight, std=0.5)
    x = torch.full((4, 8), MASK, dtype=torch.long)
    x[:, :2] = 1
    fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed[:, :2] = True
    mask = torch.ones_like(fixed)
    mask[:, -1] = False
    fixed[:, -1] = True
    with torch.no_grad():
        ref = sample_ancestral(
            model,
            process,
            x,
            steps=5,
            fixed=fixed,
            cond=mask,
            generator=torch.Generator().manual_seed(1),
        )
        out = edlm_sample(
            model,
            lambda *a: torch.zeros(4),
            process,
            x,
            steps=5,
            k_candidates=1,
            fixed=fixed,
            mask=mask,
            generator=torch.Generator().manual_seed(1),
        )
    assert torch.equal(out.tokens, ref.tokens)
    tokens, nfe = out  # unpacks like (tokens, nfe)
    assert nfe == ref.nfe
    assert torch.equal(tokens[:, :2], x[:, :2])


def test_zero_energy_keeps_the_mdlm_distribution(joint: Joint, process: MaskedProcess) -> None:
    # one step from all-masked: MDLM samples the product of the marginals; with a constant
    # energy the resampled candidate has the denoiser's law, so EDLM does too
    out = edlm_sample(
        joint.denoiser,
        lambda x0, *a: torch.zeros(x0.shape[0]),
        process,
        all_masked(20000),
        steps=1,
        k_candidates=4,
        window=(0.0, 1.0),
        generator=torch.Generator().manual_seed(0),
    )
    assert out.is_steps == 1
    assert out.energy_calls == 1
    assert tv(joint.histogram(out.tokens), joint.product_of_marginals()) < 0.02


def test_ar_energy_moves_samples_toward_the_truth(joint: Joint, process: MaskedProcess) -> None:
    energy = ar_energy(joint.ar, bos_id=BOS)
    tvs = {}
    for k in (1, 4, 16):
        out = edlm_sample(
            joint.denoiser,
            energy,
            process,
            all_masked(20000),
            steps=1,
            k_candidates=k,
            window=(0.0, 1.0),
            generator=torch.Generator().manual_seed(1),
        )
        tvs[k] = tv(joint.histogram(out.tokens), joint.p)
    base = tv(joint.product_of_marginals(), joint.p)
    assert abs(tvs[1] - base) < 0.02  # k = 1 is plain MDLM
    assert tvs[4] < 0.75 * base
    assert tvs[16] < 0.5 * tvs[4]
    assert tvs[16] < 0.3 * base


def test_window_outside_the_grid_is_plain_mdlm(joint: Joint, process: MaskedProcess) -> None:
    kwargs = {"steps": 4, "generator": torch.Generator().manual_seed(3)}
    ref = sample_ancestral(joint.denoiser, process, all_masked(32), **kwargs)
    out = edlm_sample(
        joint.denoiser,
        ar_energy(joint.ar, bos_id=BOS),
        process,
        all_masked(32),
        k_candidates=8,
        window=(0.1, 0.2),
        **{**kwargs, "generator": torch.Generator().manual_seed(3)},
    )  # grid 1, .75, .5, .25: no step starts inside [0.1, 0.2]
    assert out.is_steps == 0
    assert torch.equal(out.tokens, ref.tokens)


def test_edlm_is_core_ancestral_with_its_proposal(joint: Joint, process: MaskedProcess) -> None:
    energy = ar_energy(joint.ar, bos_id=BOS)
    kw = {"steps": 5, "window": (0.5, 1.0)}
    out = edlm_sample(
        joint.denoiser,
        energy,
        process,
        all_masked(16),
        k_candidates=3,
        generator=torch.Generator().manual_seed(8),
        **kw,
    )
    proposal = ImportanceResampling(process, energy, k=3, window=kw["window"])
    seen: list[tuple[int, float]] = []
    ref = sample_ancestral(
        joint.denoiser,
        process,
        all_masked(16),
        steps=5,
        proposal=proposal,
        generator=torch.Generator().manual_seed(8),
        callback=lambda step, t, x, x0: seen.append((step, t)),
    )
    assert torch.equal(out.tokens, ref.tokens)
    assert out.denoiser_calls == ref.nfe
    assert out.energy_calls == proposal.counter.count == out.is_steps == 3  # t = 1, .8, .6
    assert [s for s, _ in seen] == list(range(5))


def test_ar_energy_of_an_exact_conditional_is_constant(
    joint: Joint, process: MaskedProcess
) -> None:
    # one masked position: the factorised denoiser is the exact conditional, so
    # E = -log p(x0) + log p(x0 | x_t) = -log P(consistent with x_t) for every candidate
    x_t = torch.tensor([[0, MASK, 0]]).repeat(3, 1)
    x0 = torch.tensor([[0, 0, 0], [0, 1, 0], [0, 2, 0]])
    logits = joint.denoiser(x_t, torch.ones(3))
    log_q = denoiser_log_probs(process, logits, x_t, x0)
    e = ar_energy(joint.ar, bos_id=BOS)(x0, x_t, torch.ones(3), log_q, None)
    consistent = joint.p[(joint.seqs[:, 0] == 0) & (joint.seqs[:, 2] == 0)].sum()
    torch.testing.assert_close(
        e, torch.full((3,), -math.log(float(consistent)), dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_ar_log_probs_with_and_without_bos(joint: Joint) -> None:
    seq = torch.tensor([[1, 1, 2]])
    logp, scored = ar_token_log_probs(joint.ar, seq, bos_id=BOS)
    assert bool(scored.all())
    assert float(logp.sum()) == pytest.approx(math.log(float(joint.p[joint.index(seq)])), abs=1e-9)
    # without [BOS] the first position is not scored
    model = CausalTransformer(
        TransformerConfig(vocab_size=VOCAB, d_model=16, n_heads=2, n_layers=1, max_length=8)
    )
    with torch.no_grad():
        logp2, scored2 = ar_token_log_probs(model, seq)
    assert scored2.tolist() == [[False, True, True]]
    assert float(logp2[0, 0]) == 0.0
    with torch.no_grad():
        assert float(logp2.sum()) == pytest.approx(float(model.sequence_log_prob(seq)), abs=1e-5)
    ppl = generative_perplexity(joint.ar, seq, bos_id=BOS)
    assert ppl == pytest.approx(math.exp(-float(logp.sum()) / 3), rel=1e-9)


def test_bad_arguments_raise(joint: Joint, process: MaskedProcess) -> None:
    energy = ar_energy(joint.ar, bos_id=BOS)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(InputError, match="k_candidates"):
        edlm_sample(
            joint.denoiser, energy, process, all_masked(2), steps=2, k_candidates=0, generator=g
        )
    with pytest.raises(InputError, match="window"):
        edlm_sample(
            joint.denoiser,
            energy,
            process,
            all_masked(2),
            steps=2,
            k_candidates=2,
            window=(0.7, 0.2),
            generator=g,
        )
    with pytest.raises(InputError, match="energy: expected a tensor of shape"):
        edlm_sample(
            joint.denoiser,
            lambda *a: torch.zeros(1),
            process,
            all_masked(2),
            steps=1,
            k_candidates=2,
            window=(0.0, 1.0),
            generator=g,
        )
    with pytest.raises(InputError, match="ar_model"):
        ar_energy("not a model")  # type: ignore[arg-type]


def test_energy_transformer_starts_at_zero_and_copies_the_denoiser() -> None:
    cfg = {"d_model": 16, "n_heads": 2, "n_layers": 1, "max_length": 8}
    denoiser = DiffusionTransformer(TransformerConfig(vocab_size=VOCAB, **cfg))
    energy = EnergyTransformer(VOCAB, MASK, **cfg).init_from_denoiser(denoiser)
    x0 = torch.tensor([[0, 1, 2, 0]])
    x_t = torch.tensor([[0, MASK, 2, MASK]])
    assert float(energy(x0, x_t, torch.tensor([0.5])).detach()) == 0.0
    torch.testing.assert_close(energy.backbone.embed.weight[VOCAB:], denoiser.embed.weight)
    with pytest.raises(InputError, match="denoiser: parameter"):
        EnergyTransformer(VOCAB, MASK, d_model=32, n_heads=2, n_layers=1).init_from_denoiser(
            denoiser
        )


def test_nce_training_learns_the_residual(joint: Joint, process: MaskedProcess, tmp_path) -> None:
    """NCE on samples of the joint: the loss falls below chance and the learned energy, used
    for importance sampling, brings one-step samples closer to the joint than MDLM."""
    g = torch.Generator().manual_seed(0)
    data = joint.seqs[torch.multinomial(joint.p, 2048, replacement=True, generator=g)]
    energy = EnergyTransformer(VOCAB, MASK, d_model=32, n_heads=2, n_layers=1, max_length=4)

    def chance_loss() -> float:
        with torch.no_grad():
            return float(
                nce_loss(
                    energy,
                    joint.denoiser,
                    process,
                    data[:512],
                    window=(0.5, 1.0),
                    generator=torch.Generator().manual_seed(9),
                )
            )

    assert chance_loss() == pytest.approx(2 * math.log(2), abs=1e-6)  # E = 0 at init

    class Frozen(torch.nn.Module):  # the trainer wants an nn.Module denoiser
        def __init__(self) -> None:
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x_t, t, cond=None):
            return joint.denoiser(x_t, t, cond)

    result = train_nce_energy(
        energy,
        Frozen(),
        process,
        data,
        out_dir=tmp_path / "nce",
        max_steps=150,
        batch_size=64,
        lr=3e-3,
        window=(0.5, 1.0),
    )
    assert result.checkpoint is not None
    assert result.checkpoint.exists()
    assert chance_loss() < 1.25
    out = edlm_sample(
        joint.denoiser,
        nce_energy(energy),
        process,
        all_masked(4000),
        steps=1,
        k_candidates=8,
        window=(0.0, 1.0),
        generator=torch.Generator().manual_seed(2),
    )
    assert tv(joint.histogram(out.tokens), joint.p) < 0.6 * tv(
        joint.product_of_marginals(), joint.p
    )


def test_compare_genppl_rows(joint: Joint, process: MaskedProcess) -> None:
    rows = compare_genppl(
        joint.denoiser,
        joint.ar,
        process,
        length=LENGTH,
        n=512,
        steps=(1,),
        k_candidates=8,
        window=(0.0, 1.0),
        bos_id=BOS,
    )
    (row,) = rows
    assert row["steps"] == 1.0
    assert row["edlm_nfe"] == 2.0
    assert row["mdlm_nfe"] == 1.0
    # the energy is the scoring model: EDLM must lower its generative perplexity
    assert row["ratio"] < 0.9
    entropy = -float((joint.p * joint.p.log()).sum()) / LENGTH
    assert row["edlm_genppl"] > math.exp(entropy) * 0.8
