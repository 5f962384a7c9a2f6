"""GET /openapi.json of the real binary (no key) is a valid OpenAPI 3.1 document for the
standard validator (openapi-spec-validator), and the real replies of the main reads
validate against their documented schemas (openapi-schema-validator's OAS31Validator)."""

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


def _call(server, method, path, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert 200 <= resp.status < 300, (path, resp.status)
        return json.loads(resp.read())


def _reply_validator(doc, method, path):
    """The standard OpenAPI 3.1 schema validator for an operation's 2xx JSON reply; the
    document's components ride along so that its $refs resolve."""
    from openapi_schema_validator import OAS31Validator

    responses = doc["paths"][path][method]["responses"]
    ok = next(v for k, v in responses.items() if k.startswith("2"))
    schema = dict(ok["content"]["application/json"]["schema"])
    assert schema != {"$ref": "#/components/schemas/Object"}, (method, path)
    schema["components"] = doc["components"]
    return OAS31Validator(schema)


def test_the_replies_of_the_main_reads_validate_against_the_document(server):
    with urllib.request.urlopen(server.url + "/openapi.json", timeout=5) as resp:
        doc = json.loads(resp.read())
    # Our own events (the session's server is shared): priced, unpriced, two versions.
    events = [
        {"externalRequestId": "oa-%d" % i, "provider": "openai", "model": model,
         "endpointTag": "openapi.check", "promptVersion": version, "tenantId": "oa-tenant",
         "inputTokens": 1000, "cachedTokens": 400, "outputTokens": 200, "status": "success",
         "latencyMs": 300}
        for i, (model, version) in enumerate(
            [("gpt-4o-mini", "v1"), ("gpt-4o-mini", "v2"), ("house-model-unpriced", "v2")])
    ]
    _call(server, "POST", "/v1/ingest/batch", server.ingest_key, events)
    reads = [
        ("get", "/v1/events", "/v1/events?limit=5", None),
        ("get", "/v1/summary", "/v1/summary", None),
        ("get", "/v1/top/{kind}", "/v1/top/endpoints", None),
        ("get", "/v1/timeseries", "/v1/timeseries?since=24h&by=model", None),
        ("get", "/v1/prompt-versions", "/v1/prompt-versions", None),
        ("get", "/v1/concentration", "/v1/concentration", None),
        ("get", "/v1/quality", "/v1/quality", None),
        ("get", "/v1/budgets", "/v1/budgets", None),
        ("get", "/v1/gate", "/v1/gate?endpointTag=openapi.check&candidate=v2", None),
        ("post", "/v1/query", "/v1/query",
         {"groupBy": ["model"], "measures": ["requests", "costUsd", "costPerRequest"]}),
    ]
    for method, template, url, body in reads:
        reply = _call(server, method.upper(), url, server.read_key, body)
        validator = _reply_validator(doc, method, template)
        errors = [e.message for e in validator.iter_errors(reply)]
        assert not errors, (url, errors)
        # The check can fail: a reply without a required field is refused, and so is a
        # field the document does not name where the schema is closed.
        name = validator.schema["$ref"].rsplit("/", 1)[1]
        component = doc["components"]["schemas"][name]
        missing = {k: v for k, v in reply.items() if k != component["required"][0]}
        assert list(validator.iter_errors(missing)), url
        if component.get("additionalProperties") is False:
            assert list(validator.iter_errors(dict(reply, undocumented=1))), url
