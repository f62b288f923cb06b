"""Payment plans: the installment schedule, patient payments counting toward installments, a missed installment
reminded first and then breaking the plan (the practice's rule), completion, one active plan per patient."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from billing import patient_payments, payment_plans, statements
from medbill.errors import Conflict, Invalid
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_patient_payments import owed_visit

D = Decimal


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


def test_schedules():
    assert payment_plans.schedule(D("100.00"), D("30.00"), "monthly", date(2026, 1, 31)) == [
        (date(2026, 1, 31), D("30.00")),
        (date(2026, 2, 28), D("30.00")),
        (date(2026, 3, 31), D("30.00")),
        (date(2026, 4, 30), D("10.00")),
    ]
    assert payment_plans.schedule(D("50.00"), D("25.00"), "biweekly", date(2026, 12, 25)) == [
        (date(2026, 12, 25), D("25.00")),
        (date(2027, 1, 8), D("25.00")),
    ]


def test_plan_validation(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(Invalid) as err:
            payment_plans.create_plan(s, bp.access, patient, total=D("10"), installment_amount=D("20"),
                                      frequency="weekly", start_date=date.today())  # fmt: skip
        assert set(err.value.errors) == {"installment_amount", "frequency"}
        payment_plans.create_plan(s, bp.access, patient, total=D("90"), installment_amount=D("30"),
                                  frequency="monthly", start_date=date.today())  # fmt: skip
        with pytest.raises(Conflict):
            payment_plans.create_plan(s, bp.access, patient, total=D("90"), installment_amount=D("30"),
                                      frequency="monthly", start_date=date.today())  # fmt: skip
        s.rollback()


def test_payments_count_toward_installments_and_complete_the_plan(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=60, owes=("40.00", "5.00"))
    start = date.today()
    with services.db.tenant_session(bp.slug) as s:
        plan = payment_plans.create_plan(s, bp.access, patient, total=D("45.00"), installment_amount=D("20.00"),
                                         frequency="biweekly", start_date=start)  # fmt: skip
        assert [(i.number, i.due_date, i.amount) for i in plan.installments] == [
            (1, start, D("20.00")), (2, start + timedelta(days=14), D("20.00")),
            (3, start + timedelta(days=28), D("5.00"))]  # fmt: skip
        for amount in ("20.00", "15.00"):
            patient_payments.post_patient_payment(s, patient, D(amount), method="card", reference="auth 77",
                                                  received_on=date.today(), user_id=None)  # fmt: skip
        s.refresh(plan)
        assert [(i.status, i.paid_amount) for i in plan.installments] == [
            ("paid", D("20.00")), ("due", D("15.00")), ("due", D("0.00"))]  # fmt: skip
        # A check after the second due date, but within the reminder days, changes nothing.
        assert payment_plans.check_plans(s, start + timedelta(days=16)).reminded == []
        patient_payments.post_patient_payment(s, patient, D("10.00"), method="cash", reference="",
                                              received_on=date.today(), user_id=None)  # fmt: skip
        s.refresh(plan)
        assert plan.status == "completed" and all(i.status == "paid" for i in plan.installments)
        assert patient_payments.account(s, patient).patient_due == D("0.00")
        s.rollback()


def test_a_missed_installment_is_reminded_then_breaks_the_plan(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=90)
    start = date.today() - timedelta(days=40)
    with services.db.tenant_session(bp.slug) as s:
        statements.update_settings(s, bp.access, {"plan_reminder_days": 7, "plan_break_days": 21})
        plan = payment_plans.create_plan(s, bp.access, patient, total=D("25.00"), installment_amount=D("10.00"),
                                         frequency="monthly", start_date=start)  # fmt: skip
        # Six days late: nothing yet.
        assert payment_plans.check_plans(s, start + timedelta(days=6)).reminded == []
        first = payment_plans.check_plans(s, start + timedelta(days=7))
        assert first.reminded == [(plan.id, 1)] and first.broken == []
        # The same day again: no second reminder.
        assert payment_plans.check_plans(s, start + timedelta(days=7)).reminded == []
        assert payment_plans.check_plans(s, start + timedelta(days=20)).broken == []
        broken = payment_plans.check_plans(s, start + timedelta(days=21))
        assert broken.broken == [plan.id]
        s.refresh(plan)
        assert plan.status == "broken" and "installment 1" in plan.end_reason
        assert [i.status for i in plan.installments] == ["missed", "cancelled", "cancelled"]
        assert plan.installments[0].reminded_on == start + timedelta(days=7)
        assert payment_plans.active_plan(s, patient) is None
        # Back in the statement cycle: selected by the next run's rules.
        settings = statements.get_settings(s)
        selected = dict(statements.select_patients(s, settings, date.today() + timedelta(days=400)))
        assert selected.get(patient) == D("25.00")
        s.rollback()


def test_a_reminder_comes_before_breaking_even_when_the_check_was_late(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    start = date.today() - timedelta(days=100)
    with services.db.tenant_session(bp.slug) as s:
        plan = payment_plans.create_plan(s, bp.access, patient, total=D("20.00"), installment_amount=D("20.00"),
                                         frequency="monthly", start_date=start)  # fmt: skip
        late = payment_plans.check_plans(s, date.today())
        assert (plan.id, 1) in late.reminded and plan.id not in late.broken
        assert plan.id in payment_plans.check_plans(s, date.today() + timedelta(days=1)).broken
        cancelled = payment_plans.create_plan(s, bp.access, patient, total=D("20.00"), installment_amount=D("5.00"),
                                              frequency="monthly", start_date=date.today())  # fmt: skip
        payment_plans.cancel_plan(s, bp.access, cancelled.id, "patient paid in full elsewhere")
        assert cancelled.status == "cancelled"
        with pytest.raises(Conflict):
            payment_plans.cancel_plan(s, bp.access, cancelled.id)
        s.rollback()
