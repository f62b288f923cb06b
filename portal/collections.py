"""Collections: placement candidates and approval, agency exports, agency payments and recalls.

Portal pages, on the portal blueprint."""

from __future__ import annotations

from portal.views import bp  # noqa: F401
