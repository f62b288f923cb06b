"""Charge entry: an encounter (visit) with its service lines, checked as it is entered and priced from the fee
schedule when no charge is given."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import codes
from billing.models import Encounter, Provider, ServiceLine
from billing.money import AMOUNT_RULE, MAX_AMOUNT, entered_amount, money
from billing.patients import get_patient
from billing.pricing import fee_for
from medbill.errors import Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess

MAX_DIAGNOSES = 12
MAX_LINES = 50
MAX_POINTERS = 4
MAX_MODIFIERS = 4


def _as_date(value, field: str, errors: dict) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        errors.setdefault(field, []).append(f"not a date (YYYY-MM-DD): {value!r}")
        return None


def _providers(session: Session, ids: set[int]) -> dict[int, Provider]:
    return {p.id: p for p in session.scalars(select(Provider).where(Provider.id.in_(ids)))} if ids else {}


def create_encounter(session: Session, access: PracticeAccess, data: dict) -> Encounter:
    """Validates everything and reports every problem at once, by field (`lines[2].modifiers`)."""
    errors: dict[str, list[str]] = {}
    diagnoses_in = data.get("diagnoses") or []
    lines_in = data.get("lines") or []
    # Sizes first, before any per-item work: a 300,000-line body must be refused at once, not after pricing each line.
    if len(diagnoses_in) > MAX_DIAGNOSES:
        errors.setdefault("diagnoses", []).append(f"at most {MAX_DIAGNOSES} diagnoses")
    if len(lines_in) > MAX_LINES:
        errors.setdefault("lines", []).append(f"at most {MAX_LINES} lines per encounter")
    if errors:
        raise Invalid("the visit has errors; nothing was saved", errors=errors)
    patient = get_patient(session, access, int(data["patient_id"]))
    dos = _as_date(data.get("date_of_service"), "date_of_service", errors)
    pos = str(data.get("place_of_service", ""))
    if not codes.place_of_service_is_valid(pos):
        errors.setdefault("place_of_service", []).append(f"not a CMS place of service code: {pos!r}")
    diagnoses = [codes.normalise_icd10(str(d)) for d in diagnoses_in]
    if not diagnoses:
        errors.setdefault("diagnoses", []).append("at least one diagnosis is required")
    for i, code in enumerate(diagnoses):
        problem = codes.icd10_problem(code)
        if problem:
            errors.setdefault(f"diagnoses[{i}]", []).append(problem)
    if len(set(diagnoses)) != len(diagnoses):
        errors.setdefault("diagnoses", []).append("a diagnosis is listed twice")
    if not lines_in:
        errors.setdefault("lines", []).append("at least one service line is required")
    provider_ids = {int(data["rendering_provider_id"])} | {
        int(line["rendering_provider_id"]) for line in lines_in if line.get("rendering_provider_id")
    }
    providers = _providers(session, provider_ids)
    if int(data["rendering_provider_id"]) not in providers:
        errors.setdefault("rendering_provider_id", []).append("no such provider")

    lines: list[ServiceLine] = []
    for n, item in enumerate(lines_in):
        where = f"lines[{n}]"
        code = str(item.get("procedure_code", "")).upper()
        if not codes.procedure_code_is_valid(code):
            errors.setdefault(f"{where}.procedure_code", []).append(f"not a CPT/HCPCS code: {code!r}")
        modifiers = [str(m).upper() for m in item.get("modifiers") or []]
        if len(modifiers) > MAX_MODIFIERS:
            errors.setdefault(f"{where}.modifiers", []).append(f"at most {MAX_MODIFIERS} modifiers")
        bad = [m for m in modifiers if not codes.modifier_is_valid(m)]
        if bad:
            errors.setdefault(f"{where}.modifiers", []).append(f"not a modifier: {', '.join(map(repr, bad))}")
        try:
            units = Decimal(str(item.get("units", 1)))
        except InvalidOperation:
            units = Decimal(0)
        if units <= 0 or units != units.quantize(Decimal("0.001")):
            errors.setdefault(f"{where}.units", []).append("a positive number with at most 3 decimals")
        pointers = [int(p) for p in item.get("diagnosis_pointers") or [1]]
        if len(pointers) > MAX_POINTERS:
            errors.setdefault(f"{where}.diagnosis_pointers", []).append(f"at most {MAX_POINTERS} pointers")
        if any(p < 1 or p > len(diagnoses) for p in pointers) or len(set(pointers)) != len(pointers):
            errors.setdefault(f"{where}.diagnosis_pointers", []).append(
                f"each pointer is a distinct number from 1 to {len(diagnoses)} (the diagnoses of this visit)"
            )
        line_dos = _as_date(item.get("date_of_service") or dos, f"{where}.date_of_service", errors)
        line_pos = str(item.get("place_of_service") or pos)
        if not codes.place_of_service_is_valid(line_pos):
            errors.setdefault(f"{where}.place_of_service", []).append(f"not a place of service code: {line_pos!r}")
        rendering = int(item.get("rendering_provider_id") or data["rendering_provider_id"])
        if rendering not in providers:
            errors.setdefault(f"{where}.rendering_provider_id", []).append("no such provider")
        if item.get("charge") is not None:
            try:
                charge = entered_amount(str(item["charge"]))
            except ValueError:
                charge = None
                errors.setdefault(f"{where}.charge", []).append(AMOUNT_RULE)
        else:
            unit_fee = fee_for(session, code, modifiers)
            charge = money(unit_fee * units) if unit_fee is not None else None
            if charge is None and codes.procedure_code_is_valid(code):
                errors.setdefault(f"{where}.charge", []).append(
                    f"no fee schedule entry for {code}: give the charge or add the code to the fee schedule"
                )
        if charge is not None and charge < 0:
            errors.setdefault(f"{where}.charge", []).append("must not be negative")
        elif charge is not None and charge > MAX_AMOUNT:  # fee schedule price times many units
            errors.setdefault(f"{where}.charge", []).append(f"more than {MAX_AMOUNT:,}: check the units")
            charge = None
        lines.append(
            ServiceLine(
                line_number=n + 1,
                procedure_code=code,
                modifiers=modifiers,
                units=units,
                diagnosis_pointers=pointers,
                charge=charge if charge is not None else Decimal(0),
                date_of_service=line_dos,
                place_of_service=line_pos,
                rendering_provider_id=rendering,
            )
        )
    if errors:
        raise Invalid("the visit has errors; nothing was saved", errors=errors)
    encounter = Encounter(
        patient_id=patient.id,
        date_of_service=dos,
        place_of_service=pos,
        rendering_provider_id=int(data["rendering_provider_id"]),
        diagnoses=diagnoses,
        note=str(data.get("note") or "")[:2000],
        created_by_user_id=access.user_id,
        lines=lines,
    )
    session.add(encounter)
    session.flush()
    audit.record(
        session,
        user_id=access.user_id,
        practice_id=access.practice_id,
        object_type="encounter",
        object_id=encounter.id,
        action="create",
        detail={"patient_id": patient.id, "lines": len(lines)},
    )
    return encounter


def get_encounter(session: Session, encounter_id: int) -> Encounter:
    encounter = session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFound(f"encounter {encounter_id} not found")
    return encounter
