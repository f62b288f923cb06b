"""Report figures checked against the ledger for a generated practice with a year of activity (medbill.demo_history:
visits, 837s, the sandbox's 999/277CA/835 of each month, patient payments, a refund, denials worked, statements, a
placement). Every month's summary equals plain SQL sums over ledger_entries and the figures of the source documents
(the 835s' CLP/CAS, the submissions, the patient payments posted); A/R aging, provider allocation and deposit
reconciliation agree with them too."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from billing import reports
from billing.money import ZERO, money
from billing.posting import AS_LATER_PAYER
from integrations.x12.remit835 import parse_835
from medbill.demo import PRACTICES, generate_patients
from medbill.demo_billing import SPECIALTIES, seed_billing
from medbill.demo_history import generate_history, has_history
from tenants.db import set_local_search_path

MONTHS = 12
TODAY = date.today()
FIELDS = (
    "charges",
    "insurance_payments",
    "patient_payments",
    "contractual_adjustments",
    "other_adjustments",
    "refunds",
)
# The ledger kind each summary field sums (a reversal counts as the kind of the entry it reverses).
KINDS = {
    "charges": ("charge",),
    "insurance_payments": ("insurance_payment",),
    "patient_payments": ("patient_payment",),
    "contractual_adjustments": ("contractual_adjustment",),
    "other_adjustments": ("other_adjustment", "write_off"),
    "refunds": ("refund",),
}


@pytest.fixture(scope="module")
def year(services, factory):
    from billing.models import Patient

    company = factory.company()
    practice = factory.practice(company.slug)
    agency = factory.agency([practice.slug])
    spec = PRACTICES[0]
    with services.db.tenant_session(practice.slug) as s:
        s.add_all(Patient(**values) for values in generate_patients(spec, seed=99, count=16))
        s.commit()
    assert seed_billing(services.db, practice.slug, "Year Practice", index=9, specialty=spec.slug)
    started = time.monotonic()
    report = generate_history(
        services.db, services.storage, practice.slug, specialty=SPECIALTIES[spec.slug], months=MONTHS,
        visits_per_month=3, agency_id=agency.id, today=TODAY,
    )  # fmt: skip
    assert report is not None
    report.seconds = round(time.monotonic() - started, 1)
    return practice.slug, report


def _months() -> list[date]:
    return reports.months_back(TODAY - timedelta(days=1), MONTHS)


def _ledger_sums(s) -> dict[tuple[date, str], Decimal]:
    """Plain SQL: each month's sum of amounts by the kind an entry counts as."""
    rows = s.execute(
        text(
            "SELECT date_trunc('month', e.posted_on)::date AS m, COALESCE(o.kind, e.kind) AS k, SUM(e.amount) "
            "FROM ledger_entries e LEFT JOIN ledger_entries o ON o.id = e.reverses_entry_id GROUP BY 1, 2"
        )
    ).all()
    out: dict[tuple[date, str], Decimal] = defaultdict(lambda: ZERO)
    for m, kind, amount in rows:
        for name, kinds in KINDS.items():
            if kind in kinds:
                out[(m, name)] += money(amount)
    return out


def _remittances(services, s) -> list:
    keys = [k for (k,) in s.execute(text("SELECT DISTINCT storage_key FROM deposits ORDER BY 1"))]
    return [r for key in keys for r in parse_835(services.storage.get(key))]


def test_history_is_generated_once_and_covers_the_year(services, year):
    slug, report = year
    assert report.submissions >= MONTHS - 1 and report.encounters >= 2 * MONTHS
    assert report.patient_payments > 0 and report.statements > 0 and report.placements == 1
    assert report.seconds < 60, report
    assert has_history(services.db, slug, today=TODAY)
    assert generate_history(services.db, services.storage, slug, specialty=SPECIALTIES["riverside_family"]) is None
    with services.db.tenant_session(slug) as s:
        set_local_search_path(s, slug)  # plain SQL below names the practice's tables unqualified
        figures = reports.monthly_summary(s, TODAY - timedelta(days=1), months=MONTHS).months
        assert sum(1 for f in figures if f.charges > 0) >= MONTHS - 1
        assert sum(1 for f in figures if f.insurance_payments > 0) >= MONTHS // 2
        assert sum(1 for f in figures if f.patient_payments > 0) >= MONTHS // 2
        assert s.scalar(text("SELECT count(*) FROM patient_payments WHERE kind = 'refund'")) >= 1
        # Payers denied lines (work items of the denial queue). Not "a claim in status denied": a claim is denied
        # only when every line is, and some generated years (the seed is the random practice slug) have none.
        assert s.scalar(text("SELECT count(*) FROM denial_items WHERE kind = 'denial'")) > 0
        assert s.scalar(text("SELECT count(*) FROM coverages WHERE priority = 2")) > 0
        assert s.scalar(text("SELECT count(*) FROM agency_exports")) == 1


def test_every_month_equals_the_ledger_sql(services, year):
    slug, _report = year
    with services.db.tenant_session(slug) as s:
        set_local_search_path(s, slug)  # plain SQL below names the practice's tables unqualified
        summary = reports.monthly_summary(s, TODAY - timedelta(days=1), months=MONTHS)
        sums = _ledger_sums(s)
    assert [f.month for f in summary.months] == _months()
    for figures in summary.months:
        for name in FIELDS:
            assert getattr(figures, name) == sums[(figures.month, name)], (figures.month, name)


def test_every_month_equals_the_source_documents(services, year):
    """Insurance payments: the 835s' CLP04 by payment date. Adjustments of claims that billed the primary coverage
    and were not adjudicated as a later payer: their CAS (CO contractual, other groups other); a later payer's are
    capped by what the account still owed (and its denial returns the share to the patient), so those and the
    biller's write-offs come from the ledger. Patient payments and refunds: what they applied to the patients' lines.
    Charges: the services billed, in the month of the first submission that billed them."""
    slug, _report = year
    expected: dict[tuple[date, str], Decimal] = defaultdict(lambda: ZERO)
    with services.db.tenant_session(slug) as s:
        set_local_search_path(s, slug)  # plain SQL below names the practice's tables unqualified
        # A claim is a later payer's when it billed a secondary/tertiary coverage, whatever its CLP02 says: a payer
        # that denies every line answers CLP02 4 (denied), not 2, and posting (billing.posting._post_claim) treats it
        # by the claim's coverage priority too. Such a denial's CO is the whole charge, which the primary already
        # adjudicated: posting moves only the share the secondary was billed back to the patient, so its CAS is not
        # the account's contractual adjustment.
        billed_later_payer = set(
            s.scalars(
                text("SELECT c.id FROM claims c JOIN coverages cv ON cv.id = c.coverage_id WHERE cv.priority > 1")
            )
        )
        primary_claims: set[int] = set()
        for remittance in _remittances(services, s):
            m = remittance.payment_date.replace(day=1)
            for clp in remittance.claims:
                expected[(m, "insurance_payments")] += clp.paid
                if clp.status_code in AS_LATER_PAYER or int(clp.patient_control_number) in billed_later_payer:
                    continue
                primary_claims.add(int(clp.patient_control_number))
                for adj in [*clp.adjustments, *(a for svc in clp.lines for a in svc.adjustments)]:
                    if adj.group == "CO":
                        expected[(m, "contractual_adjustments")] += adj.amount
                    elif adj.group != "PR":
                        expected[(m, "other_adjustments")] += adj.amount
        later = s.execute(
            text(
                "SELECT date_trunc('month', e.posted_on)::date, COALESCE(o.kind, e.kind), SUM(e.amount) "
                "FROM ledger_entries e LEFT JOIN ledger_entries o ON o.id = e.reverses_entry_id "
                "WHERE e.source_type <> 'remittance' OR NOT e.claim_id = ANY(:primary) "
                "GROUP BY 1, 2"
            ),
            {"primary": sorted(primary_claims)},
        ).all()
        for m, kind, amount in later:
            if kind == "contractual_adjustment":
                expected[(m, "contractual_adjustments")] += money(amount)
            elif kind in ("other_adjustment", "write_off"):
                expected[(m, "other_adjustments")] += money(amount)
        for m, kind, amount in s.execute(
            # What each payment (or refund) applied to the patient's lines; the unapplied rest is credit, off the
            # account (a refund of credit moves no balance).
            text(
                "SELECT date_trunc('month', p.received_on)::date, p.kind, SUM(a.amount) FROM patient_payments p "
                "JOIN patient_payment_applications a ON a.payment_id = p.id GROUP BY 1, 2"
            )
        ):
            expected[(m, "patient_payments" if kind == "payment" else "refunds")] += money(amount)
        for m, amount in s.execute(
            text(
                "SELECT date_trunc('month', first_billed)::date, SUM(charge) FROM ("
                "  SELECT sl.id, sl.charge, MIN(sub.created_at AT TIME ZONE 'UTC') AS first_billed"
                "  FROM service_lines sl JOIN claim_lines cl ON cl.service_line_id = sl.id"
                "  JOIN submission_claims sc ON sc.claim_id = cl.claim_id"
                "  JOIN submissions sub ON sub.id = sc.submission_id"
                "  GROUP BY sl.id, sl.charge) billed GROUP BY 1"
            )
        ):
            expected[(m, "charges")] += money(amount)
        summary = reports.monthly_summary(s, TODAY - timedelta(days=1), months=MONTHS)
    for figures in summary.months:
        for name in FIELDS:
            assert getattr(figures, name) == expected[(figures.month, name)], (figures.month, name)
    assert sum(expected[(m, "insurance_payments")] for m in _months()) > 0


def test_aging_allocation_and_deposits_agree_with_the_ledger(services, year):
    slug, _report = year
    with services.db.tenant_session(slug) as s:
        set_local_search_path(s, slug)  # plain SQL below names the practice's tables unqualified
        summary = reports.monthly_summary(s, TODAY - timedelta(days=1), months=MONTHS)
        for first in _months():
            as_of = reports.next_month(first) - timedelta(days=1)
            owed = money(
                s.scalar(
                    text("SELECT COALESCE(SUM(insurance_delta + patient_delta), 0) FROM ledger_entries "
                         "WHERE posted_on <= :d"),
                    {"d": as_of},
                )
            )  # fmt: skip
            aging = reports.ar_aging(s, as_of)
            assert sum((row.total for row in aging), ZERO) == owed == reports.ar_total(s, as_of), as_of
        assert owed > 0
        allocation = reports.provider_allocation(s, _months()[0], reports.next_month(_months()[-1]))
        by_month: dict[date, Decimal] = defaultdict(lambda: ZERO)
        for a in allocation:
            by_month[a.month] += a.amount
        for figures in summary.months:
            assert by_month[figures.month] == figures.payments, figures.month
        deposits = reports.deposit_reconciliation(s, _months()[0], reports.next_month(_months()[-1]))
        assert len(deposits) >= MONTHS // 2
        assert all(d.difference == ZERO for d in deposits), [(d.deposit_id, d.difference) for d in deposits]
        assert sum(d.amount for d in deposits) == sum(f.insurance_payments for f in summary.months)
