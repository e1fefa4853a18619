"""The entry service's CLIP pre-processing equals cn-clip's own, exactly."""

from __future__ import annotations

from pathlib import Path

import cn_clip.clip as cn_clip
import numpy as np
import pytest
from PIL import Image

from runners.clip_steps import Tokenizer, image_input

VOCAB = Path(cn_clip.__file__).parent / "vocab.txt"
TEXTS = [
    "海边的日落", "sunset by the sea", "海边的 sunset，很美！", "", "   ", "猫" * 200,
    "Café naïve façade RÉSUMÉ", "ＡＢＣ全角１２３", "I'm 3.14 e-mail: a@b.com (ok?)", "\u200b零宽\u00a0空格",
    "supercalifragilisticexpialidocious" * 8, "日本語のテキスト", "한국어 텍스트", "😀😃😄 emoji only",
    "α β γ Ω", "the quick brown fox jumps over the lazy dog " * 10, "tab\there\nnewline", "\x00control\x07",
    "2026年11月25日 星期三", "#标签 @某人 https://example.com/path?q=1",
    "你\ue000好", "ab\ue000cd", "a\U0002b820b", "abc\u07fddef", "\u2028line\u2029sep\x1c",
    "x" * 199, "x" * 200, "x" * 201, "最" * 49, "最" * 50, "最" * 51, "最" * 52,
]


def test_tokens_equal_cn_clip_tokenize():
    tokenizer = Tokenizer(VOCAB)
    expected = cn_clip.tokenize(TEXTS).numpy()
    got = np.stack([tokenizer(text) for text in TEXTS])
    assert got.dtype == np.int64 and got.shape == (len(TEXTS), 52)
    for text, want, have in zip(TEXTS, expected, got):
        assert have.tolist() == want.tolist(), text


def test_every_code_point_is_classed_as_cn_clip_classes_it():
    # Each character between ASCII letters and between ideographs: where it splits, joins,
    # vanishes or becomes [UNK] shows in the ids.
    tokenizer = Tokenizer(VOCAB)
    code_points = [cp for cp in range(0x30000) if not 0xD800 <= cp <= 0xDFFF] + [0xE0001, 0xF0000, 0x10FFFD]
    for start in range(0, len(code_points), 8192):
        texts = [s for cp in code_points[start : start + 8192] for s in (f"ab{chr(cp)}cd", f"你{chr(cp)}好")]
        expected = cn_clip.tokenize(texts).numpy()
        got = np.stack([tokenizer(text) for text in texts])
        mismatched = np.flatnonzero((expected != got).any(axis=1))
        assert mismatched.size == 0, [hex(ord(texts[i][2 if texts[i][0] == "a" else 1])) for i in mismatched[:10]]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK", "I;16"])
@pytest.mark.parametrize("size", [(1440, 1080), (200, 900), (224, 224), (31, 17)])
def test_image_input_equals_cn_clip_transform(mode, size):
    from cn_clip.clip.utils import image_transform

    source = Image.effect_noise(size, 60).convert("RGB").convert(mode) if mode != "I;16" else \
        Image.effect_noise(size, 60).convert("I;16")
    expected = image_transform(224)(source).numpy()
    got = image_input(source, 224)
    assert got.shape == (3, 224, 224) and got.dtype == np.float32
    assert np.array_equal(got, expected)
