import json

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.motion.text_encoder import load_text_encoder


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder()


def test_sentence_features_are_mean_pooled_and_normalised(encoder):
    texts = ["a person walks forward", "someone does a cartwheel then runs away quickly"]
    z = encoder.encode(texts)
    assert z.shape == (2, 384)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2))
    tokens, mask = encoder.encode_tokens(texts)
    assert tokens.shape[:2] == mask.shape
    assert mask.sum(1).tolist() == [6, 11]  # [CLS] + word pieces + [SEP]
    m = mask[..., None].float()
    pooled = torch.nn.functional.normalize((tokens * m).sum(1) / m.sum(1), dim=-1)
    torch.testing.assert_close(z, pooled)
    # padding in a batch changes nothing
    torch.testing.assert_close(encoder.encode(texts[:1]), z[:1], atol=1e-5, rtol=0)


def test_similar_captions_are_closer(encoder):
    z = encoder.encode(
        ["a person walks forward", "someone strolls ahead", "a gymnast does a backflip"]
    )
    sim = z @ z.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[0, 1] > sim[1, 2] + 0.2


def test_bad_captions_and_dirs(encoder, tmp_path):
    with pytest.raises(InputError, match="caption 1"):
        encoder.encode(["a person walks", "  "])
    with pytest.raises(InputError, match="non-empty list"):
        encoder.encode([])
    with pytest.raises(InputError, match=r"config\.json"):
        load_text_encoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(InputError, match="expected bert or clip"):
        load_text_encoder(tmp_path)
