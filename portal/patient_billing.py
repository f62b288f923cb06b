"""Patient billing: statement runs, patient payments and refunds, credits, payment plans.

Portal pages, on the portal blueprint: the patient billing overview of a practice (statement runs with their
progress, a button that starts the cycle's run, active payment plans, the settings), a run's page (progress while it
works, then its statements and the print batch file), a patient's account (balances, credit, lines, statements with
PDF download, plans, payments; forms to post a payment or refund and to create or cancel a plan) and the settings
form. Pages resolve the practice through tenants.authz.resolve_practice (`patients:read` to look, `payments:write`
for payments, refunds and plans, `statements:write` for runs and settings); reads of patient data are audited, and
writes audit themselves in the services."""

from __future__ import annotations

import secrets
from datetime import date

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from billing import patient_payments, payment_plans, statements
from billing.models import Patient, PaymentPlan, StatementRun
from billing.patients import get_patient
from integrations.storage import StorageError
from medbill.errors import DomainError, Invalid, NotFound
from portal.forms import MoneyField
from portal.views import bp, db, principal, tenant_db
from tenants import audit
from tenants.authz import PracticeAccess, resolve_practice

METHODS = [("cash", "Cash"), ("check", "Check"), ("card", "Card"), ("eft", "Bank transfer"), ("other", "Other")]


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


TEMPLATES = "portal/patient_billing/"


def _form_token() -> HiddenField:
    """A one-time token rendered into each payment or refund form: the posting is keyed by it, so a form submitted
    twice (a double click, two tabs, a resubmit after Back) posts once."""
    stale = "This form is out of date: reload the page and enter it again."
    return HiddenField(validators=[DataRequired(stale), Regexp(r"^[A-Za-z0-9_-]{16,64}$", message=stale)])


def new_form_token() -> str:
    return secrets.token_urlsafe(18)


class PaymentForm(FlaskForm):
    form_token = _form_token()
    confirm_duplicate = BooleanField("This is a second check with the same number and amount", default=False)
    amount = MoneyField("Amount", places=2, validators=[DataRequired("Enter the amount."),
                                                          NumberRange(min=0.01, message="More than 0.")])  # fmt: skip
    method = SelectField("Method", choices=_choices(METHODS))
    reference = StringField("Check number or card reference", validators=[Optional(), Length(max=100)])
    received_on = DateField("Received on", validators=[Optional()])
    claim_line_ids = SelectMultipleField("Apply to lines", coerce=int, validators=[Optional()], validate_choice=False)
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])


class RefundForm(FlaskForm):
    form_token = _form_token()
    amount = MoneyField("Amount", places=2, validators=[DataRequired("Enter the amount."),
                                                          NumberRange(min=0.01, message="More than 0.")])  # fmt: skip
    method = SelectField("Method", choices=_choices(METHODS))
    reference = StringField("Check number or card reference", validators=[Optional(), Length(max=100)])
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])


class PlanForm(FlaskForm):
    total = MoneyField("Total", places=2, validators=[DataRequired("Enter the total."), NumberRange(min=0.01)])
    installment_amount = MoneyField(
        "Installment", places=2, validators=[DataRequired("Enter the installment."), NumberRange(min=0.01)]
    )
    frequency = SelectField("Schedule", choices=_choices([("monthly", "Monthly"), ("biweekly", "Every two weeks")]))
    start_date = DateField("First installment due", validators=[DataRequired("Enter the date.")])
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])


class CancelForm(FlaskForm):
    reason = StringField("Reason", validators=[Optional(), Length(max=500)])


class RunForm(FlaskForm):
    pass


class SettingsForm(FlaskForm):
    cycle_days = IntegerField("Cycle length (days)", validators=[DataRequired(), NumberRange(min=7, max=120)])
    minimum_balance = MoneyField("Minimum balance to bill", places=2, validators=[Optional(), NumberRange(min=0)])
    scheduled_runs = SelectField(
        "Runs", choices=_choices([("yes", "Every cycle, automatically"), ("no", "Only when started")])
    )
    payment_instructions = TextAreaField("Payment instructions", validators=[Optional(), Length(max=2000)])
    message_0 = TextAreaField("Message (current)", validators=[Optional(), Length(max=500)])
    message_30 = TextAreaField("Message (30 days)", validators=[Optional(), Length(max=500)])
    message_60 = TextAreaField("Message (60 days)", validators=[Optional(), Length(max=500)])
    message_90 = TextAreaField("Message (90 days)", validators=[Optional(), Length(max=500)])
    message_120 = TextAreaField("Message (120 days)", validators=[Optional(), Length(max=500)])
    plan_reminder_days = IntegerField("Reminder after (days late)", validators=[DataRequired(), NumberRange(0, 365)])
    plan_break_days = IntegerField("Plan broken after (days late)", validators=[DataRequired(), NumberRange(1, 365)])


def _access(slug: str, permission: str) -> PracticeAccess:
    return resolve_practice(db(), principal(), slug, permission)


def _may(access: PracticeAccess, permission: str) -> bool:
    return access.can(permission)


def _staff(slug: str, permission: str) -> PracticeAccess:
    access = _access(slug, permission)
    if access.placed_only:  # agency users see placed accounts, not the practice's runs, plans and settings
        abort(404)
    return access


def _link(key: str, name: str) -> str | None:
    if not key:
        return None
    try:
        return current_app.extensions["medbill"].storage.presigned_url(key, download_name=name)
    except StorageError:
        return None


@bp.get("/practices/<slug>/patient-billing")
def patient_billing(slug: str):
    access = _staff(slug, "patients:read")
    s = tenant_db(access)
    runs = statements.list_runs(s, limit=24)
    plans = payment_plans.list_plans(s, status="active")
    names = _names(s, [p.patient_id for p in plans])
    settings = statements.get_settings(s)
    current_start = statements.cycle_start(settings, date.today())
    audit.record_access(s, access, "payment_plan", None, "list", {"status": "active", "count": len(plans)})
    s.commit()
    return render_template(
        TEMPLATES + "overview.html",
        access=access,
        runs=runs,
        plans=plans,
        names=names,
        settings=settings,
        current_start=current_start,
        current_run=next((r for r in runs if r.cycle_start == current_start), None),
        can_run=_may(access, "statements:write"),
        form=RunForm(),
    )


def _names(s, patient_ids) -> dict[int, Patient]:
    ids = set(patient_ids)
    if not ids:
        return {}
    return {p.id: p for p in s.query(Patient).filter(Patient.id.in_(ids))}


@bp.post("/practices/<slug>/statement-runs")
def statement_run_start(slug: str):
    access = _staff(slug, "statements:write")
    s = tenant_db(access)
    run, created = statements.start_run(s, access, trigger="user")
    if created:
        run.job_id = current_app.extensions["medbill"].dispatcher.enqueue_after_commit(
            s, "statements", "jobs.statements.run_statements", slug, run.id,
            meta={"user_id": access.user_id, "practice": slug, "kind": "statement_run"}, timeout=3600,
        )  # fmt: skip
        flash(f"Statement run started for the cycle from {run.cycle_start.strftime('%m/%d/%Y')}.", "info")
    else:
        flash(
            f"This cycle (from {run.cycle_start.strftime('%m/%d/%Y')}) already has a statement run: nothing was "
            "started.",
            "info",
        )
    s.commit()
    return redirect(url_for("portal.statement_run", slug=slug, run_id=run.id))


@bp.get("/practices/<slug>/statement-runs/<id:run_id>")
def statement_run(slug: str, run_id: int):
    access = _staff(slug, "patients:read")
    s = tenant_db(access)
    run: StatementRun = statements.get_run(s, run_id)
    items = statements.run_statements(s, run_id)
    names = _names(s, [st.patient_id for st in items])
    audit.record_access(s, access, "statement_run", run_id, "read")
    s.commit()
    return render_template(
        TEMPLATES + "run.html",
        access=access,
        run=run,
        items=items,
        names=names,
        batch_url=_link(run.batch_storage_key, f"statements-{run.cycle_start.isoformat()}.csv"),
    )


@bp.route("/practices/<slug>/patient-billing/settings", methods=["GET", "POST"])
def patient_billing_settings(slug: str):
    access = _staff(slug, "statements:write")
    s = tenant_db(access)
    settings = statements.get_settings(s)
    form = SettingsForm()
    errors: dict[str, list[str]] = {}
    if request.method == "GET":
        form.cycle_days.data = settings.cycle_days
        form.minimum_balance.data = settings.minimum_balance
        form.scheduled_runs.data = "yes" if settings.scheduled_runs else "no"
        form.payment_instructions.data = settings.payment_instructions
        for level in statements.MESSAGE_LEVELS:
            getattr(form, f"message_{level}").data = (settings.messages or {}).get(str(level), "")
        form.plan_reminder_days.data = settings.plan_reminder_days
        form.plan_break_days.data = settings.plan_break_days
    elif form.validate_on_submit():
        data = {
            "cycle_days": form.cycle_days.data,
            "minimum_balance": form.minimum_balance.data or 0,
            "scheduled_runs": form.scheduled_runs.data == "yes",
            "payment_instructions": (form.payment_instructions.data or "").strip(),
            "messages": {
                str(level): getattr(form, f"message_{level}").data.strip()
                for level in statements.MESSAGE_LEVELS
                if (getattr(form, f"message_{level}").data or "").strip()
            },
            "plan_reminder_days": form.plan_reminder_days.data,
            "plan_break_days": form.plan_break_days.data,
        }
        try:
            statements.update_settings(s, access, data)
        except Invalid as exc:
            s.rollback()
            errors = exc.errors
        else:
            s.commit()
            flash("Patient billing settings saved.", "info")
            return redirect(url_for("portal.patient_billing", slug=slug))
    s.commit()
    status = 422 if request.method == "POST" else 200
    return render_template(TEMPLATES + "settings.html", access=access, form=form, errors=errors,
                           defaults=statements.DEFAULT_MESSAGES), status  # fmt: skip


# --- a patient's account --------------------------------------------------------------------------------------------


def _render_account(access: PracticeAccess, patient_id: int, *, payment=None, refund=None, plan=None, status=200):
    s = tenant_db(access)
    patient = get_patient(s, access, patient_id)  # scoped (an agency: placed accounts only) and audited
    acct = patient_payments.account(s, patient_id)
    items = statements.patient_statements(s, patient_id)
    plans = payment_plans.list_plans(s, patient_id=patient_id)
    payments = patient_payments.list_payments(s, patient_id)
    audit.record_access(s, access, "patient_account", patient_id, "read")
    s.commit()
    payment = payment or PaymentForm(formdata=None, received_on=date.today(), form_token=new_form_token())
    payment.claim_line_ids.choices = [
        SelectChoice(
            ln.claim_line_id,
            f"{ln.date_of_service.strftime('%m/%d/%Y')} {ln.procedure_code} owes ${ln.patient_part:,.2f}",
        )
        for ln in acct.lines
        if ln.patient_part > 0
    ]
    return render_template(
        TEMPLATES + "account.html",
        access=access,
        patient=patient,
        acct=acct,
        items=items,
        plans=plans,
        active_plan=next((p for p in plans if p.status == "active"), None),
        payments=payments,
        can_pay=_may(access, "payments:write"),
        payment=payment,
        refund=refund or RefundForm(formdata=None, form_token=new_form_token()),
        plan=plan or PlanForm(formdata=None, total=acct.patient_due or None, start_date=date.today()),
        cancel=CancelForm(formdata=None),
        pdf_url=lambda st: url_for("portal.statement_pdf", slug=access.slug, patient_id=patient_id, statement_id=st.id),
    ), status


@bp.get("/practices/<slug>/patients/<id:patient_id>/account")
def patient_account(slug: str, patient_id: int):
    return _render_account(_access(slug, "patients:read"), patient_id)


def _back(slug: str, patient_id: int):
    return redirect(url_for("portal.patient_account", slug=slug, patient_id=patient_id))


def _refused(s, exc: DomainError) -> None:
    s.rollback()
    if isinstance(exc, NotFound):
        raise exc
    detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in (exc.errors or {}).items())
    flash(f"Nothing was posted: {exc.message}{' (' + detail + ')' if detail else ''}.", "error")


def _posting_key(access: PracticeAccess, form_token: str) -> str:
    return f"portal-form:{access.user_id}:{form_token}"


def _already_posted(s, key: str, slug: str, patient_id: int) -> bool:
    """A form submitted again after it was posted: say so instead of posting (a concurrent second submit is caught
    by the posting key itself, under the patient's lock)."""
    done = patient_payments.posted_under_key(s, key)
    if done is None:
        return False
    flash(f"This form was already submitted: {done.kind} {done.id} of ${done.amount:,.2f} is posted; nothing more "
          "was posted.", "info")  # fmt: skip
    return True


@bp.post("/practices/<slug>/patients/<id:patient_id>/payments")
def patient_payment_post(slug: str, patient_id: int):
    access = _access(slug, "payments:write")
    form = PaymentForm()
    s = tenant_db(access)
    form.claim_line_ids.choices = []
    if not form.validate_on_submit():
        return _render_account(access, patient_id, payment=form, status=422)
    get_patient(s, access, patient_id)
    key = _posting_key(access, form.form_token.data)
    if _already_posted(s, key, slug, patient_id):
        return _back(slug, patient_id)
    try:
        p = patient_payments.post_patient_payment(
            s, patient_id, form.amount.data, method=form.method.data, reference=(form.reference.data or "").strip(),
            received_on=form.received_on.data or date.today(), user_id=access.user_id, source_type="portal",
            claim_line_ids=form.claim_line_ids.data or None, note=(form.note.data or "").strip(), access=access,
            posting_key=key, confirm_duplicate=form.confirm_duplicate.data,
        )  # fmt: skip
    except DomainError as exc:
        if exc.code == "duplicate_check":
            s.rollback()
            form.reference.errors = list(form.reference.errors) + [exc.message + " (tick the box below)."]
            return _render_account(access, patient_id, payment=form, status=409)
        _refused(s, exc)
        return _back(slug, patient_id)
    applied = sum((a.amount for a in p.applications), 0)
    s.commit()
    credit = p.amount - applied
    flash(f"Payment of ${p.amount:,.2f} posted: ${applied:,.2f} applied"
          f"{f', ${credit:,.2f} kept as credit' if credit else ''}.", "info")  # fmt: skip
    return _back(slug, patient_id)


@bp.post("/practices/<slug>/patients/<id:patient_id>/refunds")
def patient_refund_post(slug: str, patient_id: int):
    access = _access(slug, "payments:write")
    form = RefundForm()
    s = tenant_db(access)
    if not form.validate_on_submit():
        return _render_account(access, patient_id, refund=form, status=422)
    get_patient(s, access, patient_id)
    key = _posting_key(access, form.form_token.data)
    if _already_posted(s, key, slug, patient_id):
        return _back(slug, patient_id)
    try:
        r = patient_payments.refund(
            s, patient_id, form.amount.data, method=form.method.data, reference=(form.reference.data or "").strip(),
            refunded_on=date.today(), user_id=access.user_id, source_type="portal",
            note=(form.note.data or "").strip(), access=access, posting_key=key,
        )  # fmt: skip
    except DomainError as exc:
        _refused(s, exc)
        return _back(slug, patient_id)
    s.commit()
    flash(f"Refund of ${r.amount:,.2f} recorded.", "info")
    return _back(slug, patient_id)


@bp.post("/practices/<slug>/patients/<id:patient_id>/credits/apply")
def patient_credit_apply(slug: str, patient_id: int):
    access = _access(slug, "payments:write")
    if not RunForm().validate_on_submit():
        abort(400)
    s = tenant_db(access)
    get_patient(s, access, patient_id)
    applied = patient_payments.apply_credits(s, patient_id, user_id=access.user_id)
    audit.record_access(s, access, "patient_credit", patient_id, "apply", {"applied": str(applied)})
    s.commit()
    flash(f"${applied:,.2f} of credit applied.", "info")
    return _back(slug, patient_id)


@bp.post("/practices/<slug>/patients/<id:patient_id>/payment-plans")
def payment_plan_create(slug: str, patient_id: int):
    access = _access(slug, "payments:write")
    form = PlanForm()
    s = tenant_db(access)
    if not form.validate_on_submit():
        return _render_account(access, patient_id, plan=form, status=422)
    get_patient(s, access, patient_id)
    try:
        plan = payment_plans.create_plan(
            s, access, patient_id, total=form.total.data, installment_amount=form.installment_amount.data,
            frequency=form.frequency.data, start_date=form.start_date.data, note=(form.note.data or "").strip(),
        )  # fmt: skip
    except DomainError as exc:
        _refused(s, exc)
        return _back(slug, patient_id)
    s.commit()
    flash(f"Payment plan created: {len(plan.installments)} installments.", "info")
    return _back(slug, patient_id)


@bp.post("/practices/<slug>/payment-plans/<id:plan_id>/cancel")
def payment_plan_cancel(slug: str, plan_id: int):
    access = _staff(slug, "payments:write")
    form = CancelForm()
    if not form.validate_on_submit():
        abort(400)
    s = tenant_db(access)
    plan: PaymentPlan = payment_plans.get_plan(s, plan_id)
    try:
        payment_plans.cancel_plan(s, access, plan_id, (form.reason.data or "").strip())
    except DomainError as exc:
        _refused(s, exc)
        return _back(slug, plan.patient_id)
    s.commit()
    flash("Payment plan cancelled: the patient is back in the statement cycle.", "info")
    return _back(slug, plan.patient_id)


@bp.get("/practices/<slug>/patients/<id:patient_id>/statements/<id:statement_id>/pdf")
def statement_pdf(slug: str, patient_id: int, statement_id: int):
    access = _access(slug, "patients:read")
    s = tenant_db(access)
    get_patient(s, access, patient_id)
    st = statements.get_statement(s, statement_id)
    if st.patient_id != patient_id:
        raise NotFound(f"statement {statement_id} not found")
    url = _link(st.storage_key, f"statement-{st.statement_date.isoformat()}.pdf")
    if url is None:
        raise NotFound("the statement's PDF is not in storage")
    audit.record_access(s, access, "statement", statement_id, "download")
    s.commit()
    return redirect(url)
