import numpy as np
import pytest

from polyfold.motion.dataset import DatasetConfig, build_dataset
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.evaluator import embed_features, evaluate_set, load_evaluator, train_evaluator
from polyfold.motion.tokenizer import TokenizerConfig
from polyfold.motion.train_tokenizer import load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tiny():
    cfg = DatasetConfig(length=16, train_windows_per_clip=4, test_windows_per_clip=2,
                        train_then=0, test_then=0)  # fmt: skip
    return build_dataset(cfg, load_clips(("humanoid3d_walk", "humanoid3d_kick")))


def test_tokenizer_training_round_trip(tiny, tmp_path):
    cfg = TokenizerConfig(width=16, code_dim=8, num_codes=16, num_quantizers=2, blocks=1)
    model, metrics = train_tokenizer(tiny, tmp_path, cfg, steps=3, batch_size=4, quiet=True)
    assert set(metrics) >= {"mpjpe_mm", "mpjpe_mm_first_codebook", "usage", "perplexity"}
    assert metrics["mpjpe_mm"] > 0
    back, mean, _std, card = load_tokenizer(tmp_path / "tokenizer")
    np.testing.assert_allclose(mean, tiny.stats()[0], rtol=1e-5, atol=1e-6)
    assert card["metrics"]["mpjpe_mm"] == pytest.approx(metrics["mpjpe_mm"])
    assert back.config == model.config


def test_evaluator_training_and_metrics(tiny, tmp_path):
    rng = np.random.default_rng(0)
    text = rng.normal(size=(len(tiny), 8)).astype(np.float32)
    text /= np.linalg.norm(text, axis=-1, keepdims=True)
    train_evaluator(tiny, text, tmp_path, steps=3, batch_size=4, quiet=True)
    model, mean, std, _ = load_evaluator(tmp_path / "evaluator")
    emb, logits = embed_features(model, tiny.features, mean, std)
    assert emb.shape == (len(tiny), 8)
    assert logits.shape == (len(tiny), 16)
    res = evaluate_set(emb, logits, text, tiny.labels, emb, reps=5)
    assert res["fid"][0] == pytest.approx(0.0, abs=1e-6)  # a set against itself
    lo, hi = res["accuracy"][1:]
    assert 0.0 <= lo <= hi <= 1.0
