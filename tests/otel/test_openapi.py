"""GET /openapi.json of the real binary (no key) is a valid OpenAPI 3.1 document for the
standard validator (openapi-spec-validator)."""

from __future__ import annotations

import json
import urllib.request

from openapi_spec_validator import validate


def test_the_served_document_validates_as_openapi_3_1(server):
    with urllib.request.urlopen(server.url + "/openapi.json", timeout=5) as resp:
        doc = json.loads(resp.read())
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises OpenAPIValidationError naming the problem


def test_the_validator_rejects_a_broken_document(server):
    # The check above can fail: a parameter in no valid location is an error.
    with urllib.request.urlopen(server.url + "/openapi.json", timeout=5) as resp:
        doc = json.loads(resp.read())
    doc["paths"]["/v1/budgets/{id}"]["get"]["parameters"][0]["in"] = "nowhere"
    try:
        validate(doc)
    except Exception:
        return
    raise AssertionError("a broken document validated")
