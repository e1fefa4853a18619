from __future__ import annotations

import pytest

from adapters.names import clean_name, normalise_name


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("ViT-B-32__openai", "ViT-B-32__openai"),
        ("immich-app/ViT-B-32__openai", "ViT-B-32__openai"),
        ("OFA-Sys/ViT-B-16__openai", "ViT-B-16__openai"),
        ("nllb-clip-base-siglip__v1", "nllb-clip-base-siglip__v1"),
        ("ViT-B-32:openai", "ViT-B-32_openai"),
        ("PP-OCRv5_mobile", "PP-OCRv5_mobile"),
        ("buffalo.l", "buffalol"),  # Immich drops dots
    ],
)
def test_clean_name_matches_immich(name, cleaned):
    assert clean_name(name) == cleaned


def test_normalise_keeps_the_prefix():
    assert normalise_name("cn-clip/ViT-B-16:openai") == "cn-clip/ViT-B-16_openai"
