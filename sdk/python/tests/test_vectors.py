"""The shared vectors (testdata/usage-vectors.json) through the SDK's mapping functions."""

from __future__ import annotations

import json
import os

import pytest

from burnrate import SHAPES, usage_from_shape

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "testdata", "usage-vectors.json")


def _load():
    with open(VECTORS) as f:
        return json.load(f)


DOC = _load()
CASES = DOC["cases"]
FIELDS = ("inputTokens", "cachedTokens", "cacheWriteTokens", "outputTokens", "reasoningTokens")


def test_format_and_coverage():
    assert DOC["format"] == 1
    assert len(CASES) >= 20
    assert {c["shape"] for c in CASES} == set(SHAPES)
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_expected_is_a_valid_event(case):
    e = case["expected"]
    assert set(e) == set(FIELDS) | {"costUsd"}
    for f in FIELDS:
        assert isinstance(e[f], int) and e[f] >= 0
    assert e["cachedTokens"] + e["cacheWriteTokens"] <= e["inputTokens"]
    assert e["reasoningTokens"] <= e["outputTokens"]
    if e["costUsd"] is not None:
        assert e["costUsd"] >= 0
        assert round(e["costUsd"], 9) == e["costUsd"], "at most 9 decimals"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case):
    got = usage_from_shape(case["shape"], case["usage"]).to_fields()
    want = case["expected"]
    for f in FIELDS:
        assert got[f] == want[f], "%s: %s" % (case["name"], f)
    if want["costUsd"] is None:
        assert got["costUsd"] is None
    else:
        assert got["costUsd"] == pytest.approx(want["costUsd"], abs=1e-12)
