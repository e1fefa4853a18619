"""Chinese-CLIP pre-processing, as plain functions (they run in the entry service).

Both follow cn-clip's reference exactly (cn_clip/clip/utils.py): the image is resized to a
square with bicubic resampling *before* it is made RGB, scaled to [0, 1] and normalised with
CLIP's mean and std; text is BERT WordPiece over cn-clip's vocabulary, lower-cased,
``[CLS] tokens[:50] [SEP]``, zero-padded to 52. The tokenizer is Hugging Face ``tokenizers``
configured as cn-clip's FullTokenizer, so serving needs no cn-clip; tests hold the two equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tokenizers import Tokenizer as WordPieceTokenizer
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from runners.models.clip import CONTEXT_LENGTH, MEAN, STD

_MEAN = np.array(MEAN, np.float32)
_STD = np.array(STD, np.float32)


def image_input(image: Image.Image, size: int) -> np.ndarray:
    """(3, size, size) float32, as cn-clip's image_transform makes it."""
    square = image.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")
    pixels = np.asarray(square, np.float32) / np.float32(255.0)
    return ((pixels - _MEAN) / _STD).transpose(2, 0, 1)


class Tokenizer:
    def __init__(self, vocab: Path, context_length: int = CONTEXT_LENGTH) -> None:
        # cn-clip's WordpieceTokenizer gives up on words over 200 characters (HF's default: 100).
        model = WordPiece.from_file(str(vocab), unk_token="[UNK]", max_input_chars_per_word=200)
        self._tokenizer = WordPieceTokenizer(model)
        self._tokenizer.normalizer = BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
        )
        self._tokenizer.pre_tokenizer = BertPreTokenizer()
        self._cls = self._tokenizer.token_to_id("[CLS]")
        self._sep = self._tokenizer.token_to_id("[SEP]")
        self.context_length = context_length

    def __call__(self, text: str) -> np.ndarray:
        """(context_length,) int64 token ids."""
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids[: self.context_length - 2]
        out = np.zeros(self.context_length, np.int64)
        out[: len(ids) + 2] = [self._cls, *ids, self._sep]
        return out
