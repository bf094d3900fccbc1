"""Compare polyfold.motion's MiniLM forward with transformers' BertModel on the same weights.

Run: ``python packages/motion/dev/check_minilm_transformers.py`` (needs transformers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import BertModel

from polyfold.motion.text_encoder import MiniLMEncoder, default_model_dir

CAPTIONS = ["a person walks forward", "someone does a cartwheel then runs", "a man kicks"]


def main() -> None:
    ours = MiniLMEncoder()
    ref = BertModel.from_pretrained(str(default_model_dir()), local_files_only=True).eval()
    ids, mask = ours.tokenize(CAPTIONS)
    with torch.no_grad():
        h = ref(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    m = mask[..., None].float()
    pooled = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    tokens, _ = ours.encode_tokens(CAPTIONS)
    print("max |token diff|:", float((tokens - h)[mask].abs().max()))
    print("max |sentence diff|:", float((ours.encode(CAPTIONS) - pooled).abs().max()))


if __name__ == "__main__":
    main()
