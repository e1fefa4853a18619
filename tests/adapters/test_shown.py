"""Client values in logs and details: escaped and bounded; URLs without their credentials."""

from __future__ import annotations

from adapters import shown


def test_text_escapes_control_characters_and_keeps_chinese():
    assert shown.text("海边的日落") == "海边的日落"
    assert shown.text("a\nb\r\x1b[31m") == "a\\nb\\r\\x1b[31m"


def test_text_is_cut_and_says_how_long_it_was():
    cut = shown.text("x" * 100_000)
    assert cut.startswith("x" * 80) and cut.endswith("… (100000 characters)") and len(cut) < 120


def test_values_are_bounded_reprs():
    assert shown.value(0.5) == "0.5"
    assert shown.value("a\nb") == "'a\\nb'"
    long = shown.value(list(range(100_000)))
    assert len(long) < 60 and long.endswith("...]")
    assert len(shown.value({"k": "v" * 10_000})) < 120


def test_urls_lose_their_credentials_and_keep_the_rest():
    assert shown.url("http://immich:s3cret@ml.lan:3003/base") == "http://***@ml.lan:3003/base"
    assert shown.url("https://token@ml.lan") == "https://***@ml.lan"
    assert shown.url("http://ml.lan:3003") == "http://ml.lan:3003"
