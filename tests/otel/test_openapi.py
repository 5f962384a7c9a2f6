"""GET /openapi.json of the real binary (no key) is a valid OpenAPI 3.1 document for the
standard validator (openapi-spec-validator), and the real replies of the main reads
and of the control routes validate against their documented schemas
(openapi-schema-validator's OAS31Validator)."""

from __future__ import annotations

import json
import os
import urllib.request

from openapi_spec_validator import validate

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


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


def _call_raw(server, method, path, key, data, content_type):
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"X-API-Key": key, "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert 200 <= resp.status < 300, (path, resp.status)
        return json.loads(resp.read())


def test_the_replies_of_the_control_routes_validate_against_the_document(fresh_server):
    server = fresh_server
    with urllib.request.urlopen(server.url + "/openapi.json", timeout=5) as resp:
        doc = json.loads(resp.read())
    admin, read = server.admin_key, server.read_key
    events = [
        {"externalRequestId": "ctl-%d" % i, "provider": "openai", "model": model,
         "endpointTag": "support.reply", "tenantId": "acme", "userId": "u-%d" % i,
         "inputTokens": 1000, "outputTokens": 200, "status": "success"}
        for i, model in enumerate(["gpt-4o-mini", "gpt-4o-mini", "house-model-unpriced"])
    ]
    _call(server, "POST", "/v1/ingest/batch", server.ingest_key, events)
    # A budget over its limit, so the alerts and findings have items.
    _call(server, "POST", "/v1/budgets", admin,
          {"name": "tiny", "scope": {}, "period": "month", "limitUsd": 0.0001})
    with open(os.path.join(REPO, "testdata", "reconcile", "openai-usage.json"), "rb") as f:
        bill = f.read()
    calls = [
        ("put", "/v1/plans/definitions/{plan}", "/v1/plans/definitions/pro", admin, {"priceUsd": 50}),
        ("put", "/v1/plans/tenants/{tenant}", "/v1/plans/tenants/acme", admin, {"plan": "pro"}),
        ("get", "/v1/plans", "/v1/plans", read, None),
        ("get", "/v1/plans/history", "/v1/plans/history?tenant=acme", read, None),
        ("get", "/v1/plans/definitions", "/v1/plans/definitions", read, None),
        ("post", "/v1/revenue", "/v1/revenue", admin,
         {"entries": [{"tenantId": "acme", "type": "oneOff", "date": "2026-11-05", "amountUsd": 10}]}),
        ("get", "/v1/revenue", "/v1/revenue?tenantId=acme", read, None),
        ("get", "/v1/margin", "/v1/margin", read, None),
        ("post", "/v1/reconciliation/import", "/v1/reconciliation/import", admin, bill),
        ("get", "/v1/reconciliation", "/v1/reconciliation?from=2026-11-01&to=2026-11-07", read, None),
        ("post", "/v1/rate-caps", "/v1/rate-caps", admin,
         {"endpointTag": "support.reply", "requestsPerMinute": 10, "perTenant": True}),
        ("get", "/v1/rate-caps", "/v1/rate-caps", read, None),
        ("put", "/v1/alert-rules", "/v1/alert-rules", admin,
         {"rules": {"retry_storm": {"mutedUntil": "2099-01-01T00:00:00Z"}}}),
        ("post", "/v1/alerts/evaluate", "/v1/alerts/evaluate", admin, {}),
        ("get", "/v1/alerts", "/v1/alerts", read, None),
        ("get", "/v1/alerts/findings", "/v1/alerts/findings", read, None),
        ("post", "/v1/channels", "/v1/channels", admin,
         {"name": "pager", "type": "pagerduty", "routingKey": "r" * 32}),
        ("get", "/v1/channels", "/v1/channels", read, None),
        ("post", "/v1/mappings", "/v1/mappings", admin,
         {"dimension": "tenantId", "from": "acme-old", "to": "acme", "note": "rename"}),
        ("get", "/v1/mappings", "/v1/mappings", read, None),
        ("post", "/v1/deploys", "/v1/deploys", server.ingest_key, {"note": "all endpoints"}),
        ("get", "/v1/deploys", "/v1/deploys", read, None),
        ("put", "/v1/workspace/settings", "/v1/workspace/settings", admin,
         {"otlpAttributes": {"tenantId": ["app.customer_id"]}}),
        ("post", "/v1/erasure", "/v1/erasure", admin, {"userId": "u-0"}),
        ("get", "/v1/erasure", "/v1/erasure", admin, None),
        ("post", "/v1/prices/reprice", "/v1/prices/reprice", admin, {"unpriced": True}),
        ("get", "/v1/prices/corrections", "/v1/prices/corrections", admin, None),
        ("get", "/v1/retention", "/v1/retention", read, None),
    ]
    for method, template, url, key, body in calls:
        if isinstance(body, bytes):
            reply = _call_raw(server, method.upper(), url, key, body, "application/json")
        else:
            reply = _call(server, method.upper(), url, key, body)
        validator = _reply_validator(doc, method, template)
        errors = [e.message for e in validator.iter_errors(reply)]
        assert not errors, (method, url, reply, errors)
        if url == "/v1/alerts":
            assert reply["alerts"], reply
        # The check can fail: a field the document does not name is refused.
        assert list(validator.iter_errors(dict(reply, undocumented=1))), url
