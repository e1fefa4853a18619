"""Chinese-CLIP pre-processing, as plain functions (they run in the entry service).

Both follow cn-clip's reference exactly (cn_clip/clip/utils.py): the image is resized to a
square with bicubic resampling *before* it is made RGB, scaled to [0, 1] and normalised with
CLIP's mean and std; text is BERT WordPiece over cn-clip's vocabulary, lower-cased,
``[CLS] tokens[:50] [SEP]``, zero-padded to 52. Serving needs no cn-clip (see ``Tokenizer``);
tests hold the two equal, code point by code point.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image
from tokenizers import Tokenizer as WordPieceTokenizer
from tokenizers.models import WordPiece
from tokenizers.pre_tokenizers import WhitespaceSplit

from runners.models.clip import CONTEXT_LENGTH


#: How an image becomes the tower's square: "square" squeezes the whole image into it (cn-clip's
#: transform, and the OFA-Sys checkpoints' processor config); "shortest_edge" scales its shorter
#: side to the square's and cuts the middle out (transformers' ChineseCLIPImageProcessor default).
SQUARE, SHORTEST_EDGE = "square", "shortest_edge"


def image_pixels(image: Image.Image, size: int, resize: str = SQUARE) -> np.ndarray:
    """(size, size, 3) uint8 RGB: the model's image transform up to its ToTensor (the runner
    normalises, ``runners.clip.image_tensor``). ``SQUARE`` resizes before making the image RGB,
    as cn-clip does; ``SHORTEST_EDGE`` after, as transformers' processor does."""
    if resize == SQUARE:
        return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC).convert("RGB"))
    if resize != SHORTEST_EDGE:
        raise ValueError(f"unknown resize {resize!r}")
    rgb = image.convert("RGB")
    width, height = rgb.size
    short, long = sorted((width, height))
    scaled = size, int(size * long / short)  # (short, long), truncated as transformers does
    new = (scaled[0], scaled[1]) if width <= height else (scaled[1], scaled[0])
    resized = rgb.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)))


def image_input(image: Image.Image, size: int, resize: str = SQUARE) -> np.ndarray:
    """(3, size, size) float32, as the model's image transform makes it."""
    from runners.clip import image_tensor

    return image_tensor(image_pixels(image, size, resize)[None])[0]


class Tokenizer:
    """cn-clip's text tokenisation, without cn-clip.

    BERT's basic tokenisation (clean, space out CJK ideographs, lower-case, strip accents,
    split punctuation) is done here with Python's own ``unicodedata``, as cn-clip does, so
    every code point is classed the same way (the Rust ``tokenizers`` normaliser follows
    another Unicode version and drops private-use characters); the WordPiece step is
    ``tokenizers``' WordPiece over cn-clip's vocabulary.
    """

    def __init__(self, vocab: Path, context_length: int = CONTEXT_LENGTH) -> None:
        # cn-clip's WordpieceTokenizer gives up on words over 200 characters (HF's default: 100).
        model = WordPiece.from_file(str(vocab), unk_token="[UNK]", max_input_chars_per_word=200)
        self._wordpiece = WordPieceTokenizer(model)
        self._wordpiece.pre_tokenizer = WhitespaceSplit()
        self._cls = self._wordpiece.token_to_id("[CLS]")
        self._sep = self._wordpiece.token_to_id("[SEP]")
        self.context_length = context_length

    def __call__(self, text: str) -> np.ndarray:
        """(context_length,) int64 token ids."""
        words = basic_tokens(text)
        ids = self._wordpiece.encode(" ".join(words), add_special_tokens=False).ids if words else []
        ids = ids[: self.context_length - 2]
        out = np.zeros(self.context_length, np.int64)
        out[: len(ids) + 2] = [self._cls, *ids, self._sep]
        return out


def basic_tokens(text: str) -> list[str]:
    """BERT's basic tokenisation, lower-casing, as cn-clip configures it."""
    spaced = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or _is_control(char):
            continue
        if _is_cjk(code):
            spaced.append(f" {char} ")
        elif _is_whitespace(char):
            spaced.append(" ")
        else:
            spaced.append(char)
    words: list[str] = []
    for word in "".join(spaced).split():
        decomposed = unicodedata.normalize("NFD", word.lower())
        word = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
        piece = ""
        for char in word:  # every punctuation character stands alone
            if _is_punctuation(char):
                words.extend([piece, char] if piece else [char])
                piece = ""
            else:
                piece += char
        if piece:
            words.append(piece)
    return words


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True  # BERT counts all non-alphanumeric ASCII, "$" and "^" included
    return unicodedata.category(char).startswith("P")


# The CJK Unified Ideographs blocks BERT spaces out (not Hiragana, Katakana or Hangul).
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(code: int) -> bool:
    return any(low <= code <= high for low, high in _CJK)
