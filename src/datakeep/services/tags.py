"""Tags: movable names for versions (``prod``, ``v1``); ``latest`` is reserved."""

from __future__ import annotations

from datakeep.domain.models import Tag
from datakeep.domain.refs import check_tag_name, parse_bare_dataset_id, parse_ref
from datakeep.services.context import Context


class TagsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def list(self, dataset_id: str, *, limit: int | None = None, offset: int = 0) -> list[Tag]:
        return self._ctx.catalog.list_tags(
            self._ctx.team_id, parse_bare_dataset_id(dataset_id), limit=limit, offset=offset
        )

    def get(self, ref: str) -> Tag:
        parsed = parse_ref(ref, require_selector=True)
        assert parsed.selector is not None
        return self._ctx.catalog.get_tag(self._ctx.team_id, parsed.dataset_id, parsed.selector)

    def set(self, ref: str, *, name: str) -> Tag:
        """Point tag ``name`` at the version ``ref`` names (create or move it)."""
        check_tag_name(name)
        version = self._ctx.catalog.resolve(self._ctx.team_id, parse_ref(ref, require_selector=True))
        return self._ctx.catalog.set_tag(self._ctx.team_id, version.dataset_id, name, version.version)

    def delete(self, ref: str) -> Tag:
        tag = self.get(ref)
        self._ctx.catalog.delete_tag(self._ctx.team_id, tag.dataset_id, tag.name)
        return tag
