"""Collections service: the practice's rules pick exactly the right candidates from the ledger and the statement
history; approval places the account with a linked agency; exports write each placement once in the agency's
format (read back with the parser); agency payment reports post the gross to the ledger with the fee recorded,
once per reference; recalls return the account."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import agency_formats, collections, ledger
from billing import claims as claim_service
from billing.models import (
    AgencyExport,
    AgencyPlacement,
    LedgerEntry,
    Patient,
    PatientPayment,
    PaymentPlan,
    PlacementDetail,
    Statement,
    StatementRun,
)
from medbill.errors import Conflict, Forbidden, Invalid, NotFound
from tests.billing.factories import access_for, billing_practice, insured_patient, visit
from tests.support.connections import admin_access, policy

D = Decimal

FIXED = {
    "type": "fixed",
    "rows": "service_date",
    "date_format": "%Y%m%d",
    "money": "cents",
    "fields": [
        {"field": "account_number", "start": 1, "length": 30},
        {"field": "patient_last_name", "start": 31, "length": 20},
        {"field": "guarantor_last_name", "start": 51, "length": 20},
        {"field": "service_date", "start": 71, "length": 8},
        {"field": "service_balance", "start": 79, "length": 9, "align": "right", "pad": "0"},
        {"field": "total_placed", "start": 88, "length": 9, "align": "right", "pad": "0"},
        {"field": "insurance_member_id", "start": 97, "length": 20},
        {"field": "last_payment_amount", "start": 117, "length": 9, "align": "right", "pad": "0"},
    ],
}


def owed_visit(services, bp, patient_id: int, *, days_ago: int, owes=("20.00", "5.00"), pending=False) -> list[int]:
    """A billed visit whose payer paid and moved `owes` (per line) to the patient, or (pending) not answered yet."""
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient_id, days_ago=days_ago))
        ids = []
        for line, pr in zip(claim.lines, owes, strict=True):
            ledger.post(s, line, "charge", line.charge, source_type="test")
            if not pending:
                allowed = (line.charge * D("0.6")).quantize(D("0.01"))
                ledger.post(s, line, "contractual_adjustment", line.charge - allowed, source_type="test")
                ledger.post(s, line, "insurance_payment", allowed - D(pr), source_type="test")
                if D(pr):
                    ledger.post(s, line, "patient_responsibility", D(pr), source_type="test", group_code="PR")
            ids.append(line.id)
        s.commit()
        return ids


def statements(services, bp, patient_id: int, count: int) -> None:
    """`count` statements in the patient's history (one per past cycle)."""
    with services.db.tenant_session(bp.slug) as s:
        for i in range(count):
            start = date(2025, 1, 1) + timedelta(days=30 * i)
            run = s.scalar(select(StatementRun).where(StatementRun.cycle_start == start))
            if run is None:
                run = StatementRun(cycle_start=start, statement_date=start, trigger="user", status="done")
                s.add(run)
                s.flush()
            s.add(
                Statement(
                    patient_id=patient_id, run_id=run.id, statement_date=start, patient_balance=D("25.00"),
                    oldest_age_days=30 * i, message_level=0, storage_key=f"test/{patient_id}/{i}.pdf",
                )
            )  # fmt: skip
        s.commit()


@pytest.fixture()
def setup(services, factory):
    """A billing practice with two agencies linked (and one that is not) and an agency user of the first."""
    bp = billing_practice(services, factory)
    agency, other = factory.agency([bp.slug]), factory.agency([bp.slug])
    stranger = factory.agency([])
    agency_user = factory.user("agency", agency=agency)
    return bp, agency, other, stranger, access_for(services, bp.slug, agency_user, "patients:read")


def _placeable(services, bp, factory, *, days_ago=150, n_statements=3, owes=("20.00", "5.00")) -> int:
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=days_ago, owes=owes)
    statements(services, bp, patient, n_statements)
    return patient


def test_rules_pick_exactly_the_right_candidates(services, factory, setup):
    bp, agency, *_ = setup
    good = _placeable(services, bp, factory)
    young = _placeable(services, bp, factory, days_ago=60)
    few_statements = _placeable(services, bp, factory, n_statements=2)
    small = _placeable(services, bp, factory, owes=("10.00", "0.00"))
    on_plan = _placeable(services, bp, factory)
    placed = _placeable(services, bp, factory)
    pending = insured_patient(services, bp, factory)
    owed_visit(services, bp, pending, days_ago=200, pending=True)
    statements(services, bp, pending, 3)
    # Old enough and owing, but the old visit is still with insurance: only the young visit's part counts.
    mixed = insured_patient(services, bp, factory)
    owed_visit(services, bp, mixed, days_ago=200, pending=True)
    owed_visit(services, bp, mixed, days_ago=30, owes=("40.00", "0.00"))
    statements(services, bp, mixed, 3)
    with services.db.tenant_session(bp.slug) as s:
        s.add(PaymentPlan(patient_id=on_plan, total=D("25.00"), installment_amount=D("5.00"), frequency="monthly",
                          start_date=date.today()))  # fmt: skip
        s.commit()
        collections.approve(s, bp.access, placed, agency.id)
        s.commit()
        found = collections.candidates(s, bp.access)
        assert [c.patient_id for c in found] == [good]
        (c,) = found
        assert c.patient_balance == D("25.00") == ledger.patient_balance(s, good).patient
        assert c.statements == 3 and c.age_days == 150
        # The practice lowers its thresholds: the young and the small ones qualify too, the others still not.
        collections.set_rules(s, bp.access, {"min_age_days": 45, "min_balance": "10.00"})
        ids = {c.patient_id for c in collections.candidates(s, bp.access)}
        assert ids == {good, young, small}
        collections.set_rules(s, bp.access, {"min_statements": 0, "exclude_payment_plans": False})
        ids = {c.patient_id for c in collections.candidates(s, bp.access)}
        assert ids == {good, young, small, few_statements, on_plan}
        s.rollback()
    assert mixed not in ids and placed not in ids and pending not in ids


def test_skip_hides_a_candidate_until_its_date_and_approval_overrides(services, factory, setup):
    bp, agency, _other, stranger, _ = setup
    patient = _placeable(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(Invalid) as info:
            collections.skip(s, bp.access, patient, "  ")
        assert "reason" in info.value.errors
        collections.skip(s, bp.access, patient, "patient called, paying next week")
        s.commit()
        assert collections.candidates(s, bp.access) == []
        later = date.today() + timedelta(days=31)
        assert [c.patient_id for c in collections.candidates(s, bp.access, today=later)] == [patient]
        with pytest.raises(NotFound):  # not one of the practice's agencies
            collections.approve(s, bp.access, patient, stranger.id)
        placement = collections.approve(s, bp.access, patient, agency.id, note="no answer to three letters")
        s.commit()
        detail = s.get(PlacementDetail, placement.id)
        assert detail.balance_placed == D("25.00")
        with pytest.raises(Conflict):
            collections.approve(s, bp.access, patient, agency.id)
        s.rollback()
        not_qualified = insured_patient(services, bp, factory)
        with pytest.raises(Conflict):
            collections.approve(s, bp.access, not_qualified, agency.id)


def test_placement_export_payment_and_recall(services, factory, setup):
    bp, agency, other, _, agency_access = setup
    first = _placeable(services, bp, factory, days_ago=170)
    owed_visit(services, bp, first, days_ago=130, owes=("30.00", "0.00"))
    second = _placeable(services, bp, factory)
    to_other = _placeable(services, bp, factory)
    storage = services.storage
    with services.db.tenant_session(bp.slug) as s:
        collections.set_terms(s, bp.access, agency.id, {"file_format": FIXED, "fee_percent": "30"})
        for patient in (first, second):
            collections.approve(s, bp.access, patient, agency.id)
        collections.approve(s, bp.access, to_other, other.id)
        s.commit()

        result = collections.export_agency(s, storage, bp.slug, agency.id)
        s.commit()
        assert collections.export_agency(s, storage, bp.slug, agency.id) is None  # a retry: nothing new, no file
        s.commit()
        assert s.scalar(select(func.count()).select_from(AgencyExport).where(AgencyExport.agency_id == agency.id)) == 1
        export = result.export
        assert export.account_count == 2 and export.row_count == 3 and export.total_placed == D("80.00")
        assert export.storage_key.startswith("companies/") and f"/agencies/{agency.slug}/exports/" in export.storage_key

    fmt = agency_formats.validate_format(FIXED)
    accounts = agency_formats.accounts_from_records(fmt, agency_formats.parse(fmt, storage.get(export.storage_key)))
    by_number = {a["account_number"]: a for a in accounts}
    assert len(by_number) == 2
    with services.db.tenant_session(bp.slug) as s:
        first_account = s.get(Patient, first).account_number
    account = by_number[first_account]
    assert account["total_placed"] == D("55.00")
    assert [(x["service_date"], x["service_balance"]) for x in account["services"]] == [
        (date.today() - timedelta(days=170), D("25.00")),
        (date.today() - timedelta(days=130), D("30.00")),
    ]
    assert account["insurance_member_id"] and account["last_payment_amount"] is None

    with services.db.tenant_session(bp.slug) as s:
        placement = s.scalar(select(AgencyPlacement).where(AgencyPlacement.patient_id == first))
        with pytest.raises(Forbidden):
            collections.report_payment(s, bp.access, placement.id, amount=D("10"), received_on=date.today(),
                                       reference="R-1")  # fmt: skip
        report, created = collections.report_payment(
            s, agency_access, placement.id, amount=D("40.00"), received_on=date.today(), reference="RCPT-77"
        )
        s.commit()
        assert created and report.fee == D("12.00") and report.net == D("28.00") and report.fee_percent == D("30")
        assert ledger.patient_balance(s, first).patient == D("15.00")
        payment = s.scalar(select(PatientPayment).where(PatientPayment.patient_id == first))
        assert payment.source_type == "agency" and payment.method == "agency" and payment.amount == D("40.00")
        entries = s.scalars(select(LedgerEntry).where(LedgerEntry.patient_id == first,
                                                      LedgerEntry.kind == "patient_payment")).all()  # fmt: skip
        assert sum(e.amount for e in entries) == D("40.00")
        # The same report again (the agency's system retried): nothing more is posted.
        again, created = collections.report_payment(
            s, agency_access, placement.id, amount=D("40.00"), received_on=date.today(), reference="RCPT-77"
        )
        s.commit()
        assert not created and again.id == report.id
        assert ledger.patient_balance(s, first).patient == D("15.00")
        with pytest.raises(Conflict):
            collections.report_payment(s, agency_access, placement.id, amount=D("41.00"), received_on=date.today(),
                                       reference="RCPT-77")  # fmt: skip
        s.rollback()
        other_placement = s.scalar(select(AgencyPlacement).where(AgencyPlacement.patient_id == to_other))
        with pytest.raises(NotFound):  # another agency's account
            collections.report_payment(s, agency_access, other_placement.id, amount=D("5"), received_on=date.today(),
                                       reference="X")  # fmt: skip
        with pytest.raises(NotFound):
            collections.recall(s, agency_access, other_placement.id, "not ours")
        views = collections.list_placements(s, agency_access)
        assert {v.patient_id for v in views} == {first, second}
        view = next(v for v in views if v.patient_id == first)
        assert (view.collected_gross, view.collected_fee, view.collected_net) == (D("40.00"), D("12.00"), D("28.00"))

        collections.recall(s, agency_access, placement.id, "debtor disputes the visit")
        s.commit()
        assert s.get(AgencyPlacement, placement.id).recalled_at is not None
        assert s.get(PlacementDetail, placement.id).recalled_by == "agency"
        # Recalled: gone from the agency's view, back with the practice.
        assert {v.patient_id for v in collections.list_placements(s, agency_access)} == {second}
        with pytest.raises(NotFound):
            collections.report_payment(s, agency_access, placement.id, amount=D("5"), received_on=date.today(),
                                       reference="late")  # fmt: skip
        # The biller recalls the other agency's account.
        collections.recall(s, bp.access, other_placement.id, "patient on a payment plan now")
        s.commit()
        assert s.get(PlacementDetail, other_placement.id).recalled_by == "practice"
        # Placed again later, it is exported again (once per placement).
        collections.approve(s, bp.access, to_other, agency.id)
        s.commit()
        result = collections.export_agency(s, storage, bp.slug, agency.id)
        s.commit()
        assert result.export.account_count == 1


def test_terms_are_validated(services, factory, setup):
    bp, agency, _other, stranger, agency_access = setup
    admin = admin_access(services, factory, bp.slug, bp.company_slug)
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(Invalid) as info:
            collections.set_terms(
                s, bp.access, agency.id, {"file_format": {"type": "csv", "columns": [{"field": "x"}]}}
            )
        assert "columns[0].field" in info.value.errors
        with pytest.raises(Invalid) as info:
            collections.set_terms(s, bp.access, agency.id, {"fee_percent": "120"})
        assert "fee_percent" in info.value.errors
        # The delivery target is the company admin's to change (billing.connections), and never takes a password.
        delivery = {"transport": "sftp", "host": "127.0.0.1", "username": "u", "password": "secret"}
        with pytest.raises(Forbidden):
            collections.set_terms(s, bp.access, agency.id, {"sftp": delivery}, policy=policy(services))
        with pytest.raises(Invalid) as info:
            collections.set_terms(s, admin, agency.id, {"sftp": delivery}, policy=policy(services))
        assert "sftp.password" in info.value.errors
        with pytest.raises(NotFound):
            collections.set_terms(s, bp.access, stranger.id, {"fee_percent": "10"})
        with pytest.raises(Forbidden):
            collections.set_terms(s, agency_access, agency.id, {"fee_percent": "10"})
        terms = collections.set_terms(
            s, admin, agency.id,
            {"fee_percent": "33.5", "sftp": {"transport": "directory", "subdir": "agency-drop"}},
            policy=policy(services),
        )  # fmt: skip
        assert terms.fee_percent == D("33.50") and terms.sftp == {"transport": "directory", "subdir": "agency-drop"}
        # A biller changing the fee and sending the delivery back unchanged needs no admin.
        terms = collections.set_terms(s, bp.access, agency.id, {"fee_percent": "30", "sftp": dict(terms.sftp)})
        assert terms.fee_percent == D("30.00")


def test_placed_accounts_leave_the_statement_cycle_until_recalled(services, factory, setup):
    from billing import statements as statement_service

    bp, agency, *_ = setup
    patient = _placeable(services, bp, factory)
    next_cycle = date.today() + timedelta(days=1)

    def billed() -> set[int]:
        with services.db.tenant_session(bp.slug) as s:
            settings = statement_service.get_settings(s)
            return {pid for pid, _ in statement_service.select_patients(s, settings, next_cycle)}

    assert patient in billed()
    with services.db.tenant_session(bp.slug) as s:
        placement = collections.approve(s, bp.access, patient, agency.id)
        s.commit()
    assert patient not in billed()
    with services.db.tenant_session(bp.slug) as s:
        collections.recall(s, bp.access, placement.id, "payment arrangement made at the front desk")
        s.commit()
    assert patient in billed()


def test_updates_file_carries_new_balances_and_recalls_once(services, factory, setup):
    from billing.patient_payments import post_patient_payment

    bp, agency, *_ = setup
    paid_at_desk, recalled, unchanged = (_placeable(services, bp, factory) for _ in range(3))
    storage = services.storage
    fmt = agency_formats.validate_format(agency_formats.DEFAULT_FORMAT)
    with services.db.tenant_session(bp.slug) as s:
        placements = {
            pid: collections.approve(s, bp.access, pid, agency.id) for pid in (paid_at_desk, recalled, unchanged)
        }
        s.commit()
        assert collections.export_agency_updates(s, storage, bp.slug, agency.id) is None  # nothing sent yet
        first = collections.export_agency(s, storage, bp.slug, agency.id)
        s.commit()
        rows = agency_formats.parse(fmt, storage.get(first.export.storage_key))
        assert {r["status"] for r in rows} == {"placed"}
        assert collections.export_agency_updates(s, storage, bp.slug, agency.id) is None  # nothing changed
        s.rollback()
        # The patient pays the practice directly; another account is taken back.
        post_patient_payment(s, paid_at_desk, D("10.00"), method="cash", reference="desk", received_on=date.today(),
                             user_id=None)  # fmt: skip
        collections.recall(s, bp.access, placements[recalled].id, "hardship")
        s.commit()
        accounts = {s.get(Patient, pid).account_number: pid for pid in (paid_at_desk, recalled, unchanged)}
        update = collections.export_agency_updates(s, storage, bp.slug, agency.id)
        s.commit()
        assert update.export.kind == "updates" and update.export.account_count == 2
        rows = agency_formats.parse(fmt, storage.get(update.export.storage_key))
        by_patient = {accounts[r["account_number"]]: r for r in rows}
        assert set(by_patient) == {paid_at_desk, recalled}
        assert by_patient[paid_at_desk]["status"] == "updated"
        assert by_patient[paid_at_desk]["patient_balance"] == D("15.00")
        assert by_patient[paid_at_desk]["last_payment_amount"] == D("10.00")
        assert by_patient[recalled]["status"] == "recalled"
        # Told once: running again writes nothing.
        assert collections.export_agency_updates(s, storage, bp.slug, agency.id) is None
        # The agency still sees both of its files.
        agency_user = factory.user("agency", agency=agency)
        files = collections.list_exports(s, access_for(services, bp.slug, agency_user, "exports:read"))
        assert [f.kind for f in files] == ["updates", "placements"]
