"""Patients of a practice: list (paginated, searchable), register, read, update, and bulk import from CSV."""

from __future__ import annotations

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.schemas import PageArgs, PageMeta
from api.security import access, db_session, policy
from billing import patient_imports, patients
from integrations.storage import practice_key
from medbill.errors import Invalid, NotFound
from medbill.input_limits import upload_limit

blp = Blueprint("patients", __name__, url_prefix="/api/v1/practices/<slug>", description="Patients of a practice")

MAX_IMPORT_BYTES = 20 * 1024 * 1024


class PatientIn(Schema):
    account_number = fields.String(required=True, validate=validate.Length(min=1, max=30))
    first_name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    last_name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    middle_name = fields.String(load_default="", validate=validate.Length(max=60))
    date_of_birth = fields.Date(required=True)
    sex = fields.String(required=True, validate=validate.OneOf(["F", "M", "U"]))
    address_line1 = fields.String(required=True, validate=validate.Length(min=1, max=55))
    address_line2 = fields.String(load_default="", validate=validate.Length(max=55))
    city = fields.String(required=True, validate=validate.Length(min=1, max=30))
    state = fields.String(required=True, validate=validate.Length(equal=2))
    postal_code = fields.String(required=True, validate=validate.Length(min=5, max=10))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    email = fields.Email(load_default=None, allow_none=True)


class PatientPatch(PatientIn):
    """Any subset of the patient fields."""


class PatientOut(PatientIn):
    id = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class PatientListArgs(PageArgs):
    q = fields.String(load_default=None, validate=validate.Length(max=60), metadata={"description": "name or account"})


class PatientPage(Schema):
    items = fields.List(fields.Nested(PatientOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class ImportAccepted(Schema):
    import_id = fields.Integer(required=True)
    job_id = fields.String(allow_none=True)
    status = fields.String(required=True)
    duplicate = fields.Boolean(required=True)


class ImportOut(Schema):
    import_id = fields.Integer(required=True)
    status = fields.String(required=True)
    rows_total = fields.Integer(required=True)
    rows_created = fields.Integer(required=True)
    rows_existing = fields.Integer(required=True)
    errors = fields.Dict(required=True)


@blp.route("/patients", methods=["GET"])
@policy("patients:read")
@blp.arguments(PatientListArgs, location="query")
@blp.response(200, PatientPage)
def list_patients(args, slug: str):
    """Patients, sorted by name; `q` searches name and account number."""
    session = db_session()
    rows, total = patients.list_patients(
        session, access(), page=args["page"], per_page=args["per_page"], search=args["q"]
    )
    session.commit()  # the audit entry of this read
    return {"items": rows, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}


@blp.route("/patients", methods=["POST"])
@policy("patients:write")
@blp.arguments(PatientIn)
@blp.response(201, PatientOut)
def create_patient(body, slug: str):
    """Register a patient."""
    session = db_session()
    patient = patients.create_patient(session, access(), body)
    session.commit()
    return patient


@blp.route("/patients/<id:patient_id>", methods=["GET"])
@policy("patients:read")
@blp.response(200, PatientOut)
def get_patient(slug: str, patient_id: int):
    """One patient."""
    session = db_session()
    patient = patients.get_patient(session, access(), patient_id)
    session.commit()
    return patient


@blp.route("/patients/<id:patient_id>", methods=["PATCH"])
@policy("patients:write")
@blp.arguments(PatientPatch(partial=True))
@blp.response(200, PatientOut)
def update_patient(body, slug: str, patient_id: int):
    """Change some of a patient's fields."""
    session = db_session()
    patient = patients.update_patient(session, access(), patient_id, body)
    session.commit()
    return patient


@blp.route("/patients/imports", methods=["POST"])
@policy("patients:write")
@blp.response(202, ImportAccepted)
@upload_limit(MAX_IMPORT_BYTES)
def create_import(slug: str):
    """Upload a CSV of patients (multipart field `file`; columns are the patient fields). Registered once per file
    content; a background job validates every row and registers all of them or none."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid("send the CSV as multipart/form-data field 'file'", errors={"file": ["required"]})
    data = upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise Invalid("file too large", errors={"file": [f"at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB"]})
    if not data.strip():
        raise Invalid("file is empty", errors={"file": ["empty"]})
    services = current_app.extensions["medbill"]
    session = db_session()
    key = practice_key(slug, "imports", "patients", f"{patient_imports.sha256_of(data)}.csv")
    # Content-addressed key: storing the same file twice writes the same object.
    services.storage.put(key, data, content_type="text/csv", metadata={"filename": upload.filename[:200]})
    imp, created = patient_imports.register_import(
        session, access(), filename=upload.filename, data=data, storage_key=key
    )
    job_id = imp.job_id
    if created:
        job_id = services.dispatcher.enqueue_after_commit(
            session,
            "default",
            "jobs.patient_imports.import_patients",
            slug,
            imp.id,
            meta={"user_id": access().user_id, "practice": slug, "kind": "patient_import"},
        )
        patient_imports.attach_job(session, imp.id, job_id)
    session.commit()
    return {"import_id": imp.id, "job_id": job_id, "status": imp.status, "duplicate": not created}


@blp.route("/patients/imports/<id:import_id>", methods=["GET"])
@policy("patients:read")
@blp.response(200, ImportOut)
def get_import(slug: str, import_id: int):
    """An import's outcome: counts, or the problems by row when the file was refused."""
    if access().placed_only:
        raise NotFound(f"patient import {import_id} not found")
    return patient_imports.summary(patient_imports.get_import(db_session(), import_id))
