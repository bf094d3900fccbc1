"""polyfold.text: masked diffusion language models, first-hitting sampling, EDLM and S^3.

Submodules: :mod:`~polyfold.text.tokenizer`, :mod:`~polyfold.text.data`,
:mod:`~polyfold.text.model`, :mod:`~polyfold.text.training`, :mod:`~polyfold.text.checkpoint`,
:mod:`~polyfold.text.generate`, :mod:`~polyfold.text.metrics`, :mod:`~polyfold.text.edlm`,
:mod:`~polyfold.text.s3`.
"""

from polyfold.text._version import __version__
from polyfold.text.checkpoint import load_checkpoint, save_model
from polyfold.text.generate import SAMPLERS, Generation, generate
from polyfold.text.model import CausalTransformer, DiffusionTransformer, TransformerConfig
from polyfold.text.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer

__all__ = [
    "SAMPLERS",
    "BPETokenizer",
    "CausalTransformer",
    "CharTokenizer",
    "DiffusionTransformer",
    "Generation",
    "TransformerConfig",
    "__version__",
    "generate",
    "load_checkpoint",
    "load_tokenizer",
    "save_model",
]
