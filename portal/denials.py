"""Denial work: the queue of denied and underpaid lines, assignment, notes, actions, appeals and follow-up.

Portal pages, on the portal blueprint. Access is resolved like the claims pages (`claims:read` to look,
`denials:write` to work an item, `ledger:write_off` to write off, a foreign practice answers 404) before the
practice's session opens; every read of patient data and every write is audited. Irreversible actions (void,
write-off) first show a confirmation page that says what will happen; only its confirmed form acts. The queue is
brought up to date with what posting recorded (billing.denials.sync) when it is shown."""

from __future__ import annotations

import math
import re

from flask import Response, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from billing import appeals, denials, followup
from billing.adjustment_codes import carc_codes
from billing.models import Payer
from integrations.storage import StorageError
from medbill.errors import DomainError, Forbidden, NotFound
from portal.claims import _access, _may
from portal.views import _page_arg, _services, bp, tenant_db
from tenants import audit
from tenants.authz import PracticeAccess

PER_PAGE = 25
_REASON_RE = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,5}$")
STATUS_WORDS = {"open": "Open", "appealed": "Under appeal", "closed": "Closed", "all": "Every status"}
KIND_WORDS = {"denial": "Denied line", "underpayment": "Underpaid line"}
ACTION_WORDS = {
    "corrected": "Corrected and resubmitted",
    "voided": "Voided",
    "written_off": "Written off",
    "billed_patient": "Billed to the patient",
    "appeal_overturned": "Appeal overturned",
    "paid": "Paid by a later remittance",
    "resolved": "Resolved in the underpayment queue",
    "superseded": "Denied again by a later remittance (see the newer item)",
}
SORT_WORDS = {
    "-age": "oldest first",
    "age": "newest first",
    "-amount": "highest amount first",
    "amount": "lowest first",
}


# --- forms ------------------------------------------------------------------------------------------------------------


class AssignForm(FlaskForm):
    user_id = SelectField("Assign to", choices=[], validate_choice=False)


class NoteForm(FlaskForm):
    body = TextAreaField(
        "Note",
        validators=[DataRequired(message="Write the note."), Length(max=5000)],
        render_kw={"rows": "3"},
    )


class CloseForm(FlaskForm):
    action = HiddenField(validators=[DataRequired()])
    reason = TextAreaField("Why (kept with the item)", validators=[Optional(), Length(max=2000)],
                           render_kw={"rows": "2"})  # fmt: skip
    reason_code = StringField("CARC reason code", validators=[Optional(), Length(max=5)], render_kw={"size": "6"})
    confirm = BooleanField("I confirm")


class AppealForm(FlaskForm):
    family = SelectField("Letter", choices=[SelectChoice(k, v) for k, v in appeals.FAMILIES.items()])
    argument = TextAreaField(
        "Your argument",
        validators=[
            DataRequired(message="Write the argument the letter makes."),
            Length(max=appeals.MAX_ARGUMENT_CHARS),
        ],
        render_kw={"rows": "5"},
    )


class OutcomeForm(FlaskForm):
    outcome = SelectField(
        "Payer's answer",
        choices=[SelectChoice("overturned", "Overturned (the payer will pay)"),
                 SelectChoice("upheld", "Upheld (the denial stands)")],
    )  # fmt: skip
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)], render_kw={"rows": "2"})


class FollowUpCloseForm(FlaskForm):
    note = StringField("What was done", validators=[DataRequired(message="Say what was done."), Length(max=2000)])


# --- helpers ----------------------------------------------------------------------------------------------------------


def _audit(s, access: PracticeAccess, object_type: str, object_id, action: str, detail: dict | None = None) -> None:
    audit.record_access(s, access, object_type, object_id, action, detail, ip=request.remote_addr)


def _pages(total: int) -> int:
    return max(1, math.ceil(total / PER_PAGE))


def _positive(name: str) -> int | None:
    value = request.args.get(name, type=int)
    return value if value is not None and 0 < value < 2**63 else None


def _to_item(access: PracticeAccess, item_id: int):
    return redirect(url_for("portal.denial_item", slug=access.slug, item_id=item_id))


def _failed(s, exc: DomainError, access: PracticeAccess, item_id: int):
    s.rollback()
    if isinstance(exc, NotFound | Forbidden):
        raise exc
    message = exc.message.rstrip(".")
    fields = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (exc.errors or {}).items())
    flash(f"Nothing changed: {message}{' (' + fields + ')' if fields else ''}.", "error")
    return _to_item(access, item_id)


@bp.context_processor
def _denial_template_globals():
    return {
        "denial_status_word": lambda st: STATUS_WORDS.get(st, st),
        "denial_kind_word": lambda k: KIND_WORDS.get(k, k),
        "denial_action_word": lambda a: ACTION_WORDS.get(a, a or ""),
    }


# --- the queue --------------------------------------------------------------------------------------------------------


@bp.get("/practices/<slug>/denial-work")
def denial_queue(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    page = _page_arg()
    status = request.args.get("status", "open")
    status = status if status in STATUS_WORDS else "open"
    kind = request.args.get("kind") or None
    kind = kind if kind in denials.KINDS else None
    reason = (request.args.get("reason") or "").strip().upper()
    reason = reason if _REASON_RE.match(reason) else ""
    payer_id = _positive("payer_id")
    mine = request.args.get("mine") == "1"
    min_age, max_age = _positive("min_age"), _positive("max_age")
    sort = request.args.get("sort", "-age")
    sort = sort if sort in denials.SORTS else "-age"
    denials.sync(s)
    filters = denials.QueueFilters(
        status=None if status == "all" else status, kind=kind, reason=reason or None, payer_id=payer_id,
        assigned_user_id=access.user_id if mine else None, min_age=min_age, max_age=max_age, sort=sort,
    )  # fmt: skip
    found = denials.list_items(s, filters, page=page, per_page=PER_PAGE)
    names = denials.user_names(s, [i["assigned_user_id"] for i in found["items"]])
    payer_name = ""
    if payer_id:
        payer_name = s.scalar(select(Payer.name).where(Payer.id == payer_id)) or f"payer {payer_id}"
    _audit(s, access, "denial_item", None, "list", {"ids": [i["id"] for i in found["items"]], "page": page})
    s.commit()
    args = {"status": status if status != "open" else None, "kind": kind, "reason": reason or None,
            "payer_id": payer_id, "mine": "1" if mine else None, "min_age": min_age, "max_age": max_age,
            "sort": sort if sort != "-age" else None}  # fmt: skip

    def list_url(**changes):
        merged = args | changes
        return url_for("portal.denial_queue", slug=access.slug, **{k: v for k, v in merged.items() if v})

    return render_template(
        "portal/denials/queue.html",
        access=access,
        items=found["items"],
        reasons=found["reasons"],
        payers=found["payers"],
        total=found["total"],
        names=names,
        status=status,
        kind=kind,
        reason=reason,
        payer_id=payer_id,
        payer_name=payer_name,
        mine=mine,
        min_age=min_age,
        max_age=max_age,
        sort=sort,
        sort_words=SORT_WORDS,
        status_words=STATUS_WORDS,
        page=page,
        pages=_pages(found["total"]),
        first_index=(page - 1) * PER_PAGE + 1,
        list_url=list_url,
        page_url=lambda **kw: list_url(**kw),
        follow_ups=followup.open_count(s),
    )


def _render_item(access: PracticeAccess, item_id: int, *, appeal_form=None, note_form=None, status: int = 200):
    s = tenant_db(access)
    item = denials.item_detail(s, item_id)
    can_work = _may(access, "denials:write")
    can_write_off = can_work and access.can(denials.WRITE_OFF_PERMISSION)
    people = denials.billers(s, access)
    names = dict(people) | denials.user_names(s, [n["user_id"] for n in item["notes"]] + [item["assigned_user_id"]])
    assign_form = AssignForm(formdata=None)
    assign_form.user_id.choices = [SelectChoice("", "Nobody")] + [SelectChoice(str(uid), name) for uid, name in people]
    assign_form.user_id.data = str(item["assigned_user_id"] or "")
    appeal_form = appeal_form or AppealForm(formdata=None)
    if appeal_form.family.data is None or not request.form:
        appeal_form.family.data = appeals.suggest_family(item["kind"], [r["code"] for r in item["reasons"]])
    _audit(s, access, "denial_item", item_id, "read", {"claim_id": item["claim_id"]})
    s.commit()
    return render_template(
        "portal/denials/item.html",
        access=access,
        item=item,
        names=names,
        can_work=can_work,
        can_write_off=can_write_off,
        assign_form=assign_form,
        note_form=note_form or NoteForm(formdata=None),
        close_form=CloseForm(formdata=None),
        appeal_form=appeal_form,
        outcome_form=OutcomeForm(formdata=None),
        families=appeals.FAMILIES,
    ), status


@bp.get("/practices/<slug>/denial-work/<id:item_id>")
def denial_item(slug: str, item_id: int):
    return _render_item(_access(slug, "claims:read"), item_id)


@bp.post("/practices/<slug>/denial-work/<id:item_id>/assign")
def denial_assign(slug: str, item_id: int):
    access = _access(slug, "denials:write")
    form = AssignForm()
    if not form.validate_on_submit():
        return _to_item(access, item_id)
    raw = (form.user_id.data or "").strip()
    user_id = int(raw) if raw.isdigit() and len(raw) < 19 else None
    s = tenant_db(access)
    try:
        denials.assign(s, access, item_id, user_id)
    except DomainError as exc:
        return _failed(s, exc, access, item_id)
    s.commit()
    flash("Assignment saved." if user_id else "Item unassigned.", "success")
    return _to_item(access, item_id)


@bp.post("/practices/<slug>/denial-work/<id:item_id>/note")
def denial_note(slug: str, item_id: int):
    access = _access(slug, "denials:write")
    form = NoteForm()
    if not form.validate_on_submit():
        return _render_item(access, item_id, note_form=form, status=422)
    s = tenant_db(access)
    try:
        denials.add_note(s, access, item_id, form.body.data)
    except DomainError as exc:
        return _failed(s, exc, access, item_id)
    s.commit()
    flash("Note added.", "success")
    return _to_item(access, item_id)


@bp.post("/practices/<slug>/denial-work/<id:item_id>/close")
def denial_close(slug: str, item_id: int):
    access = _access(slug, "denials:write")
    form = CloseForm()
    if not form.validate_on_submit() or form.action.data not in denials.CLOSING_ACTIONS:
        flash("Choose an action.", "error")
        return _to_item(access, item_id)
    action = form.action.data
    if action == "write_off" and not access.can(denials.WRITE_OFF_PERMISSION):
        raise Forbidden("writing off needs the ledger:write_off permission")
    s = tenant_db(access)
    if action in denials.IRREVERSIBLE and not form.confirm.data:
        # Say what will happen before it happens; only the confirmation page's form acts.
        item = denials.item_detail(s, item_id)
        _audit(s, access, "denial_item", item_id, "read", {"claim_id": item["claim_id"], "confirming": action})
        s.commit()
        return render_template(
            "portal/denials/confirm.html", access=access, item=item, action=action, form=form,
            carc=carc_codes().get((form.reason_code.data or "").strip().upper()),
        )  # fmt: skip
    try:
        denials.close(
            s, access, item_id, action, reason=form.reason.data or "", reason_code=form.reason_code.data or None,
            confirm=bool(form.confirm.data),
        )  # fmt: skip
    except DomainError as exc:
        return _failed(s, exc, access, item_id)
    s.commit()
    item = denials.get_item(s, item_id)
    done = ACTION_WORDS[item.action]
    if item.action_detail.get("correction_claim_id"):
        done += f": claim {item.action_detail['correction_claim_id']} created as a draft to scrub and submit"
    flash(f"{done}.", "success")
    return _to_item(access, item_id)


@bp.post("/practices/<slug>/denial-work/<id:item_id>/appeal")
def denial_appeal(slug: str, item_id: int):
    access = _access(slug, "denials:write")
    form = AppealForm()
    if not form.validate_on_submit():
        return _render_item(access, item_id, appeal_form=form, status=422)
    s = tenant_db(access)
    try:
        appeal = appeals.create_appeal(
            s, access, item_id, argument=form.argument.data, family=form.family.data, storage=_services().storage
        )
    except DomainError as exc:
        return _failed(s, exc, access, item_id)
    s.commit()
    flash(f"Appeal letter {appeal.id} written. Send it to the payer by {appeal.deadline:%m/%d/%Y}.", "success")
    return _to_item(access, item_id)


@bp.post("/practices/<slug>/appeals/<id:appeal_id>/outcome")
def appeal_outcome(slug: str, appeal_id: int):
    access = _access(slug, "denials:write")
    form = OutcomeForm()
    item_id = request.form.get("item_id", type=int)
    s = tenant_db(access)
    items = appeals.appeal_items(s, appeal_id)
    back = item_id if item_id in {i.id for i in items} else (items[0].id if items else None)
    if back is None:
        raise NotFound(f"appeal {appeal_id} not found")
    if not form.validate_on_submit():
        flash("Choose the payer's answer.", "error")
        return _to_item(access, back)
    try:
        appeal = appeals.record_outcome(s, access, appeal_id, form.outcome.data, form.note.data or "")
    except DomainError as exc:
        return _failed(s, exc, access, back)
    s.commit()
    if appeal.outcome == "overturned":
        flash("Appeal overturned: the denial is taken back; the payer's new remittance will post as usual.", "success")
    else:
        flash("Appeal upheld: the lines are back in the work queue.", "info")
    return _to_item(access, back)


@bp.get("/practices/<slug>/appeals/<id:appeal_id>/letter.pdf")
def appeal_letter(slug: str, appeal_id: int):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    appeal = appeals.get_appeal(s, appeal_id)
    try:
        data = _services().storage.get(appeal.storage_key) if appeal.storage_key else None
    except StorageError:
        data = None
    if data is None:
        raise NotFound(f"the letter of appeal {appeal_id} is not in storage")
    _audit(s, access, "appeal", appeal.id, "download", {"claim_id": appeal.claim_id})
    s.commit()
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{appeal.filename or f"appeal-{appeal.id}.pdf"}"'},
    )


# --- follow-up --------------------------------------------------------------------------------------------------------


@bp.get("/practices/<slug>/follow-ups")
def follow_up_queue(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    page = _page_arg()
    status = request.args.get("status", "open")
    status = status if status in ("open", "resolved", "all") else "open"
    items, total = followup.list_items(s, status=None if status == "all" else status, page=page, per_page=PER_PAGE)
    _audit(s, access, "follow_up_item", None, "list", {"claim_ids": [i["claim_id"] for i in items], "page": page})
    s.commit()
    return render_template(
        "portal/denials/follow_ups.html",
        access=access,
        items=items,
        total=total,
        status=status,
        page=page,
        pages=_pages(total),
        first_index=(page - 1) * PER_PAGE + 1,
        can_work=_may(access, "denials:write"),
        form=FollowUpCloseForm(formdata=None),
        page_url=lambda **kw: url_for("portal.follow_up_queue", slug=access.slug, status=status, **kw),
    )


@bp.post("/practices/<slug>/follow-ups/<id:item_id>/close")
def follow_up_close(slug: str, item_id: int):
    access = _access(slug, "denials:write")
    form = FollowUpCloseForm()
    back = redirect(url_for("portal.follow_up_queue", slug=access.slug))
    if not form.validate_on_submit():
        flash("Say what was done before closing the follow-up.", "error")
        return back
    s = tenant_db(access)
    try:
        item = followup.close(s, access, item_id, form.note.data)
    except DomainError as exc:
        s.rollback()
        if isinstance(exc, NotFound):
            raise
        flash(f"Nothing changed: {exc.message}.", "error")
        return back
    s.commit()
    flash(f"Follow-up of claim {item.claim_id} closed.", "success")
    return back


# --- appeal letter templates ------------------------------------------------------------------------------------------


class TemplateForm(FlaskForm):
    body = TextAreaField(
        "Letter template",
        validators=[DataRequired(message="A template needs text."), Length(max=appeals.MAX_TEMPLATE_CHARS)],
        render_kw={"rows": "24", "spellcheck": "false"},
    )


def _values(context: dict, prefix: str = "") -> list[str]:
    """The names a template may use, from the sample letter: claim.number, lines (a list), argument..."""
    names = []
    for key, value in context.items():
        if isinstance(value, dict):
            names += _values(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            names.append(f"{prefix}{key} (a list, each with: {', '.join(value[0])})")
        else:
            names.append(f"{prefix}{key}")
    return names


@bp.get("/practices/<slug>/appeal-templates")
def appeal_templates(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    rows = [(family, label, appeals.get_template(s, family)[1]) for family, label in appeals.FAMILIES.items()]
    return render_template("portal/denials/templates.html", access=access, rows=rows)


def _render_template_page(access: PracticeAccess, family: str, form: TemplateForm | None = None, status: int = 200):
    s = tenant_db(access)
    body, source = appeals.get_template(s, family)
    form = form or TemplateForm(formdata=None, body=body)
    return render_template(
        "portal/denials/template_edit.html", access=access, family=family, label=appeals.FAMILIES[family],
        source=source, form=form, can_work=_may(access, "denials:write"), values=_values(appeals.sample_context()),
    ), status  # fmt: skip


def _family(family: str) -> str:
    if family not in appeals.FAMILIES:
        raise NotFound(f"no appeal letter family {family!r}")
    return family


@bp.get("/practices/<slug>/appeal-templates/<family>")
def appeal_template(slug: str, family: str):
    return _render_template_page(_access(slug, "claims:read"), _family(family))


@bp.post("/practices/<slug>/appeal-templates/<family>")
def appeal_template_save(slug: str, family: str):
    access = _access(slug, "denials:write")
    family = _family(family)
    form = TemplateForm()
    if not form.validate_on_submit():
        return _render_template_page(access, family, form, 422)
    s = tenant_db(access)
    try:
        appeals.put_template(s, access, family, form.body.data)
    except DomainError as exc:
        s.rollback()
        form.body.errors = [exc.message]
        return _render_template_page(access, family, form, 422)
    s.commit()
    flash(f"The practice's {appeals.FAMILIES[family].lower()} letter is saved; new letters use it.", "success")
    return redirect(url_for("portal.appeal_template", slug=access.slug, family=family))


@bp.post("/practices/<slug>/appeal-templates/<family>/reset")
def appeal_template_reset(slug: str, family: str):
    access = _access(slug, "denials:write")
    family = _family(family)
    if not FlaskForm().validate_on_submit():
        return redirect(url_for("portal.appeal_template", slug=access.slug, family=family))
    s = tenant_db(access)
    appeals.reset_template(s, access, family)
    s.commit()
    flash(f"Back to medbill's {appeals.FAMILIES[family].lower()} letter.", "success")
    return redirect(url_for("portal.appeal_template", slug=access.slug, family=family))
