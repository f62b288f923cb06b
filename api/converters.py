"""URL converters: `<id:...>` accepts only ids that fit a PostgreSQL bigint, so an absurd id is a 404, not a 500.
Also how a decimal sent as a string is described in the OpenAPI document."""

from __future__ import annotations

from marshmallow import fields
from werkzeug.routing import BaseConverter


class IdConverter(BaseConverter):
    regex = r"[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1}


def decimal_string_property(self, field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: a `fields.Decimal(as_string=True)` (amounts "150.00", percents "60.000") is a
    string of format decimal in the JSON, not a number; its range stays documented as x-minimum/x-maximum, since
    OpenAPI's minimum/maximum apply to numbers only."""
    if not (isinstance(field, fields.Decimal) and field.as_string):
        return {}
    ret["type"] = "string"
    ret["format"] = "decimal"
    for bound in ("minimum", "maximum"):
        if bound in ret:
            ret[f"x-{bound}"] = str(ret.pop(bound))
    return {}
