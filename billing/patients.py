"""Patient registration: create, read, update and list a practice's patients, scoped by the caller's access
(an agency sees only accounts placed with it), each read and write audited."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.models import AgencyPlacement, Patient
from billing.text import clean_fields
from medbill.errors import Conflict, Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI".split()
)
EDITABLE = (
    "account_number",
    "first_name",
    "last_name",
    "middle_name",
    "date_of_birth",
    "sex",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "phone",
    "email",
)
REQUIRED = (
    "account_number",
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "address_line1",
    "city",
    "state",
    "postal_code",
)
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,29}$")
_ZIP_RE = re.compile(r"^\d{5}(\d{4})?$")


def normalise(data: dict, *, partial: bool = False, today: date | None = None) -> dict:
    """Domain checks shared by the API, the portal and CSV imports; raises Invalid naming every bad field."""
    today = today or date.today()
    errors: dict[str, list[str]] = {}
    out = {k: v for k, v in data.items() if k in EDITABLE}
    for key, value in out.items():
        if isinstance(value, str) and "\x00" in value:  # PostgreSQL text cannot hold it (CSV imports come here)
            errors.setdefault(key, []).append("contains a NUL character, which cannot be stored")
    # What a claim file can carry (billing.text): invisible characters removed, accents transliterated.
    clean_fields(out, ("first_name", "last_name", "middle_name", "address_line1", "address_line2", "city"), errors)
    if not partial:
        for key in REQUIRED:
            if out.get(key) in (None, ""):
                errors.setdefault(key, []).append("required")
    for key in ("first_name", "last_name", "address_line1", "city"):
        if key in out and out[key] == "" and key not in errors:
            errors.setdefault(key, []).append("must not be empty")
    if out.get("account_number") not in (None, "") and not _ACCOUNT_RE.match(str(out["account_number"])):
        errors.setdefault("account_number", []).append("1-30 letters, digits or '-'")
    dob = out.get("date_of_birth")
    if isinstance(dob, str) and dob:
        try:
            dob = out["date_of_birth"] = date.fromisoformat(dob)
        except ValueError:
            errors.setdefault("date_of_birth", []).append(f"not a date (YYYY-MM-DD): {dob!r}")
            dob = None
    if isinstance(dob, date):
        if dob > today:
            errors.setdefault("date_of_birth", []).append("is in the future")
        elif dob.year < 1880:
            errors.setdefault("date_of_birth", []).append("is before 1880")
    if out.get("sex") not in (None, "") and out["sex"] not in ("F", "M", "U"):
        errors.setdefault("sex", []).append("one of F, M, U")
    if out.get("state") not in (None, ""):
        out["state"] = str(out["state"]).upper()
        if out["state"] not in US_STATES:
            errors.setdefault("state", []).append(f"not a US state code: {data.get('state')!r}")
    if out.get("postal_code") not in (None, ""):
        out["postal_code"] = str(out["postal_code"]).replace("-", "")
        if not _ZIP_RE.match(out["postal_code"]):
            errors.setdefault("postal_code", []).append("5 or 9 digits (ZIP or ZIP+4)")
    for key in ("phone", "email"):
        if out.get(key) == "":
            out[key] = None
    if errors:
        raise Invalid("patient data is not valid", errors=errors)
    return out


def _audit(session: Session, access: PracticeAccess, patient_id: int | None, action: str, detail: dict | None = None):
    audit.record_access(session, access, "patient", patient_id, action, detail)


def _scoped(access: PracticeAccess):
    stmt = select(Patient)
    if access.placed_only:
        stmt = stmt.where(
            exists().where(
                AgencyPlacement.patient_id == Patient.id,
                AgencyPlacement.agency_id.in_(list(access.agency_ids)),
                AgencyPlacement.recalled_at.is_(None),
            )
        )
    return stmt


def list_patients(
    session: Session, access: PracticeAccess, *, page: int = 1, per_page: int = 50, search: str | None = None
) -> tuple[list[Patient], int]:
    stmt = _scoped(access)
    if search:
        like = f"%{search.strip()}%"
        stmt = stmt.where(
            or_(
                Patient.last_name.ilike(like),
                Patient.first_name.ilike(like),
                Patient.account_number.ilike(like),
            )
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = list(
        session.scalars(
            stmt.order_by(Patient.last_name, Patient.first_name, Patient.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    _audit(session, access, None, "list", {"ids": [p.id for p in rows], "search": search or ""})
    return rows, total or 0


def get_patient(session: Session, access: PracticeAccess, patient_id: int) -> Patient:
    patient = session.scalar(_scoped(access).where(Patient.id == patient_id))
    if patient is None:
        raise NotFound(f"patient {patient_id} not found")
    _audit(session, access, patient.id, "read")
    return patient


def create_patient(session: Session, access: PracticeAccess, data: dict) -> Patient:
    values = normalise(data)
    if session.scalar(select(Patient.id).where(Patient.account_number == values["account_number"])):
        raise Conflict(
            f"account number {values['account_number']!r} is already registered",
            errors={"account_number": ["already registered"]},
        )
    patient = Patient(**values)
    session.add(patient)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "patient conflicts with an existing one", errors={"account_number": ["already registered"]}
        ) from exc
    _audit(session, access, patient.id, "create")
    return patient


def update_patient(session: Session, access: PracticeAccess, patient_id: int, changes: dict) -> Patient:
    patient = session.scalar(_scoped(access).where(Patient.id == patient_id).with_for_update())
    if patient is None:
        raise NotFound(f"patient {patient_id} not found")
    values = normalise(changes, partial=True)
    if "account_number" in values and values["account_number"] != patient.account_number:
        taken = session.scalar(
            select(Patient.id).where(Patient.account_number == values["account_number"], Patient.id != patient.id)
        )
        if taken:
            raise Conflict("account number already registered", errors={"account_number": ["already registered"]})
    changed = sorted(k for k, v in values.items() if getattr(patient, k) != v)
    for key in changed:
        setattr(patient, key, values[key])
    if changed:
        patient.updated_at = datetime.now(UTC)
    session.flush()
    _audit(session, access, patient.id, "update", {"fields": changed})
    return patient
