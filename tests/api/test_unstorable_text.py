"""Text no database column can hold (NUL, other control characters, lone surrogates) is a
400 problem wherever a caller can send it, on SQLite as on PostgreSQL (which refuses NUL)."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.parsing import StringField
from tests.support.app import Api
from tests.support.properties import check_property

ACTIVITIES = "/api/v1/garmin/activities"
controls = st.sampled_from([chr(code) for code in (*range(0x20), 0x7F)])
plain = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=20)


def _with(bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(plain, bad, plain).map("".join)


async def test_an_activity_type_with_control_characters_is_a_400_problem(api: Api) -> None:
    async def refused(kind: str) -> None:
        response = await api.client.get(f"{ACTIVITIES}?type={quote(kind, safe='')}",
                                        headers=api.headers("user-1"))
        assert response.status == 400, await response.text()
        assert response.content_type == "application/problem+json"

    await check_property(refused, max_examples=60,
                         kind=_with(controls).filter(lambda text: len(text) <= 64))


@settings(max_examples=200, deadline=None, database=None)
@given(value=_with(st.one_of(controls, st.characters(categories=("Cs",)))))
def test_a_body_string_field_refuses_text_no_column_can_hold(value: str) -> None:
    field = StringField("username", max_length=1000)
    assert field.check(value) is not None
    assert field.check(value.translate({ord(c): None for c in value if ord(c) < 0x20
                                        or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF})
                       or "x") is None
