"""Marshmallow schemas used across API blueprints: errors and pagination."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate


class ErrorSchema(Schema):
    status = fields.Integer(required=True)
    code = fields.String(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(required=True)


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PageMeta(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


class BoundedList(fields.List):
    """A list input with a maximum length that is checked before any item is read: a 300,000-item list is refused
    at once instead of after 300,000 nested loads (marshmallow's validate.Length runs only after them)."""

    def __init__(self, cls_or_instance, *, max_length: int, min_length: int | None = None, **kwargs) -> None:
        self.max_length = max_length
        self.min_length = min_length
        kwargs["validate"] = [validate.Length(min=min_length, max=max_length), *_as_list(kwargs.get("validate"))]
        super().__init__(cls_or_instance, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list | tuple) and len(value) > self.max_length:
            raise ValidationError(f"at most {self.max_length} items")
        return super()._deserialize(value, attr, data, **kwargs)


def _as_list(validators) -> list:
    if validators is None:
        return []
    return list(validators) if isinstance(validators, list | tuple) else [validators]
