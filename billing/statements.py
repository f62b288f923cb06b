"""Statement runs: who gets a patient statement this cycle, what it says, where it is stored.

The practice's cycle (`PatientBillingSettings.cycle_days`, counted from `cycle_anchor`) allows one run per cycle:
the run row is keyed by the cycle's first day, so starting a second run in the same cycle (scheduler or biller)
creates nothing and answers with the existing run. A run, in order:

1. applies every patient's unapplied credit to what the patient owes (billing.patient_payments.apply_credits);
2. selects the patients whose *due* balance is at least the practice minimum, where due means the patient part of
   the ledger on visits insurance owes nothing more on (a visit with any line still pending with a payer is not
   billed to the patient), and who have no statement in this cycle, no open collection agency
   placement and no active payment plan;
3. for each: itemised visits, aging by date of service, the dunning message of the oldest balance's age
   (0/30/60/90/120 days), rendered to PDF, stored under the practice's prefix and recorded as a `Statement` (the
   patient's history); the run's counts are updated as it goes (its progress);
4. writes the print vendor's CSV batch file (one row per statement: recipient name and mailing address, account
   number, statement date, amount due, storage key) and marks the run done.

A retried run skips patients already statemented by it, so a failure halfway through resumes where it stopped."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing import patient_payments, rules
from billing.models import (
    AgencyPlacement,
    BillingIdentity,
    Claim,
    ClaimLine,
    Guarantor,
    Patient,
    PatientBillingSettings,
    PaymentPlan,
    Provider,
    Statement,
    StatementRun,
)
from billing.money import ZERO, money
from integrations import csvsafe
from medbill.errors import Invalid, NotFound
from tenants import audit

if TYPE_CHECKING:
    from integrations.storage import Storage
    from tenants.authz import PracticeAccess

MESSAGE_LEVELS = (0, 30, 60, 90, 120)
DEFAULT_MESSAGES = {
    0: "Thank you for choosing us. This statement shows the part of your visits your insurance did not cover.",
    30: "REMINDER: Your balance is now more than 30 days old. Please pay the amount due or call us today.",
    60: "SECOND NOTICE: Your balance is more than 60 days past due. Please pay now or call to set up a payment plan.",
    90: "FINAL NOTICE: Your balance is more than 90 days past due. Please pay within 10 days to avoid further action.",
    120: "ACCOUNT PAST DUE 120 DAYS: Unless paid or a payment plan is agreed, your account may be placed with a "
    "collection agency.",
}
DEFAULT_INSTRUCTIONS = (
    "Pay by check (write your account number on it) to the address below, or call our billing office to pay by card. "
    "If you have a question about your bill or need a payment plan, please call us."
)
CSV_COLUMNS = (
    "statement_id",
    "account_number",
    "patient_name",
    "recipient_name",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "statement_date",
    "amount_due",
    "storage_key",
)
SETTINGS_FIELDS = (
    "cycle_days",
    "cycle_anchor",
    "minimum_balance",
    "scheduled_runs",
    "messages",
    "payment_instructions",
    "plan_reminder_days",
    "plan_break_days",
)


# --- settings and cycles --------------------------------------------------------------------------------------------


def get_settings(session: Session) -> PatientBillingSettings:
    """The practice's settings (the defaults, written once, when it has none yet)."""
    settings = session.get(PatientBillingSettings, 1)
    if settings is None:
        session.execute(insert(PatientBillingSettings).values(id=1).on_conflict_do_nothing())
        settings = session.get(PatientBillingSettings, 1)
    return settings


def update_settings(session: Session, access: PracticeAccess | None, data: dict) -> PatientBillingSettings:
    settings = get_settings(session)
    errors: dict[str, list[str]] = {}
    unknown = set(data) - set(SETTINGS_FIELDS)
    for name in unknown:
        errors[name] = ["unknown setting"]
    if "cycle_days" in data and not (7 <= int(data["cycle_days"]) <= 120):
        errors["cycle_days"] = ["between 7 and 120"]
    if "minimum_balance" in data and money(data["minimum_balance"]) < ZERO:
        errors["minimum_balance"] = ["must not be negative"]
    if "messages" in data:
        bad = [k for k in data["messages"] if k not in {str(level) for level in MESSAGE_LEVELS}]
        if bad:
            errors["messages"] = [f"keys are ages in days: {', '.join(map(str, MESSAGE_LEVELS))}"]
    for name in ("plan_reminder_days", "plan_break_days"):
        if name in data and int(data[name]) < 0:
            errors[name] = ["must not be negative"]
    reminder = int(data.get("plan_reminder_days", settings.plan_reminder_days))
    if int(data.get("plan_break_days", settings.plan_break_days)) <= reminder:
        errors.setdefault("plan_break_days", []).append("must be later than the reminder")
    if errors:
        raise Invalid("the patient billing settings are not valid", errors=errors)
    for name, value in data.items():
        setattr(settings, name, money(value) if name == "minimum_balance" else value)
    settings.updated_at = datetime.now(UTC)
    session.flush()
    if access is not None:
        audit.record_access(session, access, "patient_billing_settings", 1, "update",
                            {k: str(v) for k, v in data.items()})  # fmt: skip
    return settings


def cycle_start(settings: PatientBillingSettings, day: date) -> date:
    """The first day of the cycle `day` falls in."""
    offset = (day - settings.cycle_anchor).days // settings.cycle_days
    return settings.cycle_anchor + timedelta(days=offset * settings.cycle_days)


def message_level(age_days: int) -> int:
    return max(level for level in MESSAGE_LEVELS if age_days >= level)


def message_for(settings: PatientBillingSettings, level: int) -> str:
    return (settings.messages or {}).get(str(level)) or DEFAULT_MESSAGES[level]


def aging_bucket(age_days: int) -> str:
    if age_days <= 30:
        return "current"
    if age_days <= 60:
        return "31_60"
    if age_days <= 90:
        return "61_90"
    if age_days <= 120:
        return "91_120"
    return "over_120"


# --- selection ------------------------------------------------------------------------------------------------------


def due_balances(session: Session):
    """Per patient, what the patient owes now (a subquery: patient_id, due): the rule of `billing.rules` (the patient
    part of the visits insurance is done with; a visit is pending while any of its services has an insurance part
    above zero)."""
    return rules.owed_now_by_patient_sql()


def select_patients(
    session: Session, settings: PatientBillingSettings, cycle_first_day: date
) -> list[tuple[int, Decimal]]:
    """(patient id, due) of the patients a run of the cycle starting on `cycle_first_day` bills, by patient id."""
    rows = session.execute(selection(session, settings, cycle_first_day)).all()
    return [(pid, money(amount)) for pid, amount in rows]


def selection(session: Session, settings: PatientBillingSettings, cycle_first_day: date):
    """The statement of `select_patients` (patient_id, due), also counted whole by the biller's work queues."""
    due = due_balances(session)
    return (
        select(due.c.patient_id, due.c.due)
        .where(
            due.c.due > 0,
            due.c.due >= settings.minimum_balance,
            ~exists().where(
                and_(Statement.patient_id == due.c.patient_id, Statement.statement_date >= cycle_first_day)
            ),
            ~exists().where(
                and_(AgencyPlacement.patient_id == due.c.patient_id, AgencyPlacement.recalled_at.is_(None))
            ),
            ~exists().where(and_(PaymentPlan.patient_id == due.c.patient_id, PaymentPlan.status == "active")),
        )
        .order_by(due.c.patient_id)
    )


# --- runs -----------------------------------------------------------------------------------------------------------


def start_run(
    session: Session,
    access: PracticeAccess | None,
    *,
    today: date | None = None,
    trigger: str = "user",
) -> tuple[StatementRun, bool]:
    """The run of today's cycle: (run, True) when created now, (the existing run, False) when the cycle already has
    one — a second run in a cycle does nothing."""
    today = today or date.today()
    settings = get_settings(session)
    start = cycle_start(settings, today)
    run_id = session.execute(
        insert(StatementRun)
        .values(
            cycle_start=start,
            statement_date=today,
            status="running",
            trigger=trigger,
            started_by_user_id=access.user_id if access else None,
        )
        .on_conflict_do_nothing(index_elements=["cycle_start"])
        .returning(StatementRun.id)
    ).scalar()
    created = run_id is not None
    run = session.scalar(select(StatementRun).where(StatementRun.cycle_start == start))
    if access is not None:
        audit.record_access(session, access, "statement_run", run.id, "start" if created else "start_refused",
                            {"cycle_start": start.isoformat(), "created": created})  # fmt: skip
    return run, created


def get_run(session: Session, run_id: int) -> StatementRun:
    run = session.get(StatementRun, run_id)
    if run is None:
        raise NotFound(f"statement run {run_id} not found")
    return run


def list_runs(session: Session, *, limit: int = 50) -> list[StatementRun]:
    return list(session.scalars(select(StatementRun).order_by(StatementRun.cycle_start.desc()).limit(limit)))


def run_statements(session: Session, run_id: int) -> list[Statement]:
    return list(session.scalars(select(Statement).where(Statement.run_id == run_id).order_by(Statement.id)))


def patient_statements(session: Session, patient_id: int) -> list[Statement]:
    return list(
        session.scalars(
            select(Statement)
            .where(Statement.patient_id == patient_id)
            .order_by(Statement.statement_date.desc(), Statement.id.desc())
        )
    )


def get_statement(session: Session, statement_id: int) -> Statement:
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise NotFound(f"statement {statement_id} not found")
    return statement


def statement_key(practice_slug: str, run: StatementRun, patient_id: int) -> str:
    from integrations.storage import practice_key

    return practice_key(practice_slug, "statements", f"run-{run.id}", f"statement-{patient_id}.pdf")


def batch_key(practice_slug: str, run: StatementRun) -> str:
    from integrations.storage import practice_key

    return practice_key(practice_slug, "statements", f"run-{run.id}", "print-batch.csv")


@dataclass(frozen=True)
class Mailing:
    recipient_name: str
    address_line1: str
    address_line2: str
    city: str
    state: str
    postal_code: str

    def lines(self) -> list[str]:
        return [x for x in (self.address_line1, self.address_line2) if x] + [
            f"{self.city}, {self.state} {_zip(self.postal_code)}"
        ]


def _zip(code: str) -> str:
    return f"{code[:5]}-{code[5:]}" if len(code) == 9 else code


def _phone(number: str) -> str:
    digits = "".join(c for c in number if c.isdigit())
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}" if len(digits) == 10 else number


def _name(patient: Patient) -> str:
    middle = f" {patient.middle_name[:1]}." if patient.middle_name else ""
    return f"{patient.first_name}{middle} {patient.last_name}"


def mailing_for(session: Session, patient: Patient) -> Mailing:
    """The guarantor's name and address when the patient has one, else the patient's."""
    g = session.scalar(select(Guarantor).where(Guarantor.patient_id == patient.id))
    who = g if g is not None else patient
    name = f"{g.first_name} {g.last_name}" if g is not None else _name(patient)
    return Mailing(name, who.address_line1, who.address_line2 or "", who.city, who.state, who.postal_code)


def build_document(session: Session, settings: PatientBillingSettings, patient: Patient, statement_date: date):
    """The statement of `patient` as of `statement_date`, from the ledger: (document, due, oldest age, level)."""
    from integrations.pdf.statement import StatementDocument, StatementLine, StatementVisit

    identity = session.get(BillingIdentity, 1)
    lines = [
        ln
        for ln in patient_payments.patient_lines(session, patient.id)
        if not ln.pending_with_insurance and ln.patient_part
    ]
    by_visit: dict[int, list] = {}
    for ln in lines:
        by_visit.setdefault(ln.encounter_id, []).append(ln)
    providers = _provider_names(session, [ln.claim_id for ln in lines])
    visits = []
    aging = {key: ZERO for key in ("current", "31_60", "61_90", "91_120", "over_120")}
    oldest = 0
    for group in by_visit.values():
        first = group[0]
        visits.append(
            StatementVisit(
                date_of_service=first.date_of_service,
                provider=providers.get(first.claim_id, ""),
                lines=[
                    StatementLine(
                        ln.procedure_code, ln.charges, ln.insurance_paid, ln.adjusted, ln.patient_paid, ln.patient_part
                    )  # fmt: skip
                    for ln in group
                ],
            )
        )
        for ln in group:
            age = (statement_date - ln.date_of_service).days
            aging[aging_bucket(age)] += ln.patient_part
            if ln.patient_part > ZERO:
                oldest = max(oldest, age)
    due = money(sum((ln.patient_part for ln in lines), ZERO))
    level = message_level(oldest)
    mailing = mailing_for(session, patient)
    practice_name = identity.organization_name if identity else "Your provider"
    address = (
        [identity.address_line1, *([identity.address_line2] if identity.address_line2 else []),
         f"{identity.city}, {identity.state} {_zip(identity.postal_code)}"]
        if identity
        else []
    )  # fmt: skip
    doc = StatementDocument(
        practice_name=practice_name,
        practice_address=address,
        practice_phone=_phone(identity.contact_phone) if identity else "",
        recipient_name=mailing.recipient_name,
        recipient_address=mailing.lines(),
        patient_name=_name(patient),
        account_number=patient.account_number,
        statement_date=statement_date,
        due_date=statement_date + timedelta(days=settings.cycle_days),
        amount_due=due,
        visits=sorted(visits, key=lambda v: v.date_of_service),
        aging={k: money(v) for k, v in aging.items()},
        message=message_for(settings, level),
        payment_instructions=settings.payment_instructions or DEFAULT_INSTRUCTIONS,
        credit=patient_payments.credit_balance(session, patient.id),
    )
    return doc, due, oldest, level, mailing


def _provider_names(session: Session, claim_ids: list[int]) -> dict[int, str]:
    if not claim_ids:
        return {}
    rows = session.execute(
        select(Claim.id, Provider.first_name, Provider.last_name, Provider.credential)
        .join(Provider, Provider.id == Claim.rendering_provider_id)
        .where(Claim.id.in_(set(claim_ids)))
    ).all()
    return {cid: f"{first} {last}, {cred}".strip(", ") for cid, first, last, cred in rows}


Progress = Callable[[StatementRun], None]


def execute_run(
    session: Session,
    run_id: int,
    *,
    practice_slug: str,
    storage: Storage,
    progress: Progress | None = None,
    render: Callable | None = None,
) -> StatementRun:
    """Carry out a run (see the module's docstring). `progress(run)` is called after the selection and after each
    statement (the job commits there, so the counts are visible while it works). Running a done run does nothing."""
    from integrations.pdf.statement import render_statement

    render = render or render_statement
    run = session.scalar(select(StatementRun).where(StatementRun.id == run_id).with_for_update())
    if run is None:
        raise NotFound(f"statement run {run_id} not found")
    if run.status == "done":
        return run
    settings = get_settings(session)
    for patient_id in patient_payments.patients_with_credit(session):
        patient_payments.apply_credits(session, patient_id)
    session.flush()
    already = set(session.scalars(select(Statement.patient_id).where(Statement.run_id == run.id)))
    selected = [(pid, due) for pid, due in select_patients(session, settings, run.cycle_start) if pid not in already]
    run.patients_selected = len(already) + len(selected)
    run.status = "running"
    if progress:
        progress(run)
    for patient_id, _due in selected:
        patient = session.get(Patient, patient_id)
        doc, amount, oldest, level, _ = build_document(session, settings, patient, run.statement_date)
        key = statement_key(practice_slug, run, patient_id)
        storage.put(key, render(doc), "application/pdf")
        session.add(
            Statement(
                patient_id=patient_id,
                run_id=run.id,
                statement_date=run.statement_date,
                patient_balance=amount,
                credit=doc.credit,
                oldest_age_days=oldest,
                message_level=level,
                aging={k: str(v) for k, v in doc.aging.items()},
                storage_key=key,
            )
        )
        run.statements_done += 1
        run.total_due = money(run.total_due + amount)
        session.flush()
        if progress:
            progress(run)
    rows = _batch_rows(session, run)
    if rows:  # a run that bills nobody sends the print vendor nothing
        buffer = io.StringIO()
        writer = csvsafe.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        key = batch_key(practice_slug, run)
        storage.put(key, buffer.getvalue().encode("utf-8"), "text/csv")
        run.batch_storage_key = key
    run.status = "done"
    run.finished_at = datetime.now(UTC)
    run.error = ""
    session.flush()
    audit.record(session, user_id=run.started_by_user_id, practice_id=practice_id_of(session, practice_slug),
                 object_type="statement_run",
                 object_id=run.id, action="done",
                 detail={"statements": run.statements_done, "total_due": str(run.total_due)})  # fmt: skip
    if progress:
        progress(run)
    return run


def _batch_rows(session: Session, run: StatementRun) -> list[dict]:
    rows = []
    for statement, patient in session.execute(
        select(Statement, Patient).join(Patient, Patient.id == Statement.patient_id).where(Statement.run_id == run.id)
        .order_by(Statement.id)
    ).all():  # fmt: skip
        mailing = mailing_for(session, patient)
        rows.append(
            {
                "statement_id": statement.id,
                "account_number": patient.account_number,
                "patient_name": _name(patient),
                "recipient_name": mailing.recipient_name,
                "address_line1": mailing.address_line1,
                "address_line2": mailing.address_line2,
                "city": mailing.city,
                "state": mailing.state,
                "postal_code": mailing.postal_code,
                "statement_date": csvsafe.Number(statement.statement_date.isoformat()),
                "amount_due": csvsafe.Number(statement.patient_balance),
                "storage_key": statement.storage_key,
            }
        )
    return rows


def practice_id_of(session: Session, practice_slug: str) -> int | None:
    """The practice's id in the shared registry (for audit entries written by jobs)."""
    from tenants.models import Practice

    return session.scalar(select(Practice.id).where(Practice.slug == practice_slug))


def mark_failed(session: Session, run_id: int, error: str) -> None:
    run = session.get(StatementRun, run_id)
    if run is not None and run.status != "done":
        run.status = "failed"
        run.error = error[:2000]
        session.flush()


def claim_line_ids_of(session: Session, patient_id: int) -> list[int]:
    """The patient's claim lines (for pickers in the portal)."""
    return list(
        session.scalars(
            select(ClaimLine.id).join(Claim, Claim.id == ClaimLine.claim_id).where(Claim.patient_id == patient_id)
        )
    )
