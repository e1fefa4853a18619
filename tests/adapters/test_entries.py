from __future__ import annotations

import json

import pytest

from adapters.entries import Entry, entries_to_wire, parse_entries
from adapters.errors import RequestError

IMMICH_OCR = {
    "ocr": {
        "detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5, "maxResolution": 736}},
        "recognition": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.8}},
    }
}


def test_entries_become_records():
    assert parse_entries(json.dumps(IMMICH_OCR)) == [
        Entry("ocr", "detection", "PP-OCRv5_mobile", {"minScore": 0.5, "maxResolution": 736}),
        Entry("ocr", "recognition", "PP-OCRv5_mobile", {"minScore": 0.8}),
    ]


def test_missing_options_are_empty():
    [entry] = parse_entries('{"clip": {"visual": {"modelName": "ViT-B-32__openai"}}}')
    assert entry.options == {}


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "not json",
        "[]",
        "{}",
        '{"clip": "visual"}',
        '{"clip": {}}',
        '{"clip": {"visual": "ViT-B-32__openai"}}',
        '{"clip": {"visual": {"options": {}}}}',
        '{"clip": {"visual": {"modelName": 7}}}',
        '{"clip": {"visual": {"modelName": "m", "options": [1]}}}',
    ],
)
def test_malformed_entries_are_the_reference_422(raw):
    with pytest.raises(RequestError) as caught:
        parse_entries(raw)
    assert (caught.value.status, caught.value.detail) == (422, "Invalid request format.")


def test_subset_round_trips_through_the_wire_form():
    entries = parse_entries(json.dumps({**IMMICH_OCR, "clip": {"textual": {"modelName": "x", "options": {"language": "zh-CN"}}}}))
    ocr_only = [e for e in entries if e.task == "ocr"]
    assert json.loads(entries_to_wire(ocr_only)) == IMMICH_OCR
    assert parse_entries(entries_to_wire(entries)) == entries
