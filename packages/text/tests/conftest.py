"""polyfold-text's tests: one torch thread, a fixed seed, tiny models and a tiny corpus."""

from pathlib import Path

import pytest
import torch

from polyfold.text.checkpoint import save_model
from polyfold.text.model import CausalTransformer, DiffusionTransformer, TransformerConfig
from polyfold.text.tokenizer import CharTokenizer

TINY_TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n"
    '{"name": "x", "age": 12}\n0123456789_\n'
)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def char_tokenizer() -> CharTokenizer:
    return CharTokenizer.train([TINY_TEXT])


def tiny_config(vocab_size: int, max_length: int = 32) -> TransformerConfig:
    return TransformerConfig(
        vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=2, max_length=max_length
    )


@pytest.fixture
def tiny_mdlm(char_tokenizer: CharTokenizer) -> DiffusionTransformer:
    torch.manual_seed(1)
    model = DiffusionTransformer(tiny_config(char_tokenizer.vocab_size))
    for p in model.parameters():  # leave adaLN-Zero: non-trivial outputs everywhere
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


@pytest.fixture
def tiny_ar(char_tokenizer: CharTokenizer) -> CausalTransformer:
    torch.manual_seed(2)
    return CausalTransformer(tiny_config(char_tokenizer.vocab_size)).eval()


@pytest.fixture
def tiny_model_files(
    tmp_path: Path,
    char_tokenizer: CharTokenizer,
    tiny_mdlm: DiffusionTransformer,
    tiny_ar: CausalTransformer,
) -> dict[str, Path]:
    """The tiny MDLM and AR models saved as model files (safetensors + JSON + tokenizer)."""
    folder = tmp_path / "models"
    mdlm = save_model(tiny_mdlm, char_tokenizer, folder, "tiny-mdlm", data_card=None, steps=0)
    ar = save_model(tiny_ar, char_tokenizer, folder, "tiny-ar", data_card=None, steps=0)
    return {"mdlm": mdlm, "ar": ar}
