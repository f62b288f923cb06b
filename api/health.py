"""Health: is the service able to reach its database, Redis and storage."""

from __future__ import annotations

from flask import current_app, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.security import policy

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Service health")


class HealthSchema(Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)
    redis = fields.String(required=True)
    storage = fields.String(required=True)


@blp.route("/health", methods=["GET"])
@policy(public=True)
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="a dependency is down; the body names it")
def health():
    """200 when database, Redis and storage answer; 503 naming what is down otherwise."""
    services = current_app.extensions["medbill"]
    checks = {"database": services.db.ping, "redis": services.redis.ping, "storage": services.storage.check}
    body = {"status": "ok"}
    for name, check in checks.items():
        try:
            check()
            body[name] = "ok"
        except Exception as exc:  # any failure of a dependency is reported, not raised
            body[name] = f"down: {type(exc).__name__}"
            body["status"] = "degraded"
    response = jsonify(body)
    response.status_code = 200 if body["status"] == "ok" else 503
    return response
