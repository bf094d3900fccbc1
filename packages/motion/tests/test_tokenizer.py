import torch

from polyfold.motion.quantizers import EMAQuantizer, ResidualQuantizer, codebook_stats
from polyfold.motion.tokenizer import MotionTokenizer, tokenizer_loss


def test_codebook_stats_closed_form():
    usage, perplexity = codebook_stats(torch.tensor([0, 1, 2, 3]), 8)
    assert float(usage) == 0.5
    torch.testing.assert_close(perplexity, torch.tensor(4.0))
    usage, perplexity = codebook_stats(torch.zeros(10, dtype=torch.long), 8)
    torch.testing.assert_close(perplexity, torch.tensor(1.0))


def test_dead_codes_are_reset_to_batch_vectors():
    torch.manual_seed(0)
    q = EMAQuantizer(16, 2, decay=0.5, reset_threshold=0.5)
    far = torch.randn(256, 2) * 0.01 + 100.0  # first batch initialises on these
    q(far)
    near = torch.randn(256, 2)  # a new region: every old code dies and is reset here
    for _ in range(6):
        out = q(near)
    assert q.resets > 0
    assert float(out.usage) > 0.5
    assert q.codebook.abs().max() < 10.0
    # without resets the codebook would stay stuck far away for the new data
    stuck = EMAQuantizer(16, 2, decay=0.5, reset_threshold=0.0)
    stuck(far)
    out = stuck(near)
    assert float(out.usage) <= 1 / 16 + 1e-6


def test_residual_quantizer_reduces_error():
    torch.manual_seed(0)
    z = torch.randn(512, 4)
    rvq = ResidualQuantizer(3, 32, 4)
    for _ in range(20):
        rvq(z)
    rvq.eval()
    out = rvq(z)
    assert out.codes.shape == (512, 3)
    errs = [float((rvq.decode_codes(out.codes[:, :k]) - z).pow(2).mean()) for k in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]
    torch.testing.assert_close(rvq.decode_codes(out.codes), out.quantized)


def test_tokenizer_shapes_and_gradients():
    torch.manual_seed(0)
    model = MotionTokenizer(feature_dim=10, width=16, code_dim=8, num_codes=16,
                            num_quantizers=2, downsample=2, blocks=1)  # fmt: skip
    x = torch.randn(3, 16, 10)
    loss, parts = tokenizer_loss(model, x)
    loss.backward()
    assert model.encoder[0].weight.grad is not None
    assert set(parts) == {"recon", "commit", "usage", "perplexity"}
    codes = model.encode(x)
    assert codes.shape == (3, 4, 2)
    assert model.decode(codes).shape == (3, 16, 10)
    assert model.decode(codes[..., :1]).shape == (3, 16, 10)
    import pytest

    from polyfold.core.errors import InputError

    with pytest.raises(InputError, match="multiple of 4"):
        model.encode(torch.randn(1, 10, 10))
