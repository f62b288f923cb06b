"""Scanning captured logs for PHI and secrets: the values to look for (a practice's patients and coverages read
from its schema, plus any secrets the caller names) and the assertion, shared by the log tests and the end-to-end
run's worker logs."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select


def date_forms(d: date) -> list[str]:
    """How a date of birth can show up: ISO, X12 (CCYYMMDD), US."""
    return [d.isoformat(), d.strftime("%Y%m%d"), d.strftime("%m/%d/%Y")]


def practice_phi(services, slug: str) -> list[str]:
    """Every patient's names, date of birth and address line, and every coverage's member id, of one practice."""
    from billing.models import Coverage, Patient

    values: list[str] = []
    with services.db.tenant_session(slug) as s:
        for p in s.scalars(select(Patient)):
            values += [p.first_name, p.last_name, f"{p.first_name} {p.last_name}", p.address_line1, p.account_number]
            values += date_forms(p.date_of_birth)
        for c in s.scalars(select(Coverage)):
            values.append(c.member_id)
            if c.subscriber_date_of_birth:
                values += date_forms(c.subscriber_date_of_birth)
            values += [v for v in (c.subscriber_first_name, c.subscriber_last_name) if v]
    return values


def findings(text: str, needles: list[str]) -> list[tuple[str, str]]:
    """(value, the log line it is in) for every value found as a whole word (case-sensitive: names are capitalised,
    which keeps 'Lee' from matching 'fleet')."""
    hits = []
    for needle in sorted({n for n in needles if n and len(n) >= 3}):
        pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(needle) + r"(?![A-Za-z0-9])")
        for line in text.splitlines():
            if pattern.search(line):
                hits.append((needle, line[:300]))
                break
    return hits


def assert_no_phi(text: str, needles: list[str]) -> None:
    found = findings(text, needles)
    assert not found, "PHI or secrets in the logs:\n" + "\n".join(f"{value!r} in: {line}" for value, line in found)
