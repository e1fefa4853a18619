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


def _nested(depth: int) -> str:
    return '{"clip": {"visual": {"modelName": "m", "options": {"x": ' + "[" * depth + "]" * depth + "}}}}"


@pytest.mark.parametrize("depth", [5, 900, 5000, 100_000])
def test_entries_nested_too_deep_are_the_reference_422(depth):
    # 5000 deep made json raise RecursionError (a 500); 900 parses but nests beyond any entry.
    with pytest.raises(RequestError) as caught:
        parse_entries(_nested(depth))
    assert (caught.value.status, caught.value.detail) == (422, "Invalid request format.")


def test_options_as_immich_sends_them_are_within_the_depth_limit():
    [entry] = parse_entries('{"ocr": {"detection": {"modelName": "m", "options": {"minScore": 0.5, "x": [[1]]}}}}')
    assert entry.options == {"minScore": 0.5, "x": [[1]]}


def test_a_bad_entry_is_logged_escaped_and_bounded(caplog):
    task = "clip\nFORGED LOG LINE " + "x" * 5000
    with pytest.raises(RequestError):
        parse_entries(json.dumps({task: {"visual": "not an object"}}))
    [record] = [r for r in caplog.records if "422" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message and "\\n" in message and len(message) < 400


def test_describe_escapes_and_bounds_the_clients_strings():
    described = Entry("clip", "visual\r\n", "名" * 1000).describe()
    assert "\r" not in described and "\n" not in described and len(described) < 200
    assert Entry("clip", "visual", "cn-clip/ViT-B-16__openai").describe() == "clip/visual model 'cn-clip/ViT-B-16__openai'"
