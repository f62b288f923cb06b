"""Statement runs over a practice with mixed balances: exactly the right patients, amounts that agree with the
ledger, PDFs in S3 (text read back), the print vendor's CSV read back, and a second run in the same cycle that does
nothing. Also: cycles, messages by age, and the patient coming back into the cycle when the plan breaks."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from billing import ledger, patient_payments, payment_plans, statements
from billing.models import ClaimLine, Guarantor, PatientBillingSettings, Statement, StatementRun
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_patient_payments import owed_visit
from tests.billing.test_posting_cob import _primary_era, new_visit, post

D = Decimal


def _run(services, bp, today: date | None = None):
    with services.db.tenant_session(bp.slug) as s:
        run, created = statements.start_run(s, bp.access, today=today)
        s.commit()
        if created:
            run = statements.execute_run(s, run.id, practice_slug=bp.slug, storage=services.storage)
            s.commit()
        return run.id, created


@pytest.fixture(scope="module")
def mixed(services, factory):
    """One practice, one patient per case."""
    bp = billing_practice(services, factory)
    p = {name: insured_patient(services, bp, factory) for name in (
        "zero", "below_minimum", "pending_only", "in_collections", "on_plan", "due_old", "due_with_pending",
        "credit_covers", "credit_partial", "secondary_billed")}  # fmt: skip
    owed_visit(services, bp, p["zero"], days_ago=40, owes=("0.00", "0.00"))
    owed_visit(services, bp, p["below_minimum"], days_ago=40, owes=("3.00", "1.00"))
    owed_visit(services, bp, p["pending_only"], days_ago=20, pending=True)
    owed_visit(services, bp, p["in_collections"], days_ago=200)
    owed_visit(services, bp, p["on_plan"], days_ago=100)
    owed_visit(services, bp, p["due_old"], days_ago=130, owes=("40.00", "5.00"))
    owed_visit(services, bp, p["due_old"], days_ago=10, owes=("15.00", "0.00"))
    owed_visit(services, bp, p["due_with_pending"], days_ago=45)
    owed_visit(services, bp, p["due_with_pending"], days_ago=5, pending=True)
    # Credits held before a later remittance moved PR to the patient: applied at the start of the run.
    for name, paid in (("credit_covers", "30.00"), ("credit_partial", "10.00")):
        with services.db.tenant_session(bp.slug) as s:
            patient_payments.post_patient_payment(s, p[name], D(paid), method="cash", reference="",
                                                  received_on=date.today(), user_id=None)  # fmt: skip
            s.commit()
        owed_visit(services, bp, p[name], days_ago=35)
    # The primary's PR went back to insurance: a secondary payer is billed for it, so the patient is not.
    for line_id, pr in zip(
        owed_visit(services, bp, p["secondary_billed"], days_ago=50), ("20.00", "5.00"), strict=True
    ):
        with services.db.tenant_session(bp.slug) as s:
            ledger.post(s, s.get(ClaimLine, line_id), "transfer_to_secondary", D(pr), source_type="test")
            s.commit()
    factory.place(bp.slug, p["in_collections"], agency_id=1)
    with services.db.tenant_session(bp.slug) as s:
        payment_plans.create_plan(s, bp.access, p["on_plan"], total=D("25.00"), installment_amount=D("10.00"),
                                  frequency="monthly", start_date=date.today())  # fmt: skip
        s.add(Guarantor(patient_id=p["due_old"], relationship="parent", first_name="Paul", last_name="Guard",
                        address_line1="9 Elm St", city="Dallas", state="TX", postal_code="752011234"))  # fmt: skip
        statements.update_settings(s, bp.access, {"minimum_balance": "5.00", "cycle_days": 30})
        s.commit()
    run_id, created = _run(services, bp)
    assert created
    return bp, p, run_id


def test_the_run_selects_exactly_the_patients_who_owe(services, mixed):
    bp, p, run_id = mixed
    with services.db.tenant_session(bp.slug) as s:
        got = {st.patient_id: st for st in statements.run_statements(s, run_id)}
        assert set(got) == {p["due_old"], p["due_with_pending"], p["credit_partial"]}
        # Amounts agree with the ledger: everything the patient owes, less what is still pending with insurance.
        assert got[p["due_old"]].patient_balance == D("60.00") == ledger.patient_balance(s, p["due_old"]).patient
        assert got[p["due_with_pending"]].patient_balance == D("25.00")
        acct = patient_payments.account(s, p["due_with_pending"])
        assert acct.patient_due == D("25.00") and acct.insurance_balance > 0
        # The credit paid 10 of 25 before selection; the other credit paid everything and left 5 over.
        assert (
            got[p["credit_partial"]].patient_balance
            == D("15.00")
            == ledger.patient_balance(s, p["credit_partial"]).patient
        )
        assert ledger.patient_balance(s, p["credit_covers"]).patient == D("0.00")
        assert ledger.patient_balance(s, p["secondary_billed"]).insurance == D("25.00")
        assert patient_payments.credit_balance(s, p["credit_covers"]) == D("5.00")
        run = s.get(StatementRun, run_id)
        assert (run.status, run.patients_selected, run.statements_done) == ("done", 3, 3)
        assert run.total_due == D("100.00")
        # Aging by date of service and the message of the oldest balance's age.
        old = got[p["due_old"]]
        assert old.message_level == 120 and old.oldest_age_days == 130
        assert old.aging == {
            "current": "15.00",
            "31_60": "0.00",
            "61_90": "0.00",
            "91_120": "0.00",
            "over_120": "45.00",
        }
        assert got[p["due_with_pending"]].message_level == 30
        # The history of the patient.
        assert [st.id for st in statements.patient_statements(s, p["due_old"])] == [old.id]


def test_the_statement_pdf_is_in_storage_with_amounts_and_escalated_message(services, mixed):
    bp, p, run_id = mixed
    with services.db.tenant_session(bp.slug) as s:
        st = s.scalar(select(Statement).where(Statement.run_id == run_id, Statement.patient_id == p["due_old"]))
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(services.storage.get(st.storage_key))).pages)
    for expected in ("Sunrise Family Practice", "STATEMENT", "Paul Guard", "9 Elm St", "$60.00", "$45.00", "$15.00",
                     "$150.00", "99213", "Over 120 days", "ACCOUNT PAST DUE 120 DAYS", "collection agency",
                     "How to pay", "(512) 555-0100"):  # fmt: skip
        assert expected in text, expected
    assert st.storage_key.startswith(f"practices/{bp.slug}/statements/run-{run_id}/")


def test_the_print_batch_csv_parses_back_with_one_row_per_statement(services, mixed):
    bp, p, run_id = mixed
    with services.db.tenant_session(bp.slug) as s:
        run = s.get(StatementRun, run_id)
        by_patient = {st.patient_id: st for st in statements.run_statements(s, run_id)}
        accounts = {
            pid: s.scalar(select(func.min(Statement.id)).where(Statement.patient_id == pid)) for pid in by_patient
        }
    rows = list(csv.DictReader(io.StringIO(services.storage.get(run.batch_storage_key).decode())))
    assert len(rows) == 3
    assert tuple(rows[0]) == statements.CSV_COLUMNS
    by_id = {int(r["statement_id"]): r for r in rows}
    assert set(by_id) == {st.id for st in by_patient.values()} == set(accounts.values())
    old = by_id[by_patient[p["due_old"]].id]
    assert (old["recipient_name"], old["patient_name"], old["address_line1"], old["city"], old["postal_code"]) == (
        "Paul Guard", "Ann Lee", "9 Elm St", "Dallas", "752011234")  # fmt: skip
    assert old["amount_due"] == "60.00" and old["statement_date"] == date.today().isoformat()
    assert old["storage_key"] == by_patient[p["due_old"]].storage_key
    assert {r["amount_due"] for r in rows} == {"60.00", "25.00", "15.00"}


def test_a_second_run_in_the_same_cycle_does_nothing(services, mixed):
    bp, p, run_id = mixed
    with services.db.tenant_session(bp.slug) as s:
        before = s.scalar(select(func.count()).select_from(Statement))
        settings = statements.get_settings(s)
        start = statements.cycle_start(settings, date.today())
    last_day_of_cycle = start + timedelta(days=29)
    again, created = _run(services, bp, today=last_day_of_cycle)
    assert (again, created) == (run_id, False)
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(func.count()).select_from(Statement)) == before
        # Executing the finished run again (a retried job) changes nothing either.
        statements.execute_run(s, run_id, practice_slug=bp.slug, storage=services.storage)
        assert s.scalar(select(func.count()).select_from(Statement)) == before
        assert s.scalar(select(func.count()).select_from(StatementRun)) == 1


def test_next_cycle_bills_again_and_a_broken_plan_rejoins(services, mixed):
    bp, p, run_id = mixed
    with services.db.tenant_session(bp.slug) as s:
        settings = statements.get_settings(s)
        next_cycle = statements.cycle_start(settings, date.today()) + timedelta(days=settings.cycle_days)
        plan = payment_plans.active_plan(s, p["on_plan"])
        # The first installment (due today) is never paid: reminded, then broken.
        payment_plans.check_plans(s, date.today() + timedelta(days=5))
        check = payment_plans.check_plans(s, date.today() + timedelta(days=31))
        assert check.broken == [plan.id]
        s.commit()
    second, created = _run(services, bp, today=next_cycle)
    assert created and second != run_id
    with services.db.tenant_session(bp.slug) as s:
        got = {st.patient_id for st in statements.run_statements(s, second)}
        assert got == {p["due_old"], p["due_with_pending"], p["credit_partial"], p["on_plan"]}
        s.rollback()


def test_cycles_and_messages():
    settings = PatientBillingSettings(cycle_days=30, cycle_anchor=date(2026, 1, 1), messages={"60": "Pay now, please."})
    assert statements.cycle_start(settings, date(2026, 1, 1)) == date(2026, 1, 1)
    assert statements.cycle_start(settings, date(2026, 1, 30)) == date(2026, 1, 1)
    assert statements.cycle_start(settings, date(2026, 1, 31)) == date(2026, 1, 31)
    assert statements.cycle_start(settings, date(2025, 12, 31)) == date(2025, 12, 2)
    assert [statements.message_level(d) for d in (0, 29, 30, 59, 60, 90, 119, 120, 400)] == [
        0, 0, 30, 30, 60, 90, 90, 120, 120]  # fmt: skip
    assert statements.message_for(settings, 60) == "Pay now, please."
    assert statements.message_for(settings, 90).startswith("FINAL NOTICE")


def test_a_credit_pays_the_pr_a_later_835_moves_to_the_patient(services, factory):
    """Real posting: the patient paid ahead; the payer's 835 makes 39.00 the patient's (PR-1, PR-2); the statement
    run applies the credit first, so nobody is billed and 11.00 of credit is left."""
    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        patient_payments.post_patient_payment(s, patient, D("50.00"), method="card", reference="auth 1",
                                              received_on=date.today(), user_id=None)  # fmt: skip
        s.commit()
    v = new_visit(services, bp, patient)
    post(services, bp, _primary_era(v, trace=f"T{v.claim_id}"))
    with services.db.tenant_session(bp.slug) as s:
        acct = patient_payments.account(s, patient)
        assert (acct.patient_due, acct.credit, acct.insurance_balance) == (D("39.00"), D("50.00"), D("0.00"))
    run_id, created = _run(services, bp)
    with services.db.tenant_session(bp.slug) as s:
        assert statements.run_statements(s, run_id) == []
        assert ledger.patient_balance(s, patient).patient == D("0.00")
        assert patient_payments.credit_balance(s, patient) == D("11.00")
        assert s.get(StatementRun, run_id).batch_storage_key == ""  # nobody billed: no batch for the print vendor
