"""``/openapi.json`` is a complete OpenAPI 3 schema: every route of the app, its parameters,
its request body and its error responses, each typed."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.routing import APIRoute

from rwq.web.server import WebServer

ROUTES = {
    ("get", "/api/v1/queues"): ([], {401, 403, 422}),
    ("get", "/api/v1/queues/{queue}"): (["queue"], {401, 403, 404, 422}),
    ("get", "/api/v1/queues/{queue}/jobs"): (["queue", "state", "limit"], {401, 403, 404, 422}),
    ("get", "/api/v1/queues/{queue}/throughput"): (["queue", "seconds"], {401, 403, 404, 422}),
    ("post", "/api/v1/queues/{queue}/jobs"): (["queue"], {401, 403, 409, 422}),
    ("post", "/api/v1/queues/{queue}/purge"): (["queue"], {401, 403, 404, 409, 422}),
    ("post", "/api/v1/queues/{queue}/pause"): (["queue"], {401, 403, 404, 409, 422}),
    ("post", "/api/v1/queues/{queue}/resume"): (["queue"], {401, 403, 404, 409, 422}),
    ("get", "/api/v1/jobs/{job_id}"): (["job_id"], {401, 403, 404, 422}),
    ("post", "/api/v1/jobs/{job_id}/cancel"): (["job_id", "queue"], {401, 403, 404, 409, 422}),
    ("get", "/api/v1/dead-letters"): (
        ["queue", "tenant", "error", "offset", "limit"],
        {401, 403, 404, 422},
    ),
    ("post", "/api/v1/dead-letters/requeue"): ([], {400, 401, 403, 404, 409, 422}),
    ("post", "/api/v1/dead-letters/delete"): ([], {400, 401, 403, 404, 409, 422}),
    ("get", "/api/v1/workers"): ([], {401, 403, 422}),
    ("get", "/api/v1/audit"): (
        ["actor", "denied_only", "since", "kind", "routine", "limit"],
        {401, 403, 422},
    ),
    ("get", "/api/v1/plugins"): ([], {401, 403, 422, 503}),
    ("post", "/api/v1/plugins/{name}/enable"): (["name"], {401, 403, 404, 409, 422, 503}),
    ("post", "/api/v1/plugins/{name}/disable"): (["name"], {401, 403, 404, 409, 422, 503}),
    ("post", "/api/v1/plugins/{name}/reload"): (["name"], {401, 403, 404, 409, 422, 503}),
    ("post", "/api/v1/plugins/{name}/grants/revoke"): (["name"], {401, 403, 404, 409, 422, 503}),
    ("get", "/api/v1/approvals"): ([], {401, 403, 422, 503}),
    ("get", "/api/v1/panels"): ([], {401, 403, 422, 503}),
    ("post", "/api/v1/plugins/{name}/input"): (["name"], {401, 403, 404, 409, 422, 503}),
    ("get", "/api/v1/stream"): ([], {401, 403, 422, 503}),
    ("post", "/api/v1/approvals/{name}/approve"): (["name"], {401, 403, 404, 409, 422, 503}),
    ("post", "/api/v1/approvals/{name}/deny"): (["name"], {401, 403, 404, 409, 422, 503}),
    ("post", "/api/v1/session"): ([], {401, 403, 422}),
    ("get", "/api/v1/session"): ([], {401, 403, 422}),
    ("delete", "/api/v1/session"): ([], {401, 403, 422}),
}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.rsplit("/", 1)[-1]
    resolved: dict[str, Any] = schema["components"]["schemas"][name]
    return resolved


def test_the_schema_lists_every_route_with_its_parameters_and_errors(web: WebServer) -> None:
    response = httpx.get(f"{web.url}/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    found = {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    assert set(found) == set(ROUTES)
    for key, (parameters, statuses) in ROUTES.items():
        operation = found[key]
        assert [p["name"] for p in operation.get("parameters", [])] == parameters, key
        assert operation["summary"] and operation["description"], key
        codes = {int(code) for code in operation["responses"] if code != "default"}
        assert statuses <= codes, key
        for status in statuses:
            body = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            error = _resolve(schema, body)
            assert set(error["properties"]) == {"error"}, (key, status)
        ok = min(codes)
        if key == ("get", "/api/v1/stream"):
            assert "text/event-stream" in operation["responses"]["200"]["content"]
        elif ok != 204:
            content = operation["responses"][str(ok)]["content"]["application/json"]
            assert "$ref" in content["schema"], key  # a typed model, not "any"
    bodies = [key for key in ROUTES if key[0] == "post" and "requestBody" in found[key]]
    assert set(bodies) >= {
        ("post", "/api/v1/dead-letters/requeue"),
        ("post", "/api/v1/session"),
        ("post", "/api/v1/queues/{queue}/purge"),
        ("post", "/api/v1/approvals/{name}/approve"),
        ("post", "/api/v1/plugins/{name}/input"),
    }
    for key in bodies:
        assert "$ref" in found[key]["requestBody"]["content"]["application/json"]["schema"]


def test_every_route_of_the_app_is_in_the_schema(web: WebServer) -> None:
    schema = httpx.get(f"{web.url}/openapi.json").json()
    for route in web.app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:  # not the UI's pages
            for method in route.methods:
                assert method.lower() in schema["paths"][route.path], route
