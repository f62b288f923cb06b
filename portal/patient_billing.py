"""Patient billing: statement runs, patient payments and refunds, credits, payment plans.

Portal pages, on the portal blueprint."""

from __future__ import annotations

from portal.views import bp  # noqa: F401
