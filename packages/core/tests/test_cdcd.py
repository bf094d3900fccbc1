"""CDCD: the contrastive diffusion loss against a hand computation, its two diffusion modes and
the negatives."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.discrete import (
    LinearSchedule,
    MaskedProcess,
    cdcd_loss,
    inter_negatives,
    intra_negatives,
)
from polyfold.core.errors import InputError

TABLE = torch.tensor([[2.0, 0.0, 1.0, 9.0], [0.0, 3.0, 0.0, 9.0]])  # mask logit 9: ignored
PROCESS = MaskedProcess(LinearSchedule(), mask_id=3)


class TableModel:
    """Logits from a fixed (L, V) table whatever the input; records the batch sizes it saw."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        self.batches.append(x_t.shape[0])
        return TABLE.expand(x_t.shape[0], -1, -1).clone()


def _logp(row: int, token: int) -> float:
    z = TABLE[row, :3]
    return float(z[token] - torch.logsumexp(z, 0))


@pytest.mark.parametrize("mode", ["step", "sample"])
def test_cdcd_matches_hand_computation_when_all_tokens_are_masked(mode: str) -> None:
    # t = 1 masks every token and the linear schedule's weight is 1: the score of a sequence is
    # its mean log-probability under the table.
    x0 = torch.tensor([[0, 1]])
    neg = torch.tensor([[[2, 2], [1, 0]]])
    model = TableModel()
    out = cdcd_loss(model, PROCESS, x0, neg, generator=torch.Generator().manual_seed(0),
                    mode=mode, weight=0.5, temperature=2.0, t=torch.ones(1))  # fmt: skip
    s = [(_logp(0, a) + _logp(1, b)) / 2 for a, b in ((0, 1), (2, 2), (1, 0))]
    assert out.scores[0].tolist() == pytest.approx(s, abs=1e-6)
    e = [math.exp(v / 2.0) for v in s]
    contrastive = -math.log(e[0] / sum(e))
    assert float(out.contrastive) == pytest.approx(contrastive, abs=1e-6)
    assert float(out.diffusion) == pytest.approx(-s[0], abs=1e-6)
    assert float(out.loss) == pytest.approx(-s[0] + 0.5 * contrastive, abs=1e-6)
    # step-wise diffusion runs the negatives through the model; sample-wise reuses one call
    assert model.batches == ([1, 2] if mode == "step" else [1])


def test_sample_mode_scores_only_the_principal_masked_positions() -> None:
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 3, (64, 2), generator=g)
    neg = inter_negatives(x0, 2)
    out = cdcd_loss(TableModel(), PROCESS, x0, neg, generator=g, mode="sample")
    # the positive column is the per-row MDLM loss: its mean is the diffusion loss
    assert float(-out.scores[:, 0].mean()) == pytest.approx(float(out.diffusion), rel=1e-5)
    # a negative equal to the positive on every position scores the same
    same = cdcd_loss(TableModel(), PROCESS, x0, x0[:, None], generator=torch.Generator()
                     .manual_seed(1), mode="sample")  # fmt: skip
    assert torch.allclose(same.scores[:, 0], same.scores[:, 1])


def test_gradient_raises_the_positive_against_the_negatives() -> None:
    logits = torch.zeros(1, 2, 4, requires_grad=True)
    x0 = torch.tensor([[0, 1]])
    neg = torch.tensor([[[2, 2]]])
    out = cdcd_loss(lambda x, t, c: logits.expand(x.shape[0], -1, -1), PROCESS, x0, neg,
                    generator=torch.Generator(), weight=1.0, t=torch.ones(1))  # fmt: skip
    out.contrastive.backward()
    grad = logits.grad[0]
    assert grad[0, 0] < 0 < grad[0, 2]  # descent raises the data token, lowers the negative's


def test_negatives() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 10, (5, 8), generator=g)
    intra = intra_negatives(x0, 3, vocab_size=11, mask_id=10, fraction=0.25, generator=g)
    assert intra.shape == (5, 3, 8)
    assert ((intra != x0[:, None]).sum(-1) == 2).all()  # ceil(0.25 * 8) positions changed
    assert not (intra == 10).any()
    inter = inter_negatives(x0, 2)
    assert torch.equal(inter[:, 0], x0.roll(1, 0))
    assert torch.equal(inter[1, 1], x0[4])


def test_bad_input() -> None:
    x0 = torch.tensor([[0, 1], [1, 0]])
    g = torch.Generator()
    with pytest.raises(InputError, match="mode"):
        cdcd_loss(TableModel(), PROCESS, x0, x0[:, None], generator=g, mode="pair")
    with pytest.raises(InputError, match="mask token"):
        cdcd_loss(TableModel(), PROCESS, x0, torch.full((2, 1, 2), 3), generator=g)
    with pytest.raises(InputError, match="negatives"):
        cdcd_loss(TableModel(), PROCESS, x0, x0, generator=g)
    with pytest.raises(InputError, match="fewer inter-negatives"):
        inter_negatives(x0, 2)
