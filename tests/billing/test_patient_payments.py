"""Patient payments: applied oldest date of service first or to a chosen line, the excess kept as credit and applied
to the next balance, refunds from credit and from overpaid lines, idempotent posting keys, all agreeing with the
ledger."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import claims as claim_service
from billing import ledger, patient_payments
from billing.models import ClaimLine, LedgerEntry, PatientPaymentApplication
from medbill.errors import Conflict, Invalid
from tests.billing.factories import billing_practice, insured_patient, visit

D = Decimal


def owed_visit(services, bp, patient_id: int, *, days_ago: int, owes: tuple[str, str] = ("20.00", "5.00"),
               pending: bool = False) -> list[int]:  # fmt: skip
    """A billed visit (99213 $150, 36415 $25) whose payer paid and moved `owes` (per line) to the patient through
    PR adjustments, or (pending=True) that insurance has not answered yet. Returns the claim line ids."""
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient_id, days_ago=days_ago))
        ids = []
        for line, pr in zip(claim.lines, owes, strict=True):
            ledger.post(s, line, "charge", line.charge, source_type="test")
            if not pending:
                pr = D(pr)
                allowed = (line.charge * D("0.6")).quantize(D("0.01"))
                ledger.post(
                    s, line, "contractual_adjustment", line.charge - allowed, source_type="test", group_code="CO"
                )
                ledger.post(s, line, "insurance_payment", allowed - pr, source_type="test")
                if pr:
                    ledger.post(s, line, "patient_responsibility", pr, source_type="test", group_code="PR")
            ids.append(line.id)
        s.commit()
        return ids


@pytest.fixture()
def bp(services, factory):
    return billing_practice(services, factory)


def _pay(services, bp, patient_id, amount, **kw):
    with services.db.tenant_session(bp.slug) as s:
        p = patient_payments.post_patient_payment(
            s, patient_id, D(amount), method=kw.pop("method", "cash"), reference=kw.pop("reference", ""),
            received_on=date.today(), user_id=None, **kw,
        )  # fmt: skip
        s.commit()
        return p.id, {a.claim_line_id: a.amount for a in p.applications}


def _parts(services, bp, line_ids):
    with services.db.tenant_session(bp.slug) as s:
        return [ledger.line_balance(s, i).patient for i in line_ids]


def test_payment_is_applied_oldest_date_of_service_first(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    newer = owed_visit(services, bp, patient, days_ago=10, owes=("30.00", "0.00"))
    older = owed_visit(services, bp, patient, days_ago=60, owes=("20.00", "5.00"))
    pid, applied = _pay(services, bp, patient, "35.00", method="check", reference="1043")
    # 20 + 5 of the older visit, then 10 of the newer one.
    assert applied == {older[0]: D("20.00"), older[1]: D("5.00"), newer[0]: D("10.00")}
    assert _parts(services, bp, older + newer) == [D("0.00"), D("0.00"), D("20.00"), D("0.00")]
    with services.db.tenant_session(bp.slug) as s:
        acct = patient_payments.account(s, patient)
        assert acct.patient_due == D("20.00") == ledger.patient_balance(s, patient).patient
        assert acct.credit == D("0.00")
        entries = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "patient_payment",
                                                      LedgerEntry.patient_id == patient)).all()  # fmt: skip
        assert sorted(e.amount for e in entries) == [D("5.00"), D("10.00"), D("20.00")]
        assert all(e.source_id == f"patient_payment:{pid}" for e in entries)


def test_payment_to_a_chosen_line(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    older = owed_visit(services, bp, patient, days_ago=60)
    newer = owed_visit(services, bp, patient, days_ago=5, owes=("40.00", "0.00"))
    _, applied = _pay(services, bp, patient, "15.00", claim_line_ids=[newer[0]])
    assert applied == {newer[0]: D("15.00")}
    assert _parts(services, bp, older + newer[:1]) == [D("20.00"), D("5.00"), D("25.00")]


def test_a_line_of_another_patient_is_refused_and_nothing_is_written(services, factory, bp):
    patient, other = insured_patient(services, bp, factory), insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=30)
    foreign = owed_visit(services, bp, other, days_ago=30)
    with pytest.raises(Invalid) as err:
        _pay(services, bp, patient, "10.00", claim_line_ids=[foreign[0]])
    assert "claim_line_ids" in err.value.errors
    with pytest.raises(Invalid) as err:
        _pay(services, bp, patient, "-1", method="bitcoin")
    assert set(err.value.errors) == {"amount", "method"}
    with services.db.tenant_session(bp.slug) as s:
        assert patient_payments.list_payments(s, patient) == []


def test_overpayment_becomes_credit_and_is_applied_to_the_next_balance(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    first = owed_visit(services, bp, patient, days_ago=40)
    pid, applied = _pay(services, bp, patient, "40.00")
    assert sum(applied.values()) == D("25.00")
    with services.db.tenant_session(bp.slug) as s:
        assert patient_payments.credit_balance(s, patient) == D("15.00")
        assert patient_payments.patients_with_credit(s).count(patient) == 1
    # A later remittance moves PR to the patient on a new visit: the credit pays it when credits are applied.
    later = owed_visit(services, bp, patient, days_ago=3, owes=("12.00", "0.00"))
    with services.db.tenant_session(bp.slug) as s:
        assert patient_payments.apply_credits(s, patient) == D("12.00")
        s.commit()
    assert _parts(services, bp, first + later[:1]) == [D("0.00"), D("0.00"), D("0.00")]
    with services.db.tenant_session(bp.slug) as s:
        assert patient_payments.credit_balance(s, patient) == D("3.00")
        # The credit's application belongs to the original payment.
        apps = s.scalars(select(PatientPaymentApplication).where(PatientPaymentApplication.payment_id == pid)).all()
        assert sorted(a.amount for a in apps) == [D("5.00"), D("12.00"), D("20.00")]
        assert patient_payments.apply_credits(s, patient) == D("0.00")  # nothing owed: the credit stays


def test_a_new_payment_uses_the_credit_first(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    _pay(services, bp, patient, "10.00")  # nothing owed yet: all credit
    line = owed_visit(services, bp, patient, days_ago=3, owes=("30.00", "0.00"))[0]
    _, applied = _pay(services, bp, patient, "25.00")
    assert applied == {line: D("20.00")}  # 10 of credit went first
    assert _parts(services, bp, [line]) == [D("0.00")]
    with services.db.tenant_session(bp.slug) as s:
        assert patient_payments.credit_balance(s, patient) == D("5.00")


def test_posting_key_makes_a_payment_idempotent(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=20)
    first, _ = _pay(services, bp, patient, "10.00", posting_key="agency:7:row:1", source_type="agency")
    again, _ = _pay(services, bp, patient, "10.00", posting_key="agency:7:row:1", source_type="agency")
    assert first == again
    with pytest.raises(Conflict):
        _pay(services, bp, patient, "11.00", posting_key="agency:7:row:1", source_type="agency")
    with services.db.tenant_session(bp.slug) as s:
        assert len(patient_payments.list_payments(s, patient)) == 1
        assert ledger.patient_balance(s, patient).patient == D("15.00")


def test_refund_from_credit_then_from_an_overpaid_line(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    lines = owed_visit(services, bp, patient, days_ago=50)
    _pay(services, bp, patient, "35.00")  # 25 applied, 10 credit
    # The payer later reverses the PR on the first line: the patient overpaid that line by 20.
    with services.db.tenant_session(bp.slug) as s:
        line = s.get(ClaimLine, lines[0])
        ledger.post(s, line, "patient_responsibility", D("-20.00"), source_type="test", group_code="PR")
        ledger.post(s, line, "insurance_payment", D("-20.00"), source_type="test")
        s.commit()
    assert _parts(services, bp, lines) == [D("-20.00"), D("0.00")]
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(Invalid):  # 10 credit + 20 overpaid = 30 refundable
            patient_payments.refund(s, patient, D("30.01"), method="check", reference="R1", refunded_on=date.today(),
                                    user_id=None)  # fmt: skip
        r = patient_payments.refund(s, patient, D("25.00"), method="check", reference="R1", refunded_on=date.today(),
                                    user_id=None)  # fmt: skip
        s.commit()
        assert r.kind == "refund" and [(a.claim_line_id, a.amount) for a in r.applications] == [(lines[0], D("15.00"))]
        assert patient_payments.credit_balance(s, patient) == D("0.00")
        refund_entry = s.scalar(
            select(LedgerEntry).where(LedgerEntry.kind == "refund", LedgerEntry.patient_id == patient)
        )
        assert refund_entry.amount == D("15.00") and refund_entry.patient_delta == D("15.00")
    assert _parts(services, bp, lines) == [D("-5.00"), D("0.00")]
