"""LoopBack-style list filters, as Gradient's clients send them.

Gradient's API ran on LoopBack, and its clients page lists with query parameters such as
``filter[limit]=21&filter[skip]=0&filter[order][]=name ASC&filter[where][isCommitted]=true``.
LoopBack also accepts the whole filter as one JSON string (``filter={"limit": 21}``), so both
forms are read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from datakeep.errors import InvalidInput

#: No list answers more than this many rows at once, whatever the client asks.
MAX_LIMIT = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class ListFilter:
    limit: int | None = None
    skip: int = 0
    #: ``(field, descending)`` pairs, in priority order, with camelCase field names.
    order: tuple[tuple[str, bool], ...] = ()
    where: Mapping[str, Any] = field(default_factory=dict)

    def where_bool(self, name: str) -> bool | None:
        value = self.where.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise InvalidInput(f"filter[where][{name}] must be true or false, not {value!r}")

    def sorted_page(
        self, items: Sequence[T], key_of: Mapping[str, Callable[[T], Any]], default: Sequence[str] = ()
    ) -> list[T]:
        """Order ``items`` in memory, then cut the page: for lists whose order the catalog does not
        already give. ``key_of`` maps each orderable field to a sort key."""
        ordered = list(items)
        for name, descending in reversed(self.order or tuple((d, False) for d in default)):
            get = key_of.get(name)
            if get is None:
                raise InvalidInput(
                    f"Cannot order by {name!r}", hint=f"Order by one of: {', '.join(sorted(key_of))}"
                )
            ordered.sort(key=_sort_key(get), reverse=descending)
        end = None if self.limit is None else self.skip + self.limit
        return ordered[self.skip : end]


def _sort_key(get: Callable[[T], Any]) -> Callable[[T], tuple[bool, Any]]:
    """Missing values sort last, and never get compared with present ones."""

    def key(item: T) -> tuple[bool, Any]:
        value = get(item)
        return (value is None, value if value is not None else 0)

    return key


def _int(name: str, value: Any, *, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"filter[{name}] must be a whole number, not {value!r}") from None
    if number < minimum:
        raise InvalidInput(f"filter[{name}] must be at least {minimum}")
    return number


def _order_items(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    raise InvalidInput("filter[order] must be a string or a list of strings")


def _parse_order(items: Sequence[str]) -> tuple[tuple[str, bool], ...]:
    parsed = []
    for item in items:
        parts = item.split()
        if len(parts) == 1:
            parts.append("ASC")
        if len(parts) != 2 or parts[1].upper() not in ("ASC", "DESC"):
            raise InvalidInput(f"Bad filter[order] {item!r}", hint="Use 'FIELD ASC' or 'FIELD DESC'")
        parsed.append((parts[0], parts[1].upper() == "DESC"))
    return tuple(parsed)


def parse_filter(params: Sequence[tuple[str, str]]) -> ListFilter:
    """Read a :class:`ListFilter` from a request's query parameters (repeated keys kept in order)."""
    raw: dict[str, Any] = {}
    order: list[str] = []
    where: dict[str, Any] = {}
    for key, value in params:
        if key == "filter":
            try:
                loaded = json.loads(value)
            except ValueError:
                raise InvalidInput("The filter parameter is not valid JSON") from None
            if not isinstance(loaded, dict):
                raise InvalidInput("The filter parameter must be a JSON object")
            for name in ("limit", "skip", "offset"):
                if name in loaded:
                    raw[name] = loaded[name]
            order.extend(_order_items(loaded.get("order")))
            loaded_where = loaded.get("where") or {}
            if not isinstance(loaded_where, dict):
                raise InvalidInput("filter.where must be a JSON object")
            where.update(loaded_where)
        elif key in ("filter[limit]", "filter[skip]", "filter[offset]"):
            raw[key[7:-1]] = value
        elif key in ("filter[order]", "filter[order][]") or (
            key.startswith("filter[order][") and key.endswith("]")
        ):
            order.extend(_order_items(value))
        elif key.startswith("filter[where][") and key.endswith("]"):
            where[key[len("filter[where][") : -1]] = value
    limit = _int("limit", raw["limit"], minimum=0) if raw.get("limit") not in (None, "") else None
    if limit is not None:
        limit = min(limit, MAX_LIMIT)
    skip_value = raw.get("skip", raw.get("offset"))
    skip = _int("skip", skip_value, minimum=0) if skip_value not in (None, "") else 0
    return ListFilter(limit=limit, skip=skip, order=_parse_order(order), where=where)
