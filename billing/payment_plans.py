"""Payment plans: a patient pays a balance in installments (monthly or every two weeks from a start date).

Patient payments count toward the installments in order (billing.patient_payments calls `record_payment`). A daily
check (jobs/statements.py `check_payment_plans`, scheduled in jobs/schedule.py) applies the practice's rule to an
installment still unpaid after its due date: `plan_reminder_days` past due it is marked missed and a reminder is
recorded; `plan_break_days` past due, once reminded, the plan is broken and the patient is back in the statement
cycle (statement runs skip only patients with an active plan). A plan whose installments are all paid is completed."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.models import Patient, PatientBillingSettings, PaymentPlan, PaymentPlanInstallment
from billing.money import ZERO, money
from medbill.errors import Conflict, Invalid, NotFound
from tenants import audit

if TYPE_CHECKING:
    from tenants.authz import PracticeAccess

FREQUENCIES = ("monthly", "biweekly")
MAX_INSTALLMENTS = 120


def _now() -> datetime:
    return datetime.now(UTC)


def add_months(start: date, months: int) -> date:
    """`start` moved by whole months, the day clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def schedule(total: Decimal, installment: Decimal, frequency: str, start: date) -> list[tuple[date, Decimal]]:
    """The installments' due dates and amounts: equal installments, the last one what remains."""
    count = int((total / installment).to_integral_value(rounding=ROUND_CEILING))
    out = []
    for n in range(count):
        due = add_months(start, n) if frequency == "monthly" else start + timedelta(days=14 * n)
        amount = installment if n < count - 1 else money(total - installment * (count - 1))
        out.append((due, amount))
    return out


def get_plan(session: Session, plan_id: int, *, for_update: bool = False) -> PaymentPlan:
    stmt = select(PaymentPlan).where(PaymentPlan.id == plan_id)
    if for_update:
        stmt = stmt.with_for_update()
    plan = session.scalar(stmt)
    if plan is None:
        raise NotFound(f"payment plan {plan_id} not found")
    return plan


def active_plan(session: Session, patient_id: int, *, for_update: bool = False) -> PaymentPlan | None:
    stmt = select(PaymentPlan).where(PaymentPlan.patient_id == patient_id, PaymentPlan.status == "active")
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def list_plans(session: Session, *, patient_id: int | None = None, status: str | None = None) -> list[PaymentPlan]:
    stmt = select(PaymentPlan).order_by(PaymentPlan.id.desc())
    if patient_id is not None:
        stmt = stmt.where(PaymentPlan.patient_id == patient_id)
    if status is not None:
        stmt = stmt.where(PaymentPlan.status == status)
    return list(session.scalars(stmt))


def create_plan(
    session: Session,
    access: PracticeAccess | None,
    patient_id: int,
    *,
    total: Decimal,
    installment_amount: Decimal,
    frequency: str,
    start_date: date,
    note: str = "",
) -> PaymentPlan:
    """A new active plan with its installments. A patient has at most one active plan."""
    errors: dict[str, list[str]] = {}
    try:
        total, installment_amount = money(total), money(installment_amount)
    except (TypeError, ValueError):
        raise Invalid("the plan is not valid", errors={"total": ["amounts must be numbers"]}) from None
    if total <= ZERO:
        errors["total"] = ["must be more than 0"]
    if installment_amount <= ZERO:
        errors["installment_amount"] = ["must be more than 0"]
    elif installment_amount > total:
        errors["installment_amount"] = ["must not exceed the total"]
    if frequency not in FREQUENCIES:
        errors["frequency"] = [f"one of {', '.join(FREQUENCIES)}"]
    if not errors and total / installment_amount > MAX_INSTALLMENTS:
        errors["installment_amount"] = [f"at most {MAX_INSTALLMENTS} installments"]
    if errors:
        raise Invalid("the plan is not valid", errors=errors)
    if session.scalar(select(Patient.id).where(Patient.id == patient_id).with_for_update()) is None:
        raise NotFound(f"patient {patient_id} not found")
    if active_plan(session, patient_id) is not None:
        raise Conflict(f"patient {patient_id} already has an active payment plan")
    plan = PaymentPlan(
        patient_id=patient_id,
        status="active",
        total=total,
        installment_amount=installment_amount,
        frequency=frequency,
        start_date=start_date,
        note=note,
        created_by_user_id=access.user_id if access else None,
    )
    session.add(plan)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # the partial unique index: someone created one concurrently
        raise Conflict(f"patient {patient_id} already has an active payment plan") from None
    for number, (due, amount) in enumerate(schedule(total, installment_amount, frequency, start_date), start=1):
        session.add(PaymentPlanInstallment(plan_id=plan.id, number=number, due_date=due, amount=amount,
                                           paid_amount=ZERO, status="due"))  # fmt: skip
    session.flush()
    if access is not None:
        audit.record_access(session, access, "payment_plan", plan.id, "create",
                            {"patient_id": patient_id, "total": str(total), "installment": str(installment_amount),
                             "frequency": frequency, "start_date": start_date.isoformat()})  # fmt: skip
    session.refresh(plan)
    return plan


def _end(plan: PaymentPlan, status: str, reason: str) -> None:
    plan.status = status
    plan.ended_at = _now()
    plan.end_reason = reason


def cancel_plan(session: Session, access: PracticeAccess | None, plan_id: int, reason: str = "") -> PaymentPlan:
    plan = get_plan(session, plan_id, for_update=True)
    if plan.status != "active":
        raise Conflict(f"payment plan {plan_id} is {plan.status}, not active")
    _end(plan, "cancelled", reason or "cancelled")
    for inst in plan.installments:
        if inst.status in ("due", "missed"):
            inst.status = "cancelled"
    session.flush()
    if access is not None:
        audit.record_access(session, access, "payment_plan", plan.id, "cancel", {"reason": reason})
    return plan


def update_plan(session: Session, access: PracticeAccess | None, plan_id: int, *, note: str) -> PaymentPlan:
    plan = get_plan(session, plan_id, for_update=True)
    plan.note = note
    session.flush()
    if access is not None:
        audit.record_access(session, access, "payment_plan", plan.id, "update", {"note": note[:200]})
    return plan


def record_payment(session: Session, patient_id: int, amount: Decimal, received_on: date) -> PaymentPlan | None:
    """Count a patient payment toward the active plan's installments, earliest unpaid first; completes the plan
    when every installment is paid. Returns the plan, if any."""
    plan = active_plan(session, patient_id, for_update=True)
    if plan is None:
        return None
    left = money(amount)
    for inst in plan.installments:
        if left <= ZERO:
            break
        if inst.status not in ("due", "missed"):
            continue
        part = min(money(inst.amount - inst.paid_amount), left)
        inst.paid_amount = money(inst.paid_amount + part)
        left -= part
        if inst.paid_amount >= inst.amount:
            inst.status = "paid"
            inst.paid_at = _now()
    if all(inst.status == "paid" for inst in plan.installments):
        _end(plan, "completed", f"all installments paid (last payment {received_on.isoformat()})")
    session.flush()
    return plan


@dataclass
class PlanCheck:
    reminded: list[tuple[int, int]] = field(default_factory=list)  # (plan id, installment number)
    broken: list[int] = field(default_factory=list)


def plan_rules(session: Session) -> tuple[int, int]:
    settings = session.get(PatientBillingSettings, 1)
    if settings is None:
        return 5, 30
    return settings.plan_reminder_days, settings.plan_break_days


def check_plans(session: Session, today: date, *, practice_id: int | None = None) -> PlanCheck:
    """The daily check: a missed installment gets a reminder, then (once reminded and past the break limit) the
    plan breaks. Reminders happen once per installment; running the check twice a day changes nothing more."""
    reminder_days, break_days = plan_rules(session)
    result = PlanCheck()
    plans = session.scalars(
        select(PaymentPlan).where(PaymentPlan.status == "active").order_by(PaymentPlan.id).with_for_update()
    ).all()
    for plan in plans:
        for inst in plan.installments:
            if inst.status not in ("due", "missed"):
                continue
            overdue = (today - inst.due_date).days
            if overdue < reminder_days:
                continue
            if inst.reminded_on is None:
                inst.status = "missed"
                inst.reminded_on = today
                result.reminded.append((plan.id, inst.number))
                audit.record(session, user_id=None, practice_id=practice_id, object_type="payment_plan",
                             object_id=plan.id, action="reminder",
                             detail={"installment": inst.number, "due_date": inst.due_date.isoformat(),
                                     "unpaid": str(money(inst.amount - inst.paid_amount))})  # fmt: skip
            elif overdue >= break_days and inst.reminded_on < today:
                _end(plan, "broken", f"installment {inst.number} due {inst.due_date.isoformat()} missed")
                for other in plan.installments:
                    if other.status == "due":
                        other.status = "cancelled"
                result.broken.append(plan.id)
                audit.record(session, user_id=None, practice_id=practice_id, object_type="payment_plan",
                             object_id=plan.id, action="broken", detail={"installment": inst.number})  # fmt: skip
                break
    session.flush()
    return result
