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
]


def test_tokens_equal_cn_clip_tokenize():
    tokenizer = Tokenizer(VOCAB)
    expected = cn_clip.tokenize(TEXTS).numpy()
    got = np.stack([tokenizer(text) for text in TEXTS])
    assert got.dtype == np.int64 and got.shape == (len(TEXTS), 52)
    for text, want, have in zip(TEXTS, expected, got):
        assert have.tolist() == want.tolist(), text


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
