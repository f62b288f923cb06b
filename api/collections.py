"""Collections: placement candidates and approval, agency exports, agency payments and recalls (API)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "collections",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Collections: placement candidates and approval, agency exports, agency payments and recalls",
)
