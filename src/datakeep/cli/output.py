"""How commands print: Gradient's ASCII tables, ``--json``, and paging only where a human is reading.

Scripts written for Gradient grep these tables, so they are drawn with the same library
(``terminaltables.AsciiTable``) and the same headings. Gradient asked ``Do you want to
continue?`` after every 20 rows even inside a pipe, which hangs scripts; here the question is
asked only when both stdin and stdout are terminals, and everything is printed at once otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click
from terminaltables import AsciiTable

from datakeep.cli.common import is_interactive

T = TypeVar("T")

#: Rows per page on a terminal, as Gradient (it fetched one more to know whether more exist).
PAGE_SIZE = 20
NO_DATA = "No data found"
CONTINUE_PROMPT = "Do you want to continue?"

#: ``fetch(limit, offset)``: one page of items; ``limit=None`` means all of them.
Fetch = Callable[[int | None, int], Sequence[T]]


def printable(text: str) -> str:
    """``text`` safe to print: a non-UTF-8 file name (kept as surrogate escapes) shows as ``\\xe9``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return text


def table(rows: Sequence[Sequence[Any]]) -> str:
    """An ASCII table whose first row is the heading, byte for byte as Gradient drew it."""
    data = [["" if cell is None else printable(str(cell)) for cell in row] for row in rows]
    rendered: str = AsciiTable(data).table
    return rendered


def echo_table(rows: Sequence[Sequence[Any]]) -> None:
    click.echo(table(rows))


def echo_json(data: Any) -> None:
    """JSON as UTF-8 text; ``\\udcXX`` escapes only when a non-UTF-8 file name needs them."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if printable(text) != text:
        text = json.dumps(data, indent=2, ensure_ascii=True, default=str)
    click.echo(text)


def echo_details(rows: Sequence[tuple[str, Any]], data: Mapping[str, Any], *, as_json: bool) -> None:
    """A ``details`` command: a two-column table (Gradient's), or the object as JSON."""
    if as_json:
        echo_json(dict(data))
    else:
        echo_table(rows)


def echo_list(
    fetch: Fetch[T],
    heading: Sequence[str],
    to_row: Callable[[T], Sequence[Any]],
    to_json: Callable[[T], Any],
    *,
    as_json: bool,
    interactive: bool | None = None,
) -> None:
    """A ``list`` command: every row at once, or 20 at a time with a question on a terminal."""
    if interactive is None:
        interactive = is_interactive()
    if as_json:
        echo_json([to_json(item) for item in fetch(None, 0)])
        return
    if not interactive:
        items = fetch(None, 0)
        if not items:
            click.echo(NO_DATA)
        else:
            echo_table([heading, *(to_row(item) for item in items)])
        return
    offset = 0
    while True:
        page = list(fetch(PAGE_SIZE + 1, offset))
        has_more = len(page) > PAGE_SIZE
        page = page[:PAGE_SIZE]
        if not page:
            click.echo(NO_DATA)
            return
        echo_table([heading, *(to_row(item) for item in page)])
        if not has_more:
            return
        click.echo("")
        if not click.confirm(CONTINUE_PROMPT, default=False):
            return
        click.echo("")
        offset += PAGE_SIZE


def slice_fetch(items: Sequence[T]) -> Fetch[T]:
    """Page through a list already in memory (file listings come back whole)."""

    def fetch(limit: int | None, offset: int) -> Sequence[T]:
        return items[offset:] if limit is None else items[offset : offset + limit]

    return fetch


def format_config(config: Mapping[str, Any], limit: int | None = None) -> str:
    """A provider's config as ``key: value`` lines sorted by key; scalars only, ``...`` past ``limit``."""
    scalars = [(k, v) for k, v in sorted(config.items()) if isinstance(v, str | int | float | bool)]
    lines = [f"{key}: {value}" for key, value in scalars[:limit]]
    if limit is not None and len(scalars) > limit:
        lines.append("...")
    return "\n".join(lines)


def stderr(message: str) -> None:
    """Informational lines go to stderr, so stdout stays exactly what Gradient printed."""
    click.echo(message, err=True)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def join_tags(tags: Iterable[str]) -> str:
    return ", ".join(tags)
