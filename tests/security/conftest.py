"""Helpers shared by the security tests: a fresh user per test (so lockouts never touch the shared world's users)
and a distinct client address per test (so throttle counters never leak between tests)."""

from __future__ import annotations

import itertools
import os

import pytest

_addresses = itertools.count(1)


@pytest.fixture()
def address() -> str:
    """A client address of this test's own (TEST-NET-3, offset by pid so parallel runs differ too)."""
    n = next(_addresses) + (os.getpid() % 200) * 250
    return f"203.0.{n // 250 % 256}.{n % 250 + 1}"


@pytest.fixture()
def fresh_user(factory, world):
    from tenants.models import BillingCompany
    from tenants.registry import get_practice

    with factory.db.shared_session() as s:
        company = s.get(BillingCompany, get_practice(s, world.practices["A"]).company_id)
    return factory.user("biller", company=company)
