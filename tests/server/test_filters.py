"""LoopBack filters as Gradient's clients send them, parsed and applied."""

from __future__ import annotations

import pytest

from datakeep.errors import InvalidInput
from datakeep.server.filters import MAX_LIMIT, parse_filter


def test_gradient_list_parameters() -> None:
    flt = parse_filter(
        [
            ("filter[limit]", "21"),
            ("filter[skip]", "20"),
            ("filter[order][]", "dtCreated DESC"),
            ("filter[where][isCommitted]", "false"),
        ]
    )
    assert (flt.limit, flt.skip, flt.order) == (21, 20, (("dtCreated", True),))
    assert flt.where_bool("isCommitted") is False
    assert parse_filter([]).where_bool("isCommitted") is None


def test_the_json_form_and_several_orders() -> None:
    flt = parse_filter(
        [
            (
                "filter",
                '{"limit": 5, "offset": 2, "order": ["name ASC", "id DESC"], "where": {"isCommitted": true}}',
            )
        ]
    )
    assert (flt.limit, flt.skip) == (5, 2)
    assert flt.order == (("name", False), ("id", True))
    assert flt.where_bool("isCommitted") is True
    assert parse_filter([("filter[order]", "name")]).order == (("name", False),)


@pytest.mark.parametrize(
    "params",
    [
        [("filter[limit]", "x")],
        [("filter[skip]", "-1")],
        [("filter[order][]", "name SIDEWAYS")],
        [("filter", "{not json")],
        [("filter", "[1]")],
        [("filter[where][isCommitted]", "maybe")],
    ],
)
def test_bad_filters_are_clear_errors(params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidInput):
        parse_filter(params).where_bool("isCommitted")


def test_limit_is_capped_and_pages_are_cut_after_ordering() -> None:
    assert parse_filter([("filter[limit]", "99999999")]).limit == MAX_LIMIT
    flt = parse_filter([("filter[limit]", "2"), ("filter[skip]", "1"), ("filter[order][]", "n DESC")])
    assert flt.sorted_page([1, 5, 3, 4], {"n": lambda x: x}) == [4, 3]
    with pytest.raises(InvalidInput, match="Cannot order by"):
        parse_filter([("filter[order][]", "secret ASC")]).sorted_page([1], {"n": lambda x: x})
