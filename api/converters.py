"""URL converters: `<id:...>` accepts only ids that fit a PostgreSQL bigint, so an absurd id is a 404, not a 500."""

from __future__ import annotations

from werkzeug.routing import BaseConverter


class IdConverter(BaseConverter):
    regex = r"[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1}
