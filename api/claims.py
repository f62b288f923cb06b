"""Charges and claims over HTTP: encounters, claims built from them, the scrubber, line moves, corrections, manual
status changes, submissions to the clearinghouse (as a background job) and the rejection work queue. Thin views over
billing.encounters, billing.claims, billing.claim_status and billing.scrubber; every read of patient data is
audited."""

from __future__ import annotations

from collections import Counter

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from api.schemas import BoundedList, PageArgs, PageMeta
from api.security import access, db_session, policy
from api.setup import Id, Money
from billing import claims, encounters, scrubber
from billing.claim_status import EDITABLE, STATUSES, transition
from billing.encounters import MAX_DIAGNOSES, MAX_LINES, MAX_MODIFIERS, MAX_POINTERS
from billing.models import (
    Claim,
    ClaimAcknowledgement,
    ClaimStatusChange,
    Encounter,
    Patient,
    Submission,
    SubmissionClaim,
)
from billing.setup import payers_by_id
from integrations.storage import StorageKeyNotFound
from medbill.errors import Invalid, NotFound
from tenants import audit

blp = Blueprint(
    "claims",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Encounters, claims, scrubbing, submissions and rejections",
)

MAX_BATCH = 5000


def _audit(session: Session, object_type: str, object_id, action: str, detail: dict | None = None) -> None:
    audit.record_access(session, access(), object_type, object_id, action, detail)


def _download_url(submission: Submission) -> str | None:
    """A short-lived link to the 837P file; None while the file is not stored (yet)."""
    if not submission.storage_key:
        return None
    storage = current_app.extensions["medbill"].storage
    try:
        return storage.presigned_url(submission.storage_key, download_name=submission.filename)
    except StorageKeyNotFound:
        return None


# --- schemas --------------------------------------------------------------------------------------------------------


class Units(fields.Decimal):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("validate", validate.Range(min=0, max=999999, min_inclusive=False))
        super().__init__(places=3, as_string=True, **kwargs)


class LineIn(Schema):
    procedure_code = fields.String(required=True, metadata={"description": "CPT/HCPCS"})
    modifiers = BoundedList(
        fields.String(validate=validate.Length(max=10)), max_length=MAX_MODIFIERS, load_default=list
    )
    units = Units(load_default=None)
    diagnosis_pointers = BoundedList(
        fields.Integer(validate=validate.Range(min=1, max=12)),
        max_length=MAX_POINTERS,
        load_default=list,
        metadata={"description": "1-based positions in the encounter's diagnoses; [1] when omitted"},
    )
    charge = Money(load_default=None, allow_none=True, metadata={"description": "from the fee schedule when omitted"})
    date_of_service = fields.Date(load_default=None, allow_none=True)
    place_of_service = fields.String(load_default=None, allow_none=True)
    rendering_provider_id = Id(load_default=None, allow_none=True)


class EncounterIn(Schema):
    patient_id = Id(required=True)
    date_of_service = fields.Date(required=True)
    place_of_service = fields.String(required=True, metadata={"description": "CMS place of service, e.g. 11"})
    rendering_provider_id = Id(required=True)
    diagnoses = BoundedList(fields.String(validate=validate.Length(max=10)), max_length=MAX_DIAGNOSES, required=True)
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    lines = BoundedList(fields.Nested(LineIn), max_length=MAX_LINES, required=True)


class ServiceLineOut(Schema):
    id = fields.Integer(required=True)
    line_number = fields.Integer(required=True)
    procedure_code = fields.String(required=True)
    modifiers = fields.List(fields.String(), required=True)
    units = fields.Decimal(as_string=True, places=3, required=True)
    diagnosis_pointers = fields.List(fields.Integer(), required=True)
    charge = Money(required=True)
    date_of_service = fields.Date(required=True)
    place_of_service = fields.String(required=True)
    rendering_provider_id = fields.Integer(required=True)


class EncounterOut(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    date_of_service = fields.Date(required=True)
    place_of_service = fields.String(required=True)
    rendering_provider_id = fields.Integer(required=True)
    diagnoses = fields.List(fields.String(), required=True)
    note = fields.String(required=True)
    created_by_user_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    lines = fields.List(fields.Nested(ServiceLineOut), required=True)
    claim_ids = fields.List(fields.Integer(), required=True)


class SplitIn(Schema):
    split = fields.String(
        load_default="none",
        validate=validate.OneOf(claims.SPLITS),
        metadata={"description": "one claim, or one per rendering provider or per date of service"},
    )


class PatientRef(Schema):
    id = fields.Integer(required=True)
    account_number = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)


class PayerRef(Schema):
    id = fields.Integer(required=True)
    payer_id = fields.String(required=True, metadata={"description": "clearinghouse payer id"})
    name = fields.String(required=True)


class ClaimLineOut(Schema):
    id = fields.Integer(required=True, metadata={"description": "the line item control number (REF*6R)"})
    line_item_control_number = fields.String(required=True)
    line_number = fields.Integer(required=True)
    service_line_id = fields.Integer(required=True)
    procedure_code = fields.String(required=True)
    modifiers = fields.List(fields.String(), required=True)
    units = fields.Decimal(as_string=True, places=3, required=True)
    charge = Money(required=True)
    date_of_service = fields.Date(required=True)
    place_of_service = fields.String(required=True)
    rendering_provider_id = fields.Integer(required=True)
    diagnosis_pointers = fields.List(fields.Integer(), required=True)


class ClaimOut(Schema):
    id = fields.Integer(required=True)
    patient_control_number = fields.String(required=True, metadata={"description": "CLM01"})
    encounter_id = fields.Integer(required=True)
    patient = fields.Nested(PatientRef, allow_none=True)
    payer = fields.Nested(PayerRef, allow_none=True)
    coverage_id = fields.Integer(required=True)
    rendering_provider_id = fields.Integer(required=True)
    status = fields.String(required=True)
    frequency_code = fields.String(required=True, metadata={"description": "1 original, 7 replacement, 8 void"})
    original_claim_id = fields.Integer(allow_none=True)
    payer_claim_number = fields.String(allow_none=True)
    total_charge = Money(required=True)
    date_of_service = fields.Date(allow_none=True, metadata={"description": "the earliest line's date"})
    line_count = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    submitted_at = fields.DateTime(allow_none=True)


class ClaimWithLines(ClaimOut):
    lines = fields.List(fields.Nested(ClaimLineOut), required=True)


class HistoryOut(Schema):
    from_status = fields.String(allow_none=True, data_key="from")
    to_status = fields.String(required=True, data_key="to")
    at = fields.DateTime(required=True)
    user_id = fields.Integer(allow_none=True)
    source = fields.String(required=True)
    reason = fields.String(required=True)


class FindingOut(Schema):
    rule = fields.String(required=True)
    severity = fields.String(required=True)
    field = fields.String(required=True)
    message = fields.String(required=True)


class AcknowledgementOut(Schema):
    accepted = fields.Boolean(required=True)
    reasons = fields.List(fields.String(), required=True)
    payer_claim_number = fields.String(allow_none=True)
    at = fields.DateTime(required=True)


class ClaimFileOut(Schema):
    id = fields.Integer(required=True)
    filename = fields.String(required=True)
    interchange_control_number = fields.Integer(required=True)
    transaction_control_number = fields.String(required=True)
    status = fields.String(required=True)
    transmitted_at = fields.DateTime(allow_none=True)
    download_url = fields.String(allow_none=True)


class ClaimDetail(ClaimWithLines):
    history = fields.List(fields.Nested(HistoryOut), required=True)
    findings = fields.List(fields.Nested(FindingOut), required=True, metadata={"description": "latest scrub run"})
    acknowledgements = fields.List(fields.Nested(AcknowledgementOut), required=True)
    files = fields.List(fields.Nested(ClaimFileOut), required=True, metadata={"description": "submissions"})


class ClaimListArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    payer_id = Id(load_default=None)
    rendering_provider_id = Id(load_default=None)
    patient_id = Id(load_default=None)
    date_from = fields.Date(load_default=None, metadata={"description": "date of service on or after"})
    date_to = fields.Date(load_default=None, metadata={"description": "date of service on or before"})


class ClaimPage(Schema):
    items = fields.List(fields.Nested(ClaimOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class ScrubOut(Schema):
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)
    findings = fields.List(fields.Nested(FindingOut), required=True)


class BatchScrubIn(Schema):
    claim_ids = BoundedList(
        Id(),
        load_default=None,
        min_length=1,
        max_length=MAX_BATCH,
        metadata={"description": "omit to scrub every claim in draft or scrubbed"},
    )


class SkippedOut(Schema):
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)


class BatchScrubOut(Schema):
    total = fields.Integer(required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    skipped = fields.List(fields.Nested(SkippedOut), required=True, metadata={"description": "already sent"})


class MoveIn(Schema):
    to_claim_id = Id(required=True)


class MoveOut(Schema):
    source = fields.Nested(ClaimWithLines, required=True)
    target = fields.Nested(ClaimWithLines, required=True)


class CorrectionIn(Schema):
    frequency_code = fields.String(
        required=True, validate=validate.OneOf(["7", "8"]), metadata={"description": "7 replacement, 8 void"}
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class StatusIn(Schema):
    to = fields.String(
        required=True,
        validate=validate.OneOf(["draft", "closed"]),
        metadata={"description": "draft: reopen (e.g. a rejected claim) for correction; closed: stop working it"},
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class SubmitIn(Schema):
    claim_ids = BoundedList(
        Id(),
        load_default=None,
        allow_none=True,
        min_length=1,
        max_length=MAX_BATCH,
        metadata={"description": "omit to submit every ready claim"},
    )


class JobAccepted(Schema):
    job_id = fields.String(required=True, metadata={"description": "follow it at GET /api/v1/jobs/{job_id}"})


class SubmissionOut(Schema):
    id = fields.Integer(required=True)
    clearinghouse_name = fields.String(required=True)
    filename = fields.String(required=True)
    interchange_control_number = fields.Integer(required=True)
    group_control_number = fields.Integer(required=True)
    status = fields.String(required=True)
    claim_count = fields.Integer(required=True)
    total_charge = Money(required=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(required=True)
    created_by_user_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    transmitted_at = fields.DateTime(allow_none=True)


class SubmissionClaimOut(Schema):
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)
    transaction_control_number = fields.String(required=True)


class SubmissionDetail(SubmissionOut):
    claims = fields.List(fields.Nested(SubmissionClaimOut), required=True)
    ack_detail = fields.Dict(required=True)
    download_url = fields.String(allow_none=True)


class SubmissionListArgs(PageArgs):
    status = fields.String(
        load_default=None,
        validate=validate.OneOf(["created", "transmitted", "failed", "accepted", "partially_accepted", "rejected"]),
    )


class SubmissionPage(Schema):
    items = fields.List(fields.Nested(SubmissionOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class RejectionOut(Schema):
    claim_id = fields.Integer(required=True)
    patient_control_number = fields.String(required=True)
    patient = fields.Nested(PatientRef, required=True)
    payer = fields.Nested(PayerRef, allow_none=True)
    total_charge = Money(required=True)
    date_of_service = fields.Date(required=True)
    frequency_code = fields.String(required=True)
    rejected_at = fields.DateTime(allow_none=True)
    reasons = fields.List(fields.String(), required=True, metadata={"description": "the latest 277CA's, in words"})
    acknowledged_at = fields.DateTime(allow_none=True)


class RejectionPage(Schema):
    items = fields.List(fields.Nested(RejectionOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


# --- building responses ---------------------------------------------------------------------------------------------


def _claim_line(cl) -> dict:
    line = cl.service_line
    return {
        "id": cl.id,
        "line_item_control_number": str(cl.id),
        "line_number": cl.line_number,
        "service_line_id": cl.service_line_id,
        "procedure_code": line.procedure_code,
        "modifiers": list(line.modifiers or []),
        "units": line.units,
        "charge": cl.charge,
        "date_of_service": line.date_of_service,
        "place_of_service": line.place_of_service,
        "rendering_provider_id": line.rendering_provider_id,
        "diagnosis_pointers": list(line.diagnosis_pointers or []),
    }


def _claims_out(session: Session, rows: list[Claim], *, lines: bool = False) -> list[dict]:
    """Claims with their patient and payer, loaded in one query each whatever the number of claims."""
    patients = (
        {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_({c.patient_id for c in rows})))}
        if rows
        else {}
    )
    payers = payers_by_id(session, (c.payer_id for c in rows))
    out = []
    for claim in rows:
        item = {
            name: getattr(claim, name)
            for name in (
                "id",
                "patient_control_number",
                "encounter_id",
                "coverage_id",
                "rendering_provider_id",
                "status",
                "frequency_code",
                "original_claim_id",
                "payer_claim_number",
                "total_charge",
                "created_at",
                "submitted_at",
            )
        }
        item["patient"] = patients.get(claim.patient_id)
        item["payer"] = payers.get(claim.payer_id)
        item["date_of_service"] = min((cl.service_line.date_of_service for cl in claim.lines), default=None)
        item["line_count"] = len(claim.lines)
        if lines:
            item["lines"] = [_claim_line(cl) for cl in claim.lines]
        out.append(item)
    return out


def _encounter_out(session: Session, encounter: Encounter) -> dict:
    claim_ids = list(session.scalars(select(Claim.id).where(Claim.encounter_id == encounter.id).order_by(Claim.id)))
    return {
        **{name: getattr(encounter, name) for name in EncounterOut._declared_fields if name != "claim_ids"},
        "claim_ids": claim_ids,
    }


# --- encounters -----------------------------------------------------------------------------------------------------


@blp.route("/encounters", methods=["POST"])
@policy("claims:write")
@blp.arguments(EncounterIn)
@blp.response(201, EncounterOut)
def create_encounter(body, slug: str):
    """Enter a visit's charges. Every problem is reported at once, by field (`lines[1].modifiers`); lines without a
    charge are priced from the fee schedule."""
    session = db_session()
    for line in body["lines"]:
        for key in ("units", "charge", "date_of_service", "place_of_service", "rendering_provider_id"):
            if line.get(key) is None:
                line.pop(key, None)
    encounter = encounters.create_encounter(session, access(), body)
    out = _encounter_out(session, encounter)
    session.commit()
    return out


@blp.route("/encounters/<id:encounter_id>", methods=["GET"])
@policy("claims:read")
@blp.response(200, EncounterOut)
def get_encounter(slug: str, encounter_id: int):
    """A visit with its service lines and the ids of the claims built from it."""
    session = db_session()
    encounter = encounters.get_encounter(session, encounter_id)
    out = _encounter_out(session, encounter)
    _audit(session, "encounter", encounter.id, "read", {"patient_id": encounter.patient_id})
    session.commit()
    return out


@blp.route("/encounters/<id:encounter_id>/claims", methods=["POST"])
@policy("claims:write")
@blp.arguments(SplitIn)
@blp.response(201, ClaimWithLines(many=True))
def create_claims(body, slug: str, encounter_id: int):
    """Bill the encounter's unbilled lines to the patient's primary coverage on the date of service: one claim, or
    one per rendering provider or per date of service."""
    session = db_session()
    created = claims.create_claims(session, access(), encounter_id, body["split"])
    out = _claims_out(session, created, lines=True)
    session.commit()
    return out


# --- claims ---------------------------------------------------------------------------------------------------------


@blp.route("/claims", methods=["GET"])
@policy("claims:read")
@blp.arguments(ClaimListArgs, location="query")
@blp.response(200, ClaimPage)
def list_claims(args, slug: str):
    """Claims, newest first, filtered by status, payer, rendering provider, patient and date of service."""
    session = db_session()
    filters = {k: args[k] for k in ClaimListArgs._declared_fields if k not in ("page", "per_page")}
    rows, total = claims.list_claims(session, page=args["page"], per_page=args["per_page"], **filters)
    out = _claims_out(session, rows)
    _audit(
        session,
        "claim",
        None,
        "list",
        {"ids": [c.id for c in rows], "filters": {k: str(v) for k, v in filters.items() if v is not None}},
    )
    session.commit()
    return {"items": out, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}


@blp.route("/claims/<id:claim_id>", methods=["GET"])
@policy("claims:read")
@blp.response(200, ClaimDetail)
def get_claim(slug: str, claim_id: int):
    """A claim with its lines, status history, latest scrub findings, the payer's acknowledgements and the files it
    was submitted in (with a short-lived download link)."""
    session = db_session()
    claim = claims.get_claim(session, claim_id)
    out = _claims_out(session, [claim], lines=True)[0]
    out["history"] = list(
        session.scalars(
            select(ClaimStatusChange)
            .where(ClaimStatusChange.claim_id == claim.id)
            .order_by(ClaimStatusChange.at, ClaimStatusChange.id)
        )
    )
    out["findings"] = scrubber.latest_findings(session, claim.id)
    out["acknowledgements"] = list(
        session.scalars(
            select(ClaimAcknowledgement)
            .where(ClaimAcknowledgement.claim_id == claim.id)
            .order_by(ClaimAcknowledgement.at, ClaimAcknowledgement.id)
        )
    )
    files = session.execute(
        select(Submission, SubmissionClaim.transaction_control_number)
        .join(SubmissionClaim, SubmissionClaim.submission_id == Submission.id)
        .where(SubmissionClaim.claim_id == claim.id)
        .order_by(Submission.created_at, Submission.id)
    )
    out["files"] = [
        {
            "id": sub.id,
            "filename": sub.filename,
            "interchange_control_number": sub.interchange_control_number,
            "transaction_control_number": tcn,
            "status": sub.status,
            "transmitted_at": sub.transmitted_at,
            "download_url": _download_url(sub),
        }
        for sub, tcn in files
    ]
    _audit(session, "claim", claim.id, "read", {"patient_id": claim.patient_id})
    session.commit()
    return out


@blp.route("/claims/<id:claim_id>/scrub", methods=["POST"])
@policy("claims:write")
@blp.response(200, ScrubOut)
def scrub_claim(slug: str, claim_id: int):
    """Run every scrubber rule: the claim becomes ready (no errors) or scrubbed (errors to fix). Only unsent claims
    can be scrubbed."""
    session = db_session()
    claim = claims.get_claim(session, claim_id, for_update=True)
    findings = scrubber.scrub_claim(session, claim, user_id=access().user_id)
    _audit(session, "claim", claim.id, "scrub", {"status": claim.status, "findings": len(findings)})
    session.commit()
    return {"claim_id": claim.id, "status": claim.status, "findings": findings}


@blp.route("/claims/scrub", methods=["POST"])
@policy("claims:write")
@blp.arguments(BatchScrubIn)
@blp.response(200, BatchScrubOut)
def scrub_claims(body, slug: str):
    """Scrub the listed claims, or with `{}` every claim in draft or scrubbed; answers how many ended in each status.
    Listed claims that were already sent are skipped."""
    session = db_session()
    if body.get("claim_ids"):
        ids = sorted(set(body["claim_ids"]))
        rows = list(session.scalars(select(Claim).where(Claim.id.in_(ids)).order_by(Claim.id).with_for_update()))
        missing = sorted(set(ids) - {c.id for c in rows})
        if missing:
            raise NotFound(
                f"claim(s) not found: {', '.join(map(str, missing[:20]))}",
                errors={"claim_ids": [f"not found: {', '.join(map(str, missing[:20]))}"]},
            )
    else:
        # Claims another request is scrubbing right now are left to it.
        rows = list(
            session.scalars(
                select(Claim)
                .where(Claim.status.in_(("draft", "scrubbed")))
                .order_by(Claim.id)
                .with_for_update(skip_locked=True)
            )
        )
    counts: Counter[str] = Counter()
    skipped = []
    for claim in rows:
        if claim.status not in EDITABLE:
            skipped.append({"claim_id": claim.id, "status": claim.status})
            continue
        scrubber.scrub_claim(session, claim, user_id=access().user_id)
        counts[claim.status] += 1
    _audit(session, "claim", None, "scrub", {"ids": [c.id for c in rows], "counts": dict(counts)})
    session.commit()
    return {"total": sum(counts.values()), "counts": dict(counts), "skipped": skipped}


@blp.route("/claims/lines/<id:claim_line_id>/move", methods=["POST"])
@policy("claims:write")
@blp.arguments(MoveIn)
@blp.response(200, MoveOut)
def move_line(body, slug: str, claim_line_id: int):
    """Move a line to another unsent claim of the same encounter and coverage; both claims go back to draft."""
    session = db_session()
    source, target = claims.move_line(session, access(), claim_line_id, body["to_claim_id"])
    source_out, target_out = _claims_out(session, [source, target], lines=True)
    session.commit()
    return {"source": source_out, "target": target_out}


@blp.route("/claims/<id:claim_id>/corrections", methods=["POST"])
@policy("claims:write")
@blp.arguments(CorrectionIn)
@blp.response(201, ClaimWithLines)
def create_correction(body, slug: str, claim_id: int):
    """A replacement (7) or void (8) of a claim the payer accepted; it carries the payer's claim number."""
    session = db_session()
    claim = claims.create_correction(session, access(), claim_id, body["frequency_code"], body["reason"])
    out = _claims_out(session, [claim], lines=True)[0]
    session.commit()
    return out


@blp.route("/claims/<id:claim_id>/status", methods=["POST"])
@policy("claims:write")
@blp.arguments(StatusIn)
@blp.response(200, ClaimWithLines)
def change_status(body, slug: str, claim_id: int):
    """A biller's manual transition: back to draft (e.g. a rejected claim, to correct and resubmit it) or closed."""
    session = db_session()
    claim = claims.get_claim(session, claim_id, for_update=True)
    before = claim.status
    transition(session, claim, body["to"], source="user", user_id=access().user_id, reason=body["reason"])
    _audit(session, "claim", claim.id, "status", {"from": before, "to": claim.status, "reason": body["reason"]})
    session.flush()
    out = _claims_out(session, [claim], lines=True)[0]
    session.commit()
    return out


# --- submissions ----------------------------------------------------------------------------------------------------


@blp.route("/submissions", methods=["POST"])
@policy("claims:write")
@blp.arguments(SubmitIn)
@blp.response(202, JobAccepted)
def submit(body, slug: str):
    """Send ready claims to the clearinghouse in the background (the listed ones, or every ready claim). The job
    starts once this request commits; follow it at GET /api/v1/jobs/{job_id}."""
    session = db_session()
    claim_ids = sorted(set(body["claim_ids"])) if body.get("claim_ids") else None
    if claim_ids:
        found = set(session.scalars(select(Claim.id).where(Claim.id.in_(claim_ids))))
        missing = [i for i in claim_ids if i not in found]
        if missing:
            raise Invalid("unknown claims", errors={"claim_ids": [f"not found: {', '.join(map(str, missing[:20]))}"]})
    user_id = access().user_id
    job_id = current_app.extensions["medbill"].dispatcher.enqueue_after_commit(
        session,
        "submission",
        "jobs.submission.submit_claims",
        slug,
        claim_ids,
        user_id,
        meta={"user_id": user_id, "practice": slug, "kind": "submission"},
    )
    _audit(session, "submission", None, "request", {"claim_ids": claim_ids, "job_id": job_id})
    session.commit()
    return {"job_id": job_id}


@blp.route("/submissions", methods=["GET"])
@policy("claims:read")
@blp.arguments(SubmissionListArgs, location="query")
@blp.response(200, SubmissionPage)
def list_submissions(args, slug: str):
    """Files sent (or being sent) to the clearinghouse, newest first."""
    session = db_session()
    stmt = select(Submission)
    if args["status"]:
        stmt = stmt.where(Submission.status == args["status"])
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(
        session.scalars(
            stmt.order_by(Submission.created_at.desc(), Submission.id.desc())
            .limit(args["per_page"])
            .offset((args["page"] - 1) * args["per_page"])
        )
    )
    return {"items": rows, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}


@blp.route("/submissions/<id:submission_id>", methods=["GET"])
@policy("claims:read")
@blp.response(200, SubmissionDetail)
def get_submission(slug: str, submission_id: int):
    """A submission with its claims (and their current status), the clearinghouse's acknowledgement and a
    short-lived link to the file."""
    session = db_session()
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(f"submission {submission_id} not found")
    members = session.execute(
        select(SubmissionClaim.claim_id, Claim.status, SubmissionClaim.transaction_control_number)
        .join(Claim, Claim.id == SubmissionClaim.claim_id)
        .where(SubmissionClaim.submission_id == sub.id)
        .order_by(SubmissionClaim.claim_id)
    )
    out = {name: getattr(sub, name) for name in SubmissionOut._declared_fields}
    out["claims"] = [
        {"claim_id": cid, "status": status, "transaction_control_number": tcn} for cid, status, tcn in members
    ]
    out["ack_detail"] = sub.ack_detail or {}
    out["download_url"] = _download_url(sub)
    return out


# --- the rejection work queue ---------------------------------------------------------------------------------------


@blp.route("/rejections", methods=["GET"])
@policy("claims:read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, RejectionPage)
def list_rejections(args, slug: str):
    """Claims the clearinghouse or payer rejected, oldest rejection first, with the latest reasons in words: fix,
    set back to draft, scrub and submit again."""
    session = db_session()
    rejected_at = (
        select(func.max(ClaimStatusChange.at))
        .where(ClaimStatusChange.claim_id == Claim.id, ClaimStatusChange.to_status == "rejected")
        .correlate(Claim)
        .scalar_subquery()
    )
    latest_ack = (
        select(ClaimAcknowledgement.reasons, ClaimAcknowledgement.at)
        .where(ClaimAcknowledgement.claim_id == Claim.id)
        .order_by(ClaimAcknowledgement.at.desc(), ClaimAcknowledgement.id.desc())
        .limit(1)
        .correlate(Claim)
        .lateral()
    )
    base = select(Claim.id).where(Claim.status == "rejected")
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rejected = rejected_at.label("rejected_at")
    rows = session.execute(
        select(
            Claim.id,
            Claim.payer_id,
            Claim.total_charge,
            Claim.frequency_code,
            Encounter.date_of_service,
            Patient,
            rejected,
            latest_ack.c.reasons,
            latest_ack.c.at,
        )
        .join(Patient, Patient.id == Claim.patient_id)
        .join(Encounter, Encounter.id == Claim.encounter_id)
        .outerjoin(latest_ack, true())
        .where(Claim.status == "rejected")
        .order_by(rejected.asc().nulls_first(), Claim.id)
        .limit(args["per_page"])
        .offset((args["page"] - 1) * args["per_page"])
    ).all()
    payers = payers_by_id(session, (r.payer_id for r in rows))
    items = [
        {
            "claim_id": r.id,
            "patient_control_number": str(r.id),
            "patient": r.Patient,
            "payer": payers.get(r.payer_id),
            "total_charge": r.total_charge,
            "date_of_service": r.date_of_service,
            "frequency_code": r.frequency_code,
            "rejected_at": r.rejected_at,
            "reasons": list(r.reasons or []),
            "acknowledged_at": r.at,
        }
        for r in rows
    ]
    _audit(session, "claim", None, "list", {"queue": "rejections", "ids": [i["claim_id"] for i in items]})
    session.commit()
    return {"items": items, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}
