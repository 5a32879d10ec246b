"""The OpenAPI document matches the router, the validators and real responses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from service.api.parsing import StringField
from service.api.v1.auth import LOGIN_FIELDS, MFA_FIELDS
from service.api.v1.openapi import LOGIN_RESULT, STATUS_SCHEMA, build_spec
from tests.support.app import Api, Sandbox

SPEC_PATH = "/api/v1/openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
BODY_OPERATIONS = {
    ("post", "/api/v1/garmin/session/login"): LOGIN_FIELDS,
    ("post", "/api/v1/garmin/session/mfa"): MFA_FIELDS,
}

# --- a tiny JSON Schema checker (the subset build_spec uses) ---------------------------

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def schema_errors(value: Any, schema: dict[str, Any], spec: dict[str, Any],
                  where: str = "$") -> list[str]:
    """Every way `value` breaks `schema`; empty when it conforms."""
    if "$ref" in schema:
        target: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, spec, where)
    known = {"type", "enum", "required", "properties", "additionalProperties", "format",
             "minLength", "maxLength", "pattern", "description", "items", "minimum"}
    unsupported = set(schema) - known
    assert not unsupported, f"checker does not know {unsupported} (at {where})"
    errors: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, name) for name in types):
            return [f"{where}: {value!r} is not of type {types}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                errors.append(f"{where}: {value!r} is not a date-time")
            else:
                if parsed.tzinfo is None:
                    errors.append(f"{where}: {value!r} has no time zone")
    if isinstance(value, int) and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: below {schema['minimum']}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], spec, f"{where}[{index}]")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: missing {name}")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], spec, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected {name}")
    return errors


def test_checker_catches_what_it_should() -> None:
    spec = build_spec()
    good = {"status": "VALID", "checked": "live", "last_validated": "2026-01-01T00:00:00+00:00",
            "connected_at": None, "mfa_pending": False, "mfa_expires_at": None, "reason": None,
            "engine": "di", "sync": {}}
    assert schema_errors(good, STATUS_SCHEMA, spec) == []
    assert schema_errors({**good, "engine": None}, STATUS_SCHEMA, spec) == []
    assert schema_errors({**good, "engine": "oauth"}, STATUS_SCHEMA, spec)
    assert schema_errors({**good, "status": "valid"}, STATUS_SCHEMA, spec)
    assert schema_errors({**good, "checked": None}, STATUS_SCHEMA, spec)
    assert schema_errors({**good, "mfa_pending": "no"}, STATUS_SCHEMA, spec)
    assert schema_errors({**good, "connected_at": "yesterday"}, STATUS_SCHEMA, spec)
    assert schema_errors({**good, "connected_at": "2026-01-01T00:00:00"}, STATUS_SCHEMA, spec)
    assert schema_errors({k: v for k, v in good.items() if k != "reason"}, STATUS_SCHEMA, spec)
    assert schema_errors([good], STATUS_SCHEMA, spec)


# --- the document against the router -----------------------------------------------------


def documented_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items()
            for method in item if method in HTTP_METHODS}


def routed_operations(api: Api) -> set[tuple[str, str]]:
    operations = set()
    for route in api.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path == SPEC_PATH or not path.startswith("/api/v1/"):
            continue
        operations.add((route.method, path))
    return operations


@pytest.fixture
async def spec(api: Api) -> dict[str, Any]:
    response = await api.client.get(SPEC_PATH)
    assert response.status == 200
    assert response.content_type == "application/json"
    return dict(await response.json())


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in spec["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS]


async def test_served_document_is_the_built_one(spec: dict[str, Any]) -> None:
    assert spec == build_spec()
    assert spec["openapi"] == "3.1.0"


async def test_spec_lists_exactly_the_routed_v1_operations(api: Api, spec: dict[str, Any]) -> None:
    routed = routed_operations(api)
    assert routed, "no /api/v1 routes found on the app"
    assert documented_operations(spec) == routed


async def test_spec_does_not_document_itself_or_the_probe(spec: dict[str, Any]) -> None:
    assert SPEC_PATH not in spec["paths"]
    assert "/healthz" not in spec["paths"]


@pytest.mark.parametrize(("key", "fields"), list(BODY_OPERATIONS.items()),
                         ids=["login", "mfa"])
async def test_request_schema_matches_the_field_definitions(
    spec: dict[str, Any], key: tuple[str, str], fields: tuple[StringField, ...]
) -> None:
    method, path = key
    body = spec["paths"][path][method]["requestBody"]
    assert body["required"] is True
    assert list(body["content"]) == ["application/json"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == [field.name for field in fields]
    assert set(schema["properties"]) == {field.name for field in fields}
    for field in fields:
        prop = schema["properties"][field.name]
        assert prop["type"] == "string"
        assert prop["minLength"] == field.min_length
        assert prop["maxLength"] == field.max_length
        if field.pattern:
            assert prop["pattern"] == f"^{field.pattern}$"
        else:
            assert "pattern" not in prop


async def test_only_body_operations_document_a_request_body(spec: dict[str, Any]) -> None:
    with_body = {(method, path) for method, path, op in operations(spec) if "requestBody" in op}
    assert with_body == {*BODY_OPERATIONS, ("post", "/api/v1/garmin/sync")}


async def test_every_operation_documents_401_and_400(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        for code in ("400", "401"):
            assert code in operation["responses"], f"{method} {path} lacks {code}"
            content = operation["responses"][code]["content"]
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"}


async def test_body_operations_document_413_and_415(spec: dict[str, Any]) -> None:
    for method, path in BODY_OPERATIONS:
        responses = spec["paths"][path][method]["responses"]
        assert {"413", "415"} <= set(responses)


async def test_every_operation_needs_the_key_and_a_user_id(spec: dict[str, Any]) -> None:
    """Every operation needs the key; those on a user's data the user id too, the operator
    routes (under /api/v1/webhooks/) no user id."""
    assert spec["components"]["securitySchemes"]["apiKey"] == {"type": "http",
                                                               "scheme": "bearer"}
    operator = set()
    for method, path, operation in operations(spec):
        assert operation["security"] == [{"apiKey": []}], f"{method} {path}"
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        if path.startswith("/api/v1/webhooks/"):
            operator.add((method, path))
            assert headers == [], f"{method} {path}"
            continue
        assert [p["name"] for p in headers] == ["X-User-Id"], f"{method} {path}"
        assert headers[0]["required"] is True
    assert operator == {("get", "/api/v1/webhooks/deliveries"),
                        ("post", "/api/v1/webhooks/deliveries/{id}/retry")}


async def test_the_webhooks_section_is_the_event_catalogue(spec: dict[str, Any]) -> None:
    from service.webhooks.events import EVENT_TYPES, SCHEMAS

    assert spec["openapi"].startswith("3.1.")  # `webhooks` is an OpenAPI 3.1 section
    assert list(spec["webhooks"]) == list(EVENT_TYPES)
    for name, item in spec["webhooks"].items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == SCHEMAS[name]
        assert {p["name"] for p in item["post"]["parameters"]} == {
            "webhook-id", "webhook-timestamp", "webhook-signature"}


async def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        target: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict)


# --- the document against real behaviour -------------------------------------------------


def status_schema_of(spec: dict[str, Any]) -> dict[str, Any]:
    operation = spec["paths"]["/api/v1/garmin/session/status"]["get"]
    return dict(operation["responses"]["200"]["content"]["application/json"]["schema"])


async def assert_status_conforms(api: Api, spec: dict[str, Any], user: str,
                                 refresh: bool = False) -> dict[str, Any]:
    response = await api.status(user, refresh=refresh)
    assert response.status == 200
    body = dict(await response.json())
    schema = status_schema_of(spec)
    assert schema == STATUS_SCHEMA
    assert schema_errors(body, schema, spec) == []
    assert set(body) == set(schema["properties"]), "undocumented or missing status keys"
    return body


async def test_status_of_an_unknown_user_conforms(api: Api, spec: dict[str, Any]) -> None:
    body = await assert_status_conforms(api, spec, "user-1")
    assert (body["status"], body["checked"]) == ("MISSING", "none")


async def test_status_of_a_connected_user_conforms(
    api: Api, sandbox: Sandbox, spec: dict[str, Any]
) -> None:
    sandbox.add("alice@example.com")
    login = await api.login("user-1", "alice@example.com")
    assert schema_errors(await login.json(), LOGIN_RESULT, spec) == []
    cached = await assert_status_conforms(api, spec, "user-1")
    assert (cached["status"], cached["checked"]) == ("VALID", "cached")
    live = await assert_status_conforms(api, spec, "user-1", refresh=True)
    assert (live["status"], live["checked"]) == ("VALID", "live")
    assert live["connected_at"] is not None


async def test_status_during_mfa_conforms(
    api: Api, sandbox: Sandbox, spec: dict[str, Any]
) -> None:
    sandbox.add("mfa@example.com", mfa_code="123456")
    login = await (await api.login("user-1", "mfa@example.com")).json()
    assert login["status"] == "MFA_REQUIRED"
    assert schema_errors(login, LOGIN_RESULT, spec) == []
    body = await assert_status_conforms(api, spec, "user-1")
    assert body["status"] == "MFA_PENDING"
    assert body["mfa_pending"] is True


async def test_problem_responses_conform(api: Api, spec: dict[str, Any]) -> None:
    problem = {"$ref": "#/components/schemas/Problem"}
    unauthorized = await api.client.get("/api/v1/garmin/session/status")
    bad = await api.client.post("/api/v1/garmin/session/login", json={},
                                headers=api.headers("user-1"))
    for response in (unauthorized, bad):
        assert response.content_type == "application/problem+json"
        assert schema_errors(await response.json(), problem, spec) == []


LOGIN_SAMPLES = [
    {"username": "nobody@example.com", "password": "x"},
    {"username": "n" * 254, "password": "p" * 256},
    {"username": "n" * 255, "password": "x"},
    {"username": "nobody@example.com", "password": "p" * 257},
    {"username": "", "password": "x"},
    {"username": "nobody@example.com"},
    {"username": "nobody@example.com", "password": "x", "extra": "y"},
    {"username": 5, "password": "x"},
]
MFA_SAMPLES = [
    {"mfa_code": "1234"},
    {"mfa_code": "1234567890"},
    {"mfa_code": "123"},
    {"mfa_code": "12345678901"},
    {"mfa_code": "12a456"},
    {"mfa_code": 123456},
    {},
]


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/v1/garmin/session/login", body) for body in LOGIN_SAMPLES]
    + [("/api/v1/garmin/session/mfa", body) for body in MFA_SAMPLES],
)
async def test_server_accepts_exactly_what_the_request_schema_allows(
    api: Api, spec: dict[str, Any], path: str, body: dict[str, Any]
) -> None:
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    allowed = schema_errors(body, schema, spec) == []
    response = await api.client.post(path, json=body, headers=api.headers("user-1"))
    assert response.status < 500
    assert (response.status != 400) == allowed, await response.text()
