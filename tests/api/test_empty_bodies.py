"""A body whose fields all have defaults may be left out: no body means every default."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.parsing import StringField, parse_body
from service.api.v1.openapi import build_spec
from service.errors import UnsupportedMediaType
from tests.support.app import Api, Sandbox, connect, drain

SYNC = "/api/v1/garmin/sync"


@pytest.mark.parametrize("extra", [{}, {"Content-Length": "0"},
                                   {"Content-Type": "application/json", "Content-Length": "0"}],
                         ids=["no-headers", "content-length-0", "json-type-empty"])
async def test_sync_without_a_body_syncs_both_kinds(api: Api, sandbox: Sandbox,
                                                    extra: dict[str, str]) -> None:
    await connect(api, sandbox)
    response = await api.client.post(SYNC, headers={**api.headers("user-1"), **extra})
    assert response.status == 202, await response.text()
    jobs = (await response.json())["jobs"]
    assert sorted(job["kind"] for job in jobs) == ["activities", "health"]
    await drain(api)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
fields = st.builds(StringField, name=names,
                   default=st.one_of(st.none(), st.text(min_size=1, max_size=20)))


@settings(max_examples=100, deadline=None, database=None)
@given(declared=st.lists(fields, min_size=1, max_size=4, unique_by=lambda f: f.name))
def test_an_empty_request_is_the_defaults_exactly_when_every_field_has_one(
        declared: list[StringField]) -> None:
    request = make_mocked_request("POST", "/anything")  # no body, no Content-Type
    if all(field.default is not None for field in declared):
        parsed = asyncio.run(parse_body(request, tuple(declared)))
        assert parsed == {field.name: field.default for field in declared}
    else:
        with pytest.raises(UnsupportedMediaType):
            asyncio.run(parse_body(request, tuple(declared)))


def test_the_document_says_which_bodies_may_be_left_out() -> None:
    for path, item in build_spec()["paths"].items():
        for method, operation in item.items():
            body: dict[str, Any] | None = operation.get("requestBody")
            if body is None:
                continue
            schema = body["content"]["application/json"]["schema"]
            assert body["required"] == bool(schema.get("required")), (method, path)
