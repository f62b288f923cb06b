"""Claims: built from an encounter for the coverage responsible on the date of service (optionally split by
rendering provider or date), lines moved between unsent claims, corrections (replacement 7, void 8), listing."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from billing.claim_status import EDITABLE, record_creation, transition
from billing.encounters import get_encounter
from billing.models import Claim, ClaimLine, Coverage, Encounter, ServiceLine
from billing.money import total
from medbill.errors import Conflict, Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess

SPLITS = ("none", "rendering_provider", "date_of_service")


def coverage_on(session: Session, patient_id: int, on: date, priority: int = 1) -> Coverage | None:
    """The patient's coverage of that priority active on a date."""
    return session.scalar(
        select(Coverage)
        .where(
            Coverage.patient_id == patient_id,
            Coverage.priority == priority,
            Coverage.effective_date <= on,
            or_(Coverage.end_date.is_(None), Coverage.end_date >= on),
        )
        .order_by(Coverage.effective_date.desc(), Coverage.id.desc())
        .limit(1)
    )


def get_claim(session: Session, claim_id: int, *, for_update: bool = False) -> Claim:
    stmt = select(Claim).where(Claim.id == claim_id)
    if for_update:
        stmt = stmt.with_for_update()
    claim = session.scalar(stmt)
    if claim is None:
        raise NotFound(f"claim {claim_id} not found")
    return claim


def _audit(session: Session, access: PracticeAccess, claim_id: int, action: str, detail: dict | None = None) -> None:
    audit.record_access(session, access, "claim", claim_id, action, detail)


def new_claim(session, encounter, coverage, lines: list[ServiceLine], *, user_id, frequency="1", original=None):
    claim = Claim(
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        coverage_id=coverage.id,
        payer_id=coverage.payer_id,
        rendering_provider_id=lines[0].rendering_provider_id,
        frequency_code=frequency,
        original_claim_id=original.id if original else None,
        payer_claim_number=original.payer_claim_number if original else None,
        total_charge=total(line.charge for line in lines),
        created_by_user_id=user_id,
    )
    session.add(claim)
    session.flush()
    for n, line in enumerate(lines, start=1):
        session.add(ClaimLine(claim_id=claim.id, service_line_id=line.id, line_number=n, charge=line.charge))
    session.flush()
    session.refresh(claim)
    return claim


def create_claims(session: Session, access: PracticeAccess, encounter_id: int, split: str = "none") -> list[Claim]:
    """Claims for the encounter's lines not yet billed to the primary coverage."""
    if split not in SPLITS:
        raise Invalid(f"unknown split {split!r}", errors={"split": [f"one of {', '.join(SPLITS)}"]})
    encounter = get_encounter(session, encounter_id)
    coverage = coverage_on(session, encounter.patient_id, encounter.date_of_service)
    if coverage is None:
        raise Invalid(
            f"the patient has no primary coverage active on {encounter.date_of_service.isoformat()}",
            errors={"coverage": ["add or correct the patient's coverage first"]},
        )
    billed = set(
        session.scalars(
            select(ClaimLine.service_line_id)
            .join(Claim, Claim.id == ClaimLine.claim_id)
            .where(Claim.encounter_id == encounter.id, Claim.coverage_id == coverage.id, Claim.frequency_code == "1")
        )
    )
    pending = [line for line in encounter.lines if line.id not in billed]
    if not pending:
        raise Conflict(f"every line of encounter {encounter.id} is already on a claim to this payer")
    groups: dict[object, list[ServiceLine]] = defaultdict(list)
    for line in pending:
        key = {"none": None, "rendering_provider": line.rendering_provider_id, "date_of_service": line.date_of_service}[
            split
        ]
        groups[key].append(line)
    claims = []
    for lines in groups.values():
        claim = new_claim(session, encounter, coverage, lines, user_id=access.user_id)
        record_creation(
            session, claim, source="user", user_id=access.user_id, reason=f"built from encounter {encounter.id}"
        )
        _audit(session, access, claim.id, "create", {"encounter_id": encounter.id, "lines": len(lines)})
        claims.append(claim)
    return claims


def _renumber(session: Session, claim: Claim) -> None:
    lines = sorted(
        session.scalars(select(ClaimLine).where(ClaimLine.claim_id == claim.id)), key=lambda cl: cl.line_number
    )
    # Two passes so the unique (claim_id, line_number) never collides mid-way.
    for n, line in enumerate(lines, start=1):
        line.line_number = 1000 + n
    session.flush()
    for n, line in enumerate(lines, start=1):
        line.line_number = n
    claim.total_charge = total(line.charge for line in lines)
    session.flush()


def move_line(session: Session, access: PracticeAccess, claim_line_id: int, to_claim_id: int) -> tuple[Claim, Claim]:
    """Move a line between two unsent claims of the same encounter and payer; both go back to draft."""
    line = session.get(ClaimLine, claim_line_id)
    if line is None:
        raise NotFound(f"claim line {claim_line_id} not found")
    source = get_claim(session, line.claim_id, for_update=True)
    target = get_claim(session, to_claim_id, for_update=True)
    if source.id == target.id:
        raise Conflict("the line is already on that claim")
    if source.encounter_id != target.encounter_id or source.coverage_id != target.coverage_id:
        raise Conflict("lines move only between claims of the same encounter and coverage")
    for claim in (source, target):
        if claim.status not in EDITABLE:
            raise Conflict(f"claim {claim.id} is {claim.status}; only unsent claims can change")
    if session.scalar(select(func.count()).where(ClaimLine.claim_id == source.id)) == 1:
        raise Conflict(f"claim {source.id} would be left without lines")
    line.claim_id = target.id
    line.line_number = 900
    session.flush()
    session.expire(source, ["lines"])
    session.expire(target, ["lines"])
    for claim in (source, target):
        _renumber(session, claim)
        if claim.status != "draft":
            transition(session, claim, "draft", source="user", user_id=access.user_id, reason="lines moved")
    if target.rendering_provider_id != line.service_line.rendering_provider_id and len(target.lines) == 1:
        target.rendering_provider_id = line.service_line.rendering_provider_id
    _audit(session, access, target.id, "move_line", {"claim_line_id": line.id, "from_claim_id": source.id})
    return source, target


def create_correction(session: Session, access: PracticeAccess, claim_id: int, frequency: str, reason: str) -> Claim:
    """A replacement (7) or void (8) of a claim the payer has, carrying the payer's claim number (REF*F8)."""
    if frequency not in ("7", "8"):
        raise Invalid("frequency must be 7 (replacement) or 8 (void)", errors={"frequency_code": ["7 or 8"]})
    original = get_claim(session, claim_id, for_update=True)
    if not original.payer_claim_number:
        raise Conflict(
            f"claim {original.id} has no payer claim number yet: only a claim the payer accepted can be corrected",
            errors={"payer_claim_number": ["missing"]},
        )
    if original.status in EDITABLE or original.status in ("submitted", "rejected"):
        raise Conflict(f"claim {original.id} is {original.status}: correct and resubmit it instead")
    lines = [cl.service_line for cl in original.lines]
    encounter = get_encounter(session, original.encounter_id)
    coverage = session.get(Coverage, original.coverage_id)
    claim = new_claim(
        session, encounter, coverage, lines, user_id=access.user_id, frequency=frequency, original=original
    )
    kind = "replacement" if frequency == "7" else "void"
    record_creation(
        session, claim, source="user", user_id=access.user_id, reason=f"{kind} of claim {original.id}: {reason}"
    )
    _audit(session, access, claim.id, "create", {"frequency_code": frequency, "original_claim_id": original.id})
    return claim


def list_claims(
    session: Session,
    *,
    status: str | None = None,
    payer_id: int | None = None,
    rendering_provider_id: int | None = None,
    patient_id: int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[Claim], int]:
    stmt = select(Claim)
    if status:
        stmt = stmt.where(Claim.status == status)
    if payer_id:
        stmt = stmt.where(Claim.payer_id == payer_id)
    if rendering_provider_id:
        stmt = stmt.where(Claim.rendering_provider_id == rendering_provider_id)
    if patient_id:
        stmt = stmt.where(Claim.patient_id == patient_id)
    if date_from or date_to:
        stmt = stmt.join(Encounter, Encounter.id == Claim.encounter_id)
        if date_from:
            stmt = stmt.where(Encounter.date_of_service >= date_from)
        if date_to:
            stmt = stmt.where(Encounter.date_of_service <= date_to)
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(session.scalars(stmt.order_by(Claim.id.desc()).limit(per_page).offset((page - 1) * per_page)))
    return rows, count
