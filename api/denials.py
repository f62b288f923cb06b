"""Denial work: the queue of denied and underpaid lines, assignment, notes, actions, appeals and follow-up (API)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "denials",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Denial work queue, appeals and follow-up",
)
