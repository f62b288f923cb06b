"""Denial work: the queue of denied and underpaid lines, assignment, notes, actions, appeals and follow-up.

Portal pages, on the portal blueprint."""

from __future__ import annotations

from portal.views import bp  # noqa: F401
