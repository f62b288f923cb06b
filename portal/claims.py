"""Claims pages for billers, on the portal blueprint: charge entry (a visit and its service lines, then the claim),
the claim list, a claim's detail with its actions (scrub again, reopen for correction, submit) and the rejection
queue.

Every page resolves the practice through tenants.authz.resolve_practice ("claims:read" to look, "claims:write" to
act) before it opens the practice's session, and every read of patient data writes an audit entry. Lists are built
in a fixed number of queries whatever their length: patient, visit, payer (shared.payers) and provider names are
joined in, never fetched per row."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import func, select, true
from wtforms import BooleanField, FieldList, Form, FormField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.utils import unset_value
from wtforms.validators import Length, Optional
from wtforms.widgets import DateInput

from billing import codes
from billing.claim_status import EDITABLE, STATUSES, transition
from billing.claims import create_claims, get_claim
from billing.encounters import create_encounter
from billing.models import (
    Claim,
    ClaimAcknowledgement,
    ClaimStatusChange,
    Coverage,
    Encounter,
    InboundFile,
    Patient,
    Payer,
    Provider,
    Submission,
    SubmissionClaim,
)
from billing.patients import get_patient, list_patients
from billing.scrubber import latest_findings, scrub_claim
from integrations.storage import StorageError
from medbill.errors import Forbidden, Invalid, NotFound
from portal.views import _page_arg, bp, db, principal, tenant_db
from tenants import audit
from tenants.authz import PracticeAccess, resolve_practice
from tenants.models import AuditEntry, User

CLAIMS_PER_PAGE = 25
PATIENT_SEARCH_LIMIT = 20
DIAGNOSIS_INPUTS = 12
LINE_ROWS = 6
STATUS_LABELS = {
    "draft": "Draft",
    "scrubbed": "Scrub errors",
    "ready": "Ready",
    "submitted": "Submitted",
    "acknowledged": "Acknowledged",
    "accepted": "Accepted",
    "rejected": "Rejected",
    "paid": "Paid",
    "partially_paid": "Partially paid",
    "denied": "Denied",
    "closed": "Closed",
}
SOURCE_LABELS = {
    "user": "User",
    "scrubber": "Scrubber",
    "submission": "Submission",
    "999": "999 file acknowledgement",
    "277ca": "277CA claim acknowledgement",
    "remittance": "Remittance (835)",
}
FREQUENCY_LABELS = {"1": "Original", "7": "Replacement", "8": "Void"}
# ?sort= values of the claim list: column and direction, newest visits first by default.
SORTS = {
    "-date": (Encounter.date_of_service.desc(), Claim.id.desc()),
    "date": (Encounter.date_of_service.asc(), Claim.id.asc()),
    "-total": (Claim.total_charge.desc(), Claim.id.desc()),
    "total": (Claim.total_charge.asc(), Claim.id.asc()),
}
DEFAULT_SORT = "-date"
# A submission job still waiting or running: a second click on "Submit" does not queue another.
PENDING_JOB_STATUSES = frozenset({JobStatus.CREATED, JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED,
                                  JobStatus.SCHEDULED})  # fmt: skip
SUBMIT_GUARD = timedelta(minutes=30)
# What the service-line inputs accept before the domain checks them: bounded, so nothing overflows a column.
_UNITS_RE = re.compile(r"^\d{1,6}(\.\d{1,3})?$")
_CHARGE_RE = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
_SPLIT_RE = re.compile(r"[\s,;]+")
_LINE_FIELDS = {
    "procedure_code": "procedure_code",
    "modifiers": "modifiers",
    "units": "units",
    "diagnosis_pointers": "pointers",
    "charge": "charge",
}
LINE_LABELS = {
    "procedure_code": "procedure code",
    "modifiers": "modifiers",
    "units": "units",
    "pointers": "diagnosis pointers",
    "charge": "charge",
}


# --- forms ----------------------------------------------------------------------------------------------------------


class ServiceLineForm(Form):
    """One row of the service-line table (a sub-form: the page's FlaskForm carries the CSRF token)."""

    procedure_code = StringField(
        "Procedure code",
        validators=[Optional(), Length(max=5, message="A procedure code has 5 characters, e.g. 99213.")],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters", "size": "6"},
    )
    modifiers = StringField(
        "Modifiers",
        validators=[Optional(), Length(max=20, message="At most 4 modifiers, e.g. 25, 59.")],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters", "size": "10"},
    )
    units = StringField(
        "Units",
        validators=[Optional(), Length(max=12, message="Enter units like 1 or 1.5.")],
        render_kw={"inputmode": "decimal", "autocomplete": "off", "size": "4"},
    )
    pointers = StringField(
        "Diagnosis pointers",
        validators=[Optional(), Length(max=20, message="At most 4 pointers, e.g. 1,2.")],
        render_kw={"autocomplete": "off", "size": "8"},
    )
    charge = StringField(
        "Charge",
        validators=[Optional(), Length(max=16, message="Enter an amount like 125.00.")],
        render_kw={"inputmode": "decimal", "autocomplete": "off", "size": "9"},
    )


class FixedList(FieldList):
    """A FieldList of exactly `min_entries` inputs named -0, -1, ...: each reads its own name from the form data.
    (FieldList renumbers the inputs that were sent, so a blank input in the middle would shift the ones after it.)"""

    def process(self, formdata, data=unset_value, extra_filters=None):
        self.last_index = -1
        self.entries = []
        self.object_data = data
        for _ in range(self.min_entries):
            self._add_entry(formdata)


class ChargeForm(FlaskForm):
    date_of_service = StringField(
        "Date of service",
        widget=DateInput(),
        default=lambda: date.today().isoformat(),
        validators=[Length(max=10, message="Enter the date as YYYY-MM-DD.")],
    )
    place_of_service = SelectField(
        "Place of service",
        choices=[SelectChoice(code, f"{code} – {name}") for code, name in sorted(codes.PLACES_OF_SERVICE.items())],
        default="11",
        validate_choice=False,  # the domain names a wrong code in words
    )
    rendering_provider_id = SelectField("Rendering provider", validate_choice=False)
    diagnoses = FixedList(
        StringField(
            "Diagnosis",
            validators=[Optional(), Length(max=10, message="An ICD-10-CM code has at most 7 characters.")],
            render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters", "size": "9"},
        ),
        min_entries=DIAGNOSIS_INPUTS,
        max_entries=DIAGNOSIS_INPUTS,
    )
    lines = FixedList(FormField(ServiceLineForm), min_entries=LINE_ROWS, max_entries=LINE_ROWS)
    create_claim = BooleanField("Create the claim now", default=True)


class ActionForm(FlaskForm):
    """A button that changes a claim: only the CSRF token."""


class ReopenForm(FlaskForm):
    reason = TextAreaField(
        "What needs correcting (optional)",
        validators=[Optional(), Length(max=500, message="Keep the note under 500 characters.")],
        render_kw={"rows": "2"},
    )


# --- helpers --------------------------------------------------------------------------------------------------------


def _access(slug: str, permission: str) -> PracticeAccess:
    access = resolve_practice(db(), principal(), slug, permission)
    if access.placed_only:  # an agency never sees claims (and holds no claims permission): as if not there
        raise NotFound(f"practice {slug!r} not found")
    return access


def _may(access: PracticeAccess, permission: str) -> bool:
    """Whether the action buttons show: the same check the action itself makes (a suspended practice is read-only)."""
    try:
        _access(access.slug, permission)
    except (Forbidden, NotFound):
        return False
    return True


def _audit(session, access: PracticeAccess, claim_id: int | None, action: str, detail: dict | None = None) -> None:
    audit.record_access(session, access, "claim", claim_id, action, detail, ip=request.remote_addr)


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def fmt_when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%m/%d/%Y %H:%M UTC")


def _sentence(message: str) -> str:
    """A domain message ("not a modifier: 'ZZ1'") as a sentence."""
    message = str(message).strip()
    if not message:
        return message
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def _positive_int_arg(name: str) -> int | None:
    value = request.args.get(name, type=int)
    return value if value is not None and 0 < value < 2**63 else None


@bp.context_processor
def _claim_template_globals():
    return {
        "claim_status_label": status_label,
        "claim_statuses": STATUSES,
        "fmt_when": fmt_when,
    }


def _claim_rows():
    """Claims with everything a list row shows, in one statement."""
    return (
        select(
            Claim.id,
            Claim.status,
            Claim.total_charge,
            Claim.frequency_code,
            Patient.id.label("patient_id"),
            Patient.first_name.label("patient_first"),
            Patient.last_name.label("patient_last"),
            Patient.account_number,
            Encounter.date_of_service,
            Payer.name.label("payer_name"),
            Provider.first_name.label("provider_first"),
            Provider.last_name.label("provider_last"),
            Provider.credential.label("provider_credential"),
        )
        .join(Patient, Patient.id == Claim.patient_id)
        .join(Encounter, Encounter.id == Claim.encounter_id)
        .join(Provider, Provider.id == Claim.rendering_provider_id)
        .outerjoin(Payer, Payer.id == Claim.payer_id)
    )


# --- charge entry ---------------------------------------------------------------------------------------------------


class _Discard(Exception):
    """Raised inside the savepoint to undo a visit the page itself found problems with."""


def _active_providers(session) -> list[Provider]:
    return list(
        session.scalars(
            select(Provider).where(Provider.active.is_(True)).order_by(Provider.last_name, Provider.first_name)
        )
    )


def _provider_choice(p: Provider) -> str:
    credential = f" {p.credential}" if p.credential else ""
    return f"{p.last_name}, {p.first_name}{credential} (NPI {p.npi})"


def _patient_coverages(session, patient_id: int):
    return session.execute(
        select(
            Coverage.priority,
            Coverage.member_id,
            Coverage.effective_date,
            Coverage.end_date,
            Payer.name.label("payer_name"),
        )
        .outerjoin(Payer, Payer.id == Coverage.payer_id)
        .where(Coverage.patient_id == patient_id)
        .order_by(Coverage.priority, Coverage.effective_date.desc(), Coverage.id.desc())
    ).all()


def _field_labels() -> dict[str, str]:
    """Every input's name in words, in the order of the page (the error summary follows it)."""
    labels = {
        "date_of_service": "Date of service",
        "place_of_service": "Place of service",
        "rendering_provider_id": "Rendering provider",
        "diagnoses": "Diagnoses",
    }
    labels |= {f"diagnoses-{i}": f"Diagnosis {i + 1}" for i in range(DIAGNOSIS_INPUTS)}
    labels["lines"] = "Service lines"
    for r in range(LINE_ROWS):
        labels |= {f"lines-{r}-{name}": f"Line {r + 1} {text}" for name, text in LINE_LABELS.items()}
    labels |= {"create_claim": "Create the claim now", "form": "The visit"}
    return labels


def _add(errors: dict[str, list[str]], key: str, message: str) -> None:
    errors.setdefault(key, []).append(_sentence(message))


def _read_charge_form(form: ChargeForm, patient_id: int, provider_ids: set[int]):
    """The form as create_encounter's input, plus what the page itself finds wrong (keyed by input id) and the
    maps from the domain's positions (the entered diagnoses and lines) back to the inputs."""
    errors: dict[str, list[str]] = {}
    entered = [(i, (entry.data or "").strip()) for i, entry in enumerate(form.diagnoses)]
    entered = [(i, code) for i, code in entered if code]
    dx_inputs = [i for i, _ in entered]  # the domain's diagnoses[k] is input dx_inputs[k]
    number_of_input = {i + 1: k + 1 for k, (i, _) in enumerate(entered)}  # "Diagnosis 4" → pointer 3 when 3 is blank

    if not (form.date_of_service.data or "").strip():
        _add(errors, "date_of_service", "Enter the date of service.")
    raw_provider = (form.rendering_provider_id.data or "").strip()
    provider_id = int(raw_provider) if raw_provider.isdigit() and int(raw_provider) in provider_ids else 0
    if not provider_id:
        _add(errors, "rendering_provider_id", "Choose the rendering provider.")

    lines, line_rows = [], []
    for r, entry in enumerate(form.lines):
        row = entry.form
        key = f"lines-{r}"
        code = (row.procedure_code.data or "").strip().upper()
        modifiers = (row.modifiers.data or "").strip()
        units = (row.units.data or "").strip()
        pointers = (row.pointers.data or "").strip()
        charge = (row.charge.data or "").strip().replace("$", "").replace(",", "")
        if not (code or modifiers or pointers or charge):
            continue  # an empty row (units alone do not make a line)
        if not code:
            _add(errors, f"{key}-procedure_code", "Enter the procedure code, or clear this row.")
            continue
        item: dict = {"procedure_code": code, "modifiers": [m for m in _SPLIT_RE.split(modifiers.upper()) if m]}
        if units and not _UNITS_RE.match(units):
            _add(errors, f"{key}-units", "Enter units like 1 or 1.5 (at most 3 decimals).")
            units = ""
        item["units"] = units or "1"
        numbers = []
        for token in (t for t in _SPLIT_RE.split(pointers) if t):
            if not token.isdigit():
                _add(errors, f"{key}-pointers", f"“{token}” is not a diagnosis number.")
            elif int(token) not in number_of_input:
                n = int(token)
                where = f"Diagnosis {n} is empty" if 1 <= n <= DIAGNOSIS_INPUTS else f"There is no diagnosis {n}"
                _add(errors, f"{key}-pointers", f"{where}: point to diagnoses you entered.")
            else:
                numbers.append(number_of_input[int(token)])
        item["diagnosis_pointers"] = numbers
        if charge:
            if _CHARGE_RE.match(charge):
                item["charge"] = charge
            else:
                _add(errors, f"{key}-charge", "Enter an amount like 125.00, or leave it blank for the fee schedule.")
        lines.append(item)
        line_rows.append(r)
    data = {
        "patient_id": patient_id,
        "date_of_service": (form.date_of_service.data or "").strip(),
        "place_of_service": form.place_of_service.data or "",
        "rendering_provider_id": provider_id,
        "diagnoses": [code for _, code in entered],
        "lines": lines,
    }
    return data, errors, dx_inputs, line_rows


def _input_key(key: str, dx_inputs: list[int], line_rows: list[int]) -> str | None:
    """The input a domain error key ("diagnoses[1]", "lines[0].modifiers") belongs to; None to drop it."""
    if match := re.fullmatch(r"diagnoses\[(\d+)\]", key):
        k = int(match.group(1))
        return f"diagnoses-{dx_inputs[k]}" if k < len(dx_inputs) else "diagnoses"
    if match := re.fullmatch(r"lines\[(\d+)\]\.(\w+)", key):
        k, name = int(match.group(1)), match.group(2)
        if name not in _LINE_FIELDS:
            # The line's own date, place and provider are the visit's (no inputs of their own): the visit-level
            # error says it already.
            return None
        return f"lines-{line_rows[k]}-{_LINE_FIELDS[name]}" if k < len(line_rows) else "lines"
    if key in ("date_of_service", "place_of_service", "rendering_provider_id", "diagnoses", "lines"):
        return key
    if key == "coverage":
        return "create_claim"
    return "form"


def _merge_domain_errors(errors, domain: dict, dx_inputs, line_rows) -> None:
    own = set(errors)  # the page's own message for an input wins over the domain's wording of the same problem
    for key, messages in domain.items():
        target = _input_key(key, dx_inputs, line_rows)
        if target is None or target in own:
            continue
        for message in messages:
            if _sentence(message) not in errors.get(target, []):
                _add(errors, target, message)


def _form_field_errors(form: ChargeForm) -> dict[str, list[str]]:
    """Length limits and the like, from the WTForms validators, keyed by input id."""
    errors: dict[str, list[str]] = {}
    for name in ("date_of_service",):
        for message in getattr(form, name).errors:
            _add(errors, name, message)
    for entry in form.diagnoses:
        for message in entry.errors:
            _add(errors, entry.id, message)
    for entry in form.lines:
        for field in entry.form:
            for message in field.errors:
                _add(errors, field.id, message)
    return errors


def _descriptions(form: ChargeForm) -> dict[str, str]:
    """ICD-10-CM descriptions of the billable codes already typed in, shown beside their inputs."""
    out = {}
    for entry in form.diagnoses:
        code = (entry.data or "").strip()
        if code and len(code) <= 10 and codes.icd10_problem(code) is None:
            out[entry.id] = codes.icd10_description(code)
    return out


def _choose_patient(access: PracticeAccess):
    query = (request.args.get("q") or "").strip()[:60]
    rows = []
    total = 0
    if query:
        s = tenant_db(access)
        rows, total = list_patients(s, access, page=1, per_page=PATIENT_SEARCH_LIMIT, search=query)
        s.commit()  # the audit entry of the search
    return render_template("portal/claims/choose_patient.html", access=access, query=query, rows=rows, total=total)


@bp.route("/practices/<slug>/charges/new", methods=["GET", "POST"])
def charge_new(slug: str):
    access = _access(slug, "claims:write")
    if not access.can("patients:read"):
        raise Forbidden("charge entry needs patients:read")
    patient_id = _positive_int_arg("patient_id")
    if patient_id is None:
        if request.method == "POST":
            abort(400)
        return _choose_patient(access)
    s = tenant_db(access)
    patient = get_patient(s, access, patient_id)  # 404 for an unknown patient; audited as a read
    providers = _active_providers(s)
    form = ChargeForm()
    form.rendering_provider_id.choices = [SelectChoice("", "Choose a provider")] + [
        SelectChoice(str(p.id), _provider_choice(p)) for p in providers
    ]
    if request.method == "GET" and len(providers) == 1:
        form.rendering_provider_id.data = str(providers[0].id)
    errors: dict[str, list[str]] = {}
    if form.is_submitted():
        form.validate()  # CSRF (already enforced app-wide) and the inputs' length limits
        data, errors, dx_inputs, line_rows = _read_charge_form(form, patient.id, {p.id for p in providers})
        for key, messages in _form_field_errors(form).items():
            errors.setdefault(key, []).extend(m for m in messages if m not in errors.get(key, []))
        claims: list[Claim] = []
        encounter_id = None
        try:
            with s.begin_nested():
                encounter = create_encounter(s, access, data)
                if errors:
                    raise _Discard
                encounter_id = encounter.id
                if form.create_claim.data:
                    claims = create_claims(s, access, encounter.id)
                    for claim in claims:
                        scrub_claim(s, claim, user_id=access.user_id)
        except Invalid as exc:
            _merge_domain_errors(errors, exc.errors or {"form": [exc.message]}, dx_inputs, line_rows)
            if "coverage" in (exc.errors or {}):
                problem = _sentence(exc.message).rstrip(".")
                errors["create_claim"] = [
                    f"{problem}: add or correct the patient's coverage first, or clear “Create the claim now” to "
                    "save the visit without a claim."
                ]
        except _Discard:
            pass
        if not errors:
            s.commit()
            if not claims:
                flash(f"Visit saved without a claim (encounter {encounter_id}).", "success")
                return redirect(url_for("portal.charge_new", slug=access.slug, patient_id=patient.id))
            first = min(claims, key=lambda c: c.id)
            findings = "ready to submit" if first.status == "ready" else "the scrubber found problems to correct"
            more = f" ({len(claims)} claims)" if len(claims) > 1 else ""
            flash(f"Visit saved. Claim {first.id} created{more}: {findings}.", "success")
            return redirect(url_for("portal.claim_detail", slug=access.slug, claim_id=first.id))
    coverages = _patient_coverages(s, patient.id)
    s.commit()  # the audit entry of reading the patient (nothing else: a rejected visit was rolled back)
    labels = _field_labels()
    order = {key: n for n, key in enumerate(labels)}
    summary = [
        (key, labels.get(key, key), message)
        for key, messages in sorted(errors.items(), key=lambda item: order.get(item[0], len(order)))
        for message in messages
    ]
    return render_template(
        "portal/claims/charge_new.html",
        access=access,
        patient=patient,
        coverages=coverages,
        providers=providers,
        form=form,
        errors=errors,
        summary=summary,
        descriptions=_descriptions(form),
    ), (422 if errors else 200)


# --- claim list -----------------------------------------------------------------------------------------------------


@bp.get("/practices/<slug>/claims")
def claims_list(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    status = request.args.get("status", "")
    status = status if status in STATUSES else ""
    payer_id = _positive_int_arg("payer_id")
    sort = request.args.get("sort", DEFAULT_SORT)
    sort = sort if sort in SORTS else DEFAULT_SORT
    page = _page_arg()

    scope = [Claim.payer_id == payer_id] if payer_id else []
    counts = dict(s.execute(select(Claim.status, func.count()).where(*scope).group_by(Claim.status)).all())
    total = counts.get(status, 0) if status else sum(counts.values())
    filters = scope + ([Claim.status == status] if status else [])
    rows = s.execute(
        _claim_rows().where(*filters).order_by(*SORTS[sort]).limit(CLAIMS_PER_PAGE).offset((page - 1) * CLAIMS_PER_PAGE)
    ).all()
    payers = s.execute(
        select(Payer.id, Payer.name).where(Payer.id.in_(select(Claim.payer_id).distinct())).order_by(Payer.name)
    ).all()
    _audit(
        s,
        access,
        None,
        "list",
        {"ids": [r.id for r in rows], "status": status, "payer_id": payer_id, "page": page, "sort": sort},
    )
    s.commit()
    pages = max(1, math.ceil(total / CLAIMS_PER_PAGE))

    def list_url(**changes):
        args = {"status": status or None, "payer_id": payer_id, "sort": sort if sort != DEFAULT_SORT else None}
        args |= changes
        return url_for("portal.claims_list", slug=access.slug, **{k: v for k, v in args.items() if v})

    return render_template(
        "portal/claims/list.html",
        access=access,
        can_write=_may(access, "claims:write"),
        rows=rows,
        counts=counts,
        all_count=sum(counts.values()),
        total=total,
        status=status,
        payer_id=payer_id,
        payers=payers,
        sort=sort,
        page=page,
        pages=pages,
        first_index=(page - 1) * CLAIMS_PER_PAGE + 1,
        list_url=list_url,
    )


# --- claim detail and its actions -----------------------------------------------------------------------------------


def _diagnosis_rows(diagnoses: list[str]):
    rows = []
    for n, code in enumerate(diagnoses or [], start=1):
        try:
            description = codes.icd10_description(code) if codes.icd10_problem(code) is None else ""
        except Exception:  # noqa: BLE001 - a code the code set does not know is shown without a description
            description = ""
        rows.append((n, code, description))
    return rows


def _units(units) -> str:
    text = f"{units:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _submission_files(s, claim_id: int):
    storage = current_app.extensions["medbill"].storage
    files = []
    for submission, tcn in s.execute(
        select(Submission, SubmissionClaim.transaction_control_number)
        .join(SubmissionClaim, SubmissionClaim.submission_id == Submission.id)
        .where(SubmissionClaim.claim_id == claim_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all():
        url = None
        if submission.storage_key:
            try:
                url = storage.presigned_url(submission.storage_key, download_name=submission.filename)
            except StorageError:
                url = None
        files.append({"submission": submission, "transaction_control_number": tcn, "url": url})
    return files


def _render_detail(access: PracticeAccess, claim_id: int, *, reopen_form: ReopenForm | None = None, status=200):
    s = tenant_db(access)
    found = s.execute(
        select(
            Claim,
            Patient,
            Encounter.date_of_service,
            Encounter.place_of_service,
            Encounter.diagnoses,
            Coverage.member_id,
            Coverage.group_number,
            Coverage.priority,
            Payer.name.label("payer_name"),
            Payer.payer_id.label("payer_code"),
            Provider,
        )
        .join(Patient, Patient.id == Claim.patient_id)
        .join(Encounter, Encounter.id == Claim.encounter_id)
        .join(Coverage, Coverage.id == Claim.coverage_id)
        .join(Provider, Provider.id == Claim.rendering_provider_id)
        .outerjoin(Payer, Payer.id == Claim.payer_id)
        .where(Claim.id == claim_id)
    ).one_or_none()
    if found is None:
        raise NotFound(f"claim {claim_id} not found")
    claim = found.Claim
    diagnoses = list(found.diagnoses or [])
    lines = []
    for claim_line in claim.lines:  # selectin-loaded with their service lines joined: one query
        line = claim_line.service_line
        pointers = [(p, diagnoses[p - 1] if 0 < p <= len(diagnoses) else "?") for p in line.diagnosis_pointers or []]
        lines.append({"claim_line": claim_line, "line": line, "pointers": pointers, "units": _units(line.units)})
    history = s.execute(
        select(ClaimStatusChange, User.full_name)
        .outerjoin(User, User.id == ClaimStatusChange.user_id)
        .where(ClaimStatusChange.claim_id == claim.id)
        .order_by(ClaimStatusChange.at, ClaimStatusChange.id)
    ).all()
    acknowledgements = s.execute(
        select(ClaimAcknowledgement, InboundFile.kind)
        .join(InboundFile, InboundFile.id == ClaimAcknowledgement.inbound_file_id)
        .where(ClaimAcknowledgement.claim_id == claim.id)
        .order_by(ClaimAcknowledgement.at.desc(), ClaimAcknowledgement.id.desc())
    ).all()
    findings = latest_findings(s, claim.id)
    files = _submission_files(s, claim.id)
    _audit(s, access, claim.id, "read")
    s.commit()
    can_write = _may(access, "claims:write")
    return render_template(
        "portal/claims/detail.html",
        access=access,
        claim=claim,
        found=found,
        patient=found.Patient,
        provider=found.Provider,
        diagnoses=_diagnosis_rows(diagnoses),
        lines=lines,
        history=history,
        acknowledgements=acknowledgements,
        findings=findings,
        errors_found=sum(1 for f in findings if f.severity == "error"),
        ever_scrubbed=any(change.source == "scrubber" for change, _ in history),
        place_name=codes.PLACES_OF_SERVICE.get(found.place_of_service, ""),
        files=files,
        can_scrub=can_write and claim.status in EDITABLE,
        can_reopen=can_write and claim.status == "rejected",
        can_submit=can_write and claim.status == "ready",
        action_form=ActionForm(),
        reopen_form=reopen_form or ReopenForm(formdata=None),
        frequency_label=FREQUENCY_LABELS.get(claim.frequency_code, claim.frequency_code),
        source_labels=SOURCE_LABELS,
    ), status


@bp.get("/practices/<slug>/claims/<id:claim_id>")
def claim_detail(slug: str, claim_id: int):
    return _render_detail(_access(slug, "claims:read"), claim_id)


def _to_detail(access: PracticeAccess, claim_id: int):
    return redirect(url_for("portal.claim_detail", slug=access.slug, claim_id=claim_id))


@bp.post("/practices/<slug>/claims/<id:claim_id>/scrub")
def claim_scrub(slug: str, claim_id: int):
    access = _access(slug, "claims:write")
    if not ActionForm().validate_on_submit():
        abort(400)
    s = tenant_db(access)
    claim = get_claim(s, claim_id, for_update=True)
    if claim.status not in EDITABLE:
        s.rollback()
        flash(f"Claim {claim_id} is {status_label(claim.status)}: only an unsent claim can be scrubbed.", "error")
        return _to_detail(access, claim_id)
    findings = scrub_claim(s, claim, user_id=access.user_id)
    errors = sum(1 for f in findings if f.severity == "error")
    _audit(s, access, claim.id, "scrub", {"errors": errors, "warnings": len(findings) - errors})
    s.commit()
    if errors:
        flash(f"Claim {claim.id} scrubbed: {errors} error(s) to correct before it can be submitted.", "error")
    else:
        warnings = len(findings) - errors
        note = f" with {warnings} warning(s)" if warnings else ""
        flash(f"Claim {claim.id} scrubbed{note}: it is ready to submit.", "success")
    return _to_detail(access, claim.id)


@bp.post("/practices/<slug>/claims/<id:claim_id>/reopen")
def claim_reopen(slug: str, claim_id: int):
    access = _access(slug, "claims:write")
    form = ReopenForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_detail(access, claim_id, reopen_form=form, status=422)
    s = tenant_db(access)
    claim = get_claim(s, claim_id, for_update=True)
    if claim.status != "rejected":
        s.rollback()
        flash(f"Claim {claim_id} is {status_label(claim.status)}: only a rejected claim can be reopened.", "error")
        return _to_detail(access, claim_id)
    reason = (form.reason.data or "").strip() or "reopened for correction"
    transition(s, claim, "draft", source="user", user_id=access.user_id, reason=reason)
    _audit(s, access, claim.id, "reopen")
    s.commit()
    flash(f"Claim {claim.id} reopened for correction: it is a draft again. Correct it, then scrub it again.", "success")
    return _to_detail(access, claim.id)


def _pending_submission_job(s, access: PracticeAccess, claim_id: int) -> str | None:
    """The job id of a submission of this claim queued recently and not finished yet, if any."""
    entry = s.execute(
        select(AuditEntry.detail, (AuditEntry.at >= func.now() - timedelta(minutes=1)).label("fresh"))
        .where(
            AuditEntry.practice_id == access.practice_id,
            AuditEntry.at >= func.now() - SUBMIT_GUARD,
            AuditEntry.object_type == "claim",
            AuditEntry.object_id == str(claim_id),
            AuditEntry.action == "submit",
        )
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).first()
    job_id = (entry.detail or {}).get("job_id") if entry else None
    if not job_id:
        return None
    try:
        state = Job.fetch(job_id, connection=current_app.extensions["medbill"].redis).get_status()
    except NoSuchJobError:
        return job_id if entry.fresh else None  # queued a moment ago, not yet in Redis (enqueued after commit)
    return job_id if state in PENDING_JOB_STATUSES else None


@bp.post("/practices/<slug>/claims/<id:claim_id>/submit")
def claim_submit(slug: str, claim_id: int):
    access = _access(slug, "claims:write")
    if not ActionForm().validate_on_submit():
        abort(400)
    s = tenant_db(access)
    claim = get_claim(s, claim_id, for_update=True)  # two clicks queue one job: the second waits here, then sees it
    if claim.status != "ready":
        s.rollback()
        flash(
            f"Claim {claim_id} is {status_label(claim.status)}: only a ready claim can be submitted. "
            "Scrub it again once it is corrected.",
            "error",
        )
        return _to_detail(access, claim_id)
    pending = _pending_submission_job(s, access, claim.id)
    if pending:
        s.rollback()
        flash(f"Claim {claim.id} is already queued for submission (job {pending}).", "info")
        return _to_detail(access, claim.id)
    user_id = access.user_id
    job_id = current_app.extensions["medbill"].dispatcher.enqueue_after_commit(
        s,
        "submission",
        "jobs.submission.submit_claims",
        access.slug,
        [claim.id],
        user_id,
        meta={"user_id": user_id, "practice": access.slug, "kind": "submission"},
    )
    _audit(s, access, claim.id, "submit", {"job_id": job_id})
    s.commit()  # the job is queued by this commit
    flash(f"Claim {claim.id} queued for submission (job {job_id}).", "success")
    return _to_detail(access, claim.id)


# --- rejection queue ------------------------------------------------------------------------------------------------


@bp.get("/practices/<slug>/rejections")
def rejections(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    page = _page_arg()
    latest_rejection = (
        select(ClaimStatusChange.at, ClaimStatusChange.reason, ClaimStatusChange.source)
        .where(ClaimStatusChange.claim_id == Claim.id, ClaimStatusChange.to_status == "rejected")
        .order_by(ClaimStatusChange.at.desc(), ClaimStatusChange.id.desc())
        .limit(1)
        .correlate(Claim)
        .lateral("latest_rejection")
    )
    latest_ack = (
        select(ClaimAcknowledgement.reasons, ClaimAcknowledgement.at)
        .where(ClaimAcknowledgement.claim_id == Claim.id)
        .order_by(ClaimAcknowledgement.at.desc(), ClaimAcknowledgement.id.desc())
        .limit(1)
        .correlate(Claim)
        .lateral("latest_ack")
    )
    rejected_since = func.coalesce(latest_rejection.c.at, latest_ack.c.at, Claim.created_at)
    total = s.scalar(select(func.count()).select_from(Claim).where(Claim.status == "rejected")) or 0
    rows = s.execute(
        _claim_rows()
        .add_columns(
            rejected_since.label("rejected_at"),
            latest_rejection.c.reason.label("rejection_note"),
            latest_rejection.c.source.label("rejection_source"),
            latest_ack.c.reasons.label("reasons"),
        )
        .outerjoin(latest_rejection, true())
        .outerjoin(latest_ack, true())
        .where(Claim.status == "rejected")
        .order_by(rejected_since.asc(), Claim.id.asc())
        .limit(CLAIMS_PER_PAGE)
        .offset((page - 1) * CLAIMS_PER_PAGE)
    ).all()
    _audit(s, access, None, "list", {"ids": [r.id for r in rows], "queue": "rejections", "page": page})
    s.commit()
    return render_template(
        "portal/claims/rejections.html",
        access=access,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / CLAIMS_PER_PAGE)),
        first_index=(page - 1) * CLAIMS_PER_PAGE + 1,
        source_labels=SOURCE_LABELS,
    )
