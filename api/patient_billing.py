"""Patient billing: statement runs, patient payments and refunds, credits, payment plans (API).

Thin views over billing.patient_payments, billing.statements and billing.payment_plans. Reads need `patients:read`
(an agency user sees only the accounts placed with it, and no runs or plans), payments, refunds and plans need
`payments:write`, statement runs and the practice's statement settings `statements:write`. Every read of a patient's
account and every write is audited."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from flask import current_app, redirect
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.security import access, db_session, policy
from api.setup import Id, Money
from billing import patient_payments, patients, payment_plans, statements
from billing.models import PaymentPlan, Statement, StatementRun
from integrations.storage import StorageError
from medbill.errors import Invalid, NotFound
from tenants import audit

blp = Blueprint(
    "patient_billing",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Patient billing: statement runs, patient payments and refunds, credits, payment plans",
)

POSITIVE = validate.Range(min=Decimal("0.01"))


# --- schemas --------------------------------------------------------------------------------------------------------


class PatientPaymentIn(Schema):
    amount = Money(required=True, validate=POSITIVE)
    method = fields.String(required=True, validate=validate.OneOf(["cash", "check", "card", "eft", "other"]))
    # A check number or card authorisation reference (never a card number).
    reference = fields.String(load_default="", validate=validate.Length(max=100))
    received_on = fields.Date(load_default=None)
    # Apply to these lines only; default: oldest date of service first.
    claim_line_ids = fields.List(Id(), load_default=None, validate=validate.Length(max=200))
    # A client's key that makes a retried post add nothing.
    posting_key = fields.String(load_default=None, validate=validate.Length(min=1, max=150))
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    # A check with the number and amount of one already posted for the patient that day answers 409 unless true.
    confirm_duplicate = fields.Boolean(load_default=False)


class PatientRefundIn(Schema):
    amount = Money(required=True, validate=POSITIVE)
    method = fields.String(required=True, validate=validate.OneOf(["cash", "check", "card", "eft", "other"]))
    reference = fields.String(load_default="", validate=validate.Length(max=100))
    refunded_on = fields.Date(load_default=None)
    posting_key = fields.String(load_default=None, validate=validate.Length(min=1, max=150))
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class PatientPaymentApplicationOut(Schema):
    claim_line_id = fields.Integer(required=True)
    amount = Money(required=True)


class PatientPaymentOut(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    kind = fields.String(required=True)
    method = fields.String(required=True)
    reference = fields.String(required=True)
    amount = Money(required=True)
    received_on = fields.Date(required=True)
    source_type = fields.String(required=True)
    note = fields.String(required=True)
    applications = fields.List(fields.Nested(PatientPaymentApplicationOut), required=True)
    applied = Money(required=True)
    created_at = fields.DateTime(required=True)


class PatientLineOut(Schema):
    claim_line_id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    date_of_service = fields.Date(required=True)
    procedure_code = fields.String(required=True)
    charges = Money(required=True)
    insurance_paid = Money(required=True)
    adjusted = Money(required=True)
    patient_paid = Money(required=True)
    insurance_part = Money(required=True)
    patient_part = Money(required=True)
    pending_with_insurance = fields.Boolean(required=True)


class PatientStatementOut(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    run_id = fields.Integer(required=True)
    statement_date = fields.Date(required=True)
    patient_balance = Money(required=True)
    oldest_age_days = fields.Integer(required=True)
    message_level = fields.Integer(required=True)
    aging = fields.Dict(required=True)
    download_url = fields.String(allow_none=True)


class PaymentPlanInstallmentOut(Schema):
    number = fields.Integer(required=True)
    due_date = fields.Date(required=True)
    amount = Money(required=True)
    paid_amount = Money(required=True)
    status = fields.String(required=True)
    reminded_on = fields.Date(allow_none=True)


class PaymentPlanOut(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    status = fields.String(required=True)
    total = Money(required=True)
    installment_amount = Money(required=True)
    frequency = fields.String(required=True)
    start_date = fields.Date(required=True)
    note = fields.String(required=True)
    end_reason = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    ended_at = fields.DateTime(allow_none=True)
    installments = fields.List(fields.Nested(PaymentPlanInstallmentOut), required=True)


class PatientAccountOut(Schema):
    patient_id = fields.Integer(required=True)
    patient_due = Money(required=True, metadata={"description": "patient part on visits insurance is done with"})
    patient_pending = Money(required=True, metadata={"description": "patient part on visits insurance still owes on"})
    insurance_balance = Money(required=True)
    credit = Money(required=True)
    lines = fields.List(fields.Nested(PatientLineOut), required=True)
    statements = fields.List(fields.Nested(PatientStatementOut), required=True)
    plans = fields.List(fields.Nested(PaymentPlanOut), required=True)
    payments = fields.List(fields.Nested(PatientPaymentOut), required=True)


class PatientCreditApplied(Schema):
    applied = Money(required=True)
    credit = Money(required=True)


class StatementRunIn(Schema):
    statement_date = fields.Date(load_default=None, metadata={"description": "default today; picks the cycle"})


class StatementRunOut(Schema):
    id = fields.Integer(required=True)
    cycle_start = fields.Date(required=True)
    statement_date = fields.Date(required=True)
    status = fields.String(required=True)
    trigger = fields.String(required=True)
    job_id = fields.String(allow_none=True)
    patients_selected = fields.Integer(required=True)
    statements_done = fields.Integer(required=True)
    total_due = Money(required=True)
    batch_storage_key = fields.String(required=True)
    batch_download_url = fields.String(allow_none=True)
    error = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)


class StatementRunStarted(Schema):
    created = fields.Boolean(required=True)
    message = fields.String(required=True)
    run = fields.Nested(StatementRunOut, required=True)


class StatementRunDetail(StatementRunOut):
    statements = fields.List(fields.Nested(PatientStatementOut), required=True)


class StatementRunList(Schema):
    items = fields.List(fields.Nested(StatementRunOut), required=True)


class PatientBillingSettingsSchema(Schema):
    cycle_days = fields.Integer(validate=validate.Range(min=7, max=120))
    cycle_anchor = fields.Date()
    minimum_balance = Money(validate=validate.Range(min=0))
    scheduled_runs = fields.Boolean()
    messages = fields.Dict(keys=fields.String(validate=validate.OneOf(["0", "30", "60", "90", "120"])),
                           values=fields.String(validate=validate.Length(max=500)))  # fmt: skip
    payment_instructions = fields.String(validate=validate.Length(max=2000))
    plan_reminder_days = fields.Integer(validate=validate.Range(min=0, max=365))
    plan_break_days = fields.Integer(validate=validate.Range(min=1, max=365))


class PaymentPlanIn(Schema):
    patient_id = Id(required=True)
    total = Money(required=True, validate=POSITIVE)
    installment_amount = Money(required=True, validate=POSITIVE)
    frequency = fields.String(required=True, validate=validate.OneOf(payment_plans.FREQUENCIES))
    start_date = fields.Date(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class PaymentPlanPatch(Schema):
    note = fields.String(required=True, validate=validate.Length(max=2000))


class PaymentPlanCancel(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=500))


class PaymentPlanListArgs(Schema):
    patient_id = Id(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(["active", "completed", "broken", "cancelled"]))


class PaymentPlanList(Schema):
    items = fields.List(fields.Nested(PaymentPlanOut), required=True)


# --- helpers --------------------------------------------------------------------------------------------------------


def _storage():
    return current_app.extensions["medbill"].storage


def _link(key: str, name: str) -> str | None:
    if not key:
        return None
    try:
        return _storage().presigned_url(key, download_name=name)
    except StorageError:
        return None


def _statement(st: Statement, *, with_link: bool = True) -> dict:
    return {
        "id": st.id,
        "patient_id": st.patient_id,
        "run_id": st.run_id,
        "statement_date": st.statement_date,
        "patient_balance": st.patient_balance,
        "oldest_age_days": st.oldest_age_days,
        "message_level": st.message_level,
        "aging": st.aging,
        # The audited route, never the storage link itself: every download of a statement is recorded.
        "download_url": (
            f"/api/v1/practices/{access().slug}/patients/{st.patient_id}/statements/{st.id}/pdf"
            if with_link and st.storage_key
            else None
        ),
    }


def _payment(p) -> dict:
    apps = [{"claim_line_id": a.claim_line_id, "amount": a.amount} for a in p.applications]
    return {
        "id": p.id, "patient_id": p.patient_id, "kind": p.kind, "method": p.method, "reference": p.reference,
        "amount": p.amount, "received_on": p.received_on, "source_type": p.source_type, "note": p.note,
        "applications": apps, "applied": sum((a["amount"] for a in apps), 0), "created_at": p.created_at,
    }  # fmt: skip


def _run(run: StatementRun) -> dict:
    out = {c: getattr(run, c) for c in StatementRunOut._declared_fields if hasattr(run, c)}
    out["batch_download_url"] = (
        f"/api/v1/practices/{access().slug}/statement-runs/{run.id}/batch" if run.batch_storage_key else None
    )
    return out


def _patient(session, patient_id: int):
    """The patient, if the caller may see it (an agency user: only placed accounts); the read is audited."""
    return patients.get_patient(session, access(), patient_id)


def _practice_staff_only(what: str) -> None:
    if access().placed_only:
        raise NotFound(f"{what} not found")


# --- a patient's account, payments, refunds, credits ----------------------------------------------------------------


@blp.route("/patients/<id:patient_id>/account", methods=["GET"])
@policy("patients:read")
@blp.response(200, PatientAccountOut)
def get_account(slug: str, patient_id: int):
    """What the patient owes (billable now, and still pending with insurance), the credit, the lines, the
    statements (with PDF links), payment plans and payments."""
    session = db_session()
    _patient(session, patient_id)
    acct = patient_payments.account(session, patient_id)
    body = {
        "patient_id": patient_id,
        "patient_due": acct.patient_due,
        "patient_pending": acct.patient_pending,
        "insurance_balance": acct.insurance_balance,
        "credit": acct.credit,
        "lines": [line.__dict__ for line in acct.lines],
        "statements": [_statement(st) for st in statements.patient_statements(session, patient_id)],
        "plans": payment_plans.list_plans(session, patient_id=patient_id),
        "payments": [_payment(p) for p in patient_payments.list_payments(session, patient_id)],
    }
    audit.record_access(session, access(), "patient_account", patient_id, "read")
    session.commit()
    return body


@blp.route("/patients/<id:patient_id>/payments", methods=["POST"])
@policy("payments:write")
@blp.arguments(PatientPaymentIn)
@blp.response(201, PatientPaymentOut)
def post_payment(body, slug: str, patient_id: int):
    """Post a patient payment: applied oldest date of service first (or to the chosen lines); what is beyond what
    the patient owes is kept as credit. With `posting_key`, posting again returns the first payment."""
    session = db_session()
    _patient(session, patient_id)
    payment = patient_payments.post_patient_payment(
        session, patient_id, body["amount"], method=body["method"], reference=body["reference"],
        received_on=body["received_on"] or date.today(), user_id=access().user_id, source_type="user",
        posting_key=body["posting_key"], claim_line_ids=body["claim_line_ids"], note=body["note"], access=access(),
        confirm_duplicate=body["confirm_duplicate"],
    )  # fmt: skip
    out = _payment(payment)
    session.commit()
    return out


@blp.route("/patients/<id:patient_id>/refunds", methods=["POST"])
@policy("payments:write")
@blp.arguments(PatientRefundIn)
@blp.response(201, PatientPaymentOut)
def post_refund(body, slug: str, patient_id: int):
    """Refund the patient: from unapplied credit first, then from overpaid lines; never more than is refundable."""
    session = db_session()
    _patient(session, patient_id)
    refund = patient_payments.refund(
        session, patient_id, body["amount"], method=body["method"], reference=body["reference"],
        refunded_on=body["refunded_on"] or date.today(), user_id=access().user_id, posting_key=body["posting_key"],
        note=body["note"], access=access(),
    )  # fmt: skip
    out = _payment(refund)
    session.commit()
    return out


@blp.route("/patients/<id:patient_id>/credits/apply", methods=["POST"])
@policy("payments:write")
@blp.response(200, PatientCreditApplied)
def apply_credit(slug: str, patient_id: int):
    """Apply the patient's credit to what the patient owes now (runs also do this automatically)."""
    session = db_session()
    _patient(session, patient_id)
    applied = patient_payments.apply_credits(session, patient_id, user_id=access().user_id)
    audit.record_access(session, access(), "patient_credit", patient_id, "apply", {"applied": str(applied)})
    credit = patient_payments.credit_balance(session, patient_id)
    session.commit()
    return {"applied": applied, "credit": credit}


@blp.route("/patients/<id:patient_id>/statements/<id:statement_id>/pdf", methods=["GET"])
@policy("patients:read")
@blp.response(302)
def statement_pdf(slug: str, patient_id: int, statement_id: int):
    """The statement's PDF: a redirect to a short-lived link."""
    session = db_session()
    _patient(session, patient_id)
    st = statements.get_statement(session, statement_id)
    if st.patient_id != patient_id:
        raise NotFound(f"statement {statement_id} not found")
    url = _link(st.storage_key, f"statement-{st.statement_date.isoformat()}.pdf")
    if url is None:
        raise NotFound(f"the PDF of statement {statement_id} is not in storage")
    audit.record_access(session, access(), "statement", statement_id, "download")
    session.commit()
    return redirect(url, code=302)


# --- statement runs and settings ------------------------------------------------------------------------------------


@blp.route("/statement-runs", methods=["GET"])
@policy("patients:read")
@blp.response(200, StatementRunList)
def list_runs(slug: str):
    """The practice's statement runs, newest cycle first."""
    _practice_staff_only("statement runs")
    return {"items": [_run(r) for r in statements.list_runs(db_session())]}


@blp.route("/statement-runs", methods=["POST"])
@policy("statements:write")
@blp.arguments(StatementRunIn)
@blp.response(202, StatementRunStarted)
def start_run(body, slug: str):
    """Start the statement run of the current cycle (a background job on the `statements` queue). A cycle has one
    run: when it already has one, nothing starts and the answer says so, with that run."""
    if body["statement_date"] is not None and body["statement_date"] > date.today():
        raise Invalid("a statement run cannot be dated in the future", errors={"statement_date": ["today or earlier"]})
    services = current_app.extensions["medbill"]
    session = db_session()
    run, created = statements.start_run(session, access(), today=body["statement_date"], trigger="user")
    if created:
        run.job_id = services.dispatcher.enqueue_after_commit(
            session, "statements", "jobs.statements.run_statements", slug, run.id,
            meta={"user_id": access().user_id, "practice": slug, "kind": "statement_run"}, timeout=3600,
        )  # fmt: skip
        message = f"statement run {run.id} started for the cycle from {run.cycle_start.isoformat()}"
    elif run.status != "done" and (
        resumed := services.dispatcher.ensure_pending(
            session,
            run.job_id,
            "statements",
            "jobs.statements.run_statements",
            slug,
            run.id,
            meta={"user_id": access().user_id, "practice": slug, "kind": "statement_run"},
            timeout=3600,
        )
    ):
        # The cycle's run is unfinished and no job is carrying it out (lost with Redis, or out of retries): it
        # resumes where it stopped (statements already made are kept).
        run.job_id = resumed
        message = f"statement run {run.id} of the cycle from {run.cycle_start.isoformat()} was not running: resumed"
    else:
        message = (
            f"the cycle from {run.cycle_start.isoformat()} already has statement run {run.id} ({run.status}): "
            "nothing was started"
        )
    session.flush()
    out = {"created": created, "message": message, "run": _run(run)}
    session.commit()
    return out


@blp.route("/statement-runs/<id:run_id>", methods=["GET"])
@policy("patients:read")
@blp.response(200, StatementRunDetail)
def get_run(slug: str, run_id: int):
    """A run's progress (patients selected, statements done) and, once done, its statements and the batch file."""
    _practice_staff_only(f"statement run {run_id}")
    session = db_session()
    run = statements.get_run(session, run_id)
    out = _run(run) | {
        "statements": [_statement(st, with_link=False) for st in statements.run_statements(session, run_id)]
    }
    audit.record_access(session, access(), "statement_run", run_id, "read")
    session.commit()
    return out


@blp.route("/statement-runs/<id:run_id>/batch", methods=["GET"])
@policy("patients:read")
@blp.response(302)
def statement_run_batch(slug: str, run_id: int):
    """The run's print-vendor batch file (CSV): a redirect to a short-lived link; every download is audited."""
    _practice_staff_only(f"statement run {run_id}")
    session = db_session()
    run = statements.get_run(session, run_id)
    url = _link(run.batch_storage_key, f"statements-{run.cycle_start.isoformat()}.csv")
    if url is None:
        raise NotFound(f"statement run {run_id} has no batch file in storage")
    audit.record_access(session, access(), "statement_run", run_id, "download")
    session.commit()
    return redirect(url, code=302)


@blp.route("/patient-billing/settings", methods=["GET"])
@policy("patients:read")
@blp.response(200, PatientBillingSettingsSchema)
def get_settings(slug: str):
    """The practice's statement cycle, minimum balance, messages and payment plan rules."""
    _practice_staff_only("settings")
    session = db_session()
    settings = statements.get_settings(session)
    session.commit()
    return settings


@blp.route("/patient-billing/settings", methods=["PUT"])
@policy("statements:write")
@blp.arguments(PatientBillingSettingsSchema)
@blp.response(200, PatientBillingSettingsSchema)
def put_settings(body, slug: str):
    """Change some of the settings (the fields sent)."""
    session = db_session()
    settings = statements.update_settings(session, access(), body)
    session.commit()
    return settings


# --- payment plans --------------------------------------------------------------------------------------------------


@blp.route("/payment-plans", methods=["GET"])
@policy("patients:read")
@blp.arguments(PaymentPlanListArgs, location="query")
@blp.response(200, PaymentPlanList)
def list_plans(args, slug: str):
    """Payment plans, newest first; by patient and status."""
    _practice_staff_only("payment plans")
    session = db_session()
    plans = payment_plans.list_plans(session, patient_id=args["patient_id"], status=args["status"])
    audit.record_access(session, access(), "payment_plan", None, "list", {k: v for k, v in args.items() if v})
    session.commit()
    return {"items": plans}


@blp.route("/payment-plans", methods=["POST"])
@policy("payments:write")
@blp.arguments(PaymentPlanIn)
@blp.response(201, PaymentPlanOut)
def create_plan(body, slug: str):
    """A plan for a patient: installments of `installment_amount` (the last one what remains) monthly or every two
    weeks from `start_date`. While it is active the patient gets no statements."""
    session = db_session()
    _patient(session, body["patient_id"])
    plan = payment_plans.create_plan(
        session, access(), body["patient_id"], total=body["total"], installment_amount=body["installment_amount"],
        frequency=body["frequency"], start_date=body["start_date"], note=body["note"],
    )  # fmt: skip
    session.commit()
    return plan


def _plan(session, plan_id: int) -> PaymentPlan:
    _practice_staff_only(f"payment plan {plan_id}")
    return payment_plans.get_plan(session, plan_id)


@blp.route("/payment-plans/<id:plan_id>", methods=["GET"])
@policy("patients:read")
@blp.response(200, PaymentPlanOut)
def get_plan(slug: str, plan_id: int):
    session = db_session()
    plan = _plan(session, plan_id)
    audit.record_access(session, access(), "payment_plan", plan_id, "read")
    session.commit()
    return plan


@blp.route("/payment-plans/<id:plan_id>", methods=["PATCH"])
@policy("payments:write")
@blp.arguments(PaymentPlanPatch)
@blp.response(200, PaymentPlanOut)
def update_plan(body, slug: str, plan_id: int):
    session = db_session()
    _plan(session, plan_id)
    plan = payment_plans.update_plan(session, access(), plan_id, note=body["note"])
    session.commit()
    return plan


@blp.route("/payment-plans/<id:plan_id>/cancel", methods=["POST"])
@policy("payments:write")
@blp.arguments(PaymentPlanCancel)
@blp.response(200, PaymentPlanOut)
def cancel_plan(body, slug: str, plan_id: int):
    """End an active plan (the patient returns to the statement cycle)."""
    session = db_session()
    _plan(session, plan_id)
    plan = payment_plans.cancel_plan(session, access(), plan_id, body["reason"])
    session.commit()
    return plan


@blp.route("/payment-plans/<id:plan_id>", methods=["DELETE"])
@policy("payments:write")
@blp.response(200, PaymentPlanOut)
def delete_plan(slug: str, plan_id: int):
    """Plans are kept for the history: deleting an active plan cancels it."""
    session = db_session()
    _plan(session, plan_id)
    plan = payment_plans.cancel_plan(session, access(), plan_id, "deleted")
    session.commit()
    return plan
