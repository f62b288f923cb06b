"""Collections: which patient accounts go to a collection agency, and what comes back.

- Rules per practice (`CollectionRules`) pick candidates from the patient part of the ledger and the statement
  history: the oldest date of service with a balance the patient owes is old enough, enough statements were sent, no
  active payment plan, a balance at or above a minimum, not already placed, not skipped recently. Balances on visits
  insurance still owes on are never counted (they are not the patient's to pay yet).
- A biller approves a candidate with one of the practice's agencies (an `AgencyPlacement` plus what was placed) or
  skips it with a reason. Placed accounts drop out of the statement cycle (the statement run excludes open
  placements) until they are recalled.
- Exports: per agency, the newly placed accounts written in the agency's format (billing.agency_formats), stored, and
  recorded once per placement, so a retried export adds nothing.
- The agency reports payments it collected (posted as patient payments of the gross, source "agency", once per
  agency reference; its fee kept beside) and returns accounts (recall). Billers recall too.

Agency callers (`access.placed_only`) see only what is placed with their agencies: any other id is a 404."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import agency_formats, connections
from billing.models import (
    AgencyExport,
    AgencyExportItem,
    AgencyPaymentReport,
    AgencyPlacement,
    AgencyTerms,
    AgencyUpdateItem,
    CollectionRules,
    Coverage,
    Guarantor,
    Patient,
    PatientPayment,
    Payer,
    PaymentPlan,
    PlacementDetail,
    PlacementReview,
    Statement,
)
from billing.money import ZERO, money, percent_of
from billing.rules import owed_now_services_sql
from integrations.storage import Storage, company_key
from medbill.errors import Conflict, Forbidden, Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess
from tenants.models import AgencyPractice, CollectionAgency, Practice

RULE_FIELDS = ("min_age_days", "min_statements", "min_balance", "exclude_payment_plans", "skip_days")
DEFAULT_RULES = {
    "min_age_days": 120,
    "min_statements": 3,
    "min_balance": Decimal("25.00"),
    "exclude_payment_plans": True,
    "skip_days": 30,
}


def _require(access: PracticeAccess, *permissions: str) -> None:
    if not any(access.can(p) for p in permissions):
        raise Forbidden(f"your role may not do '{' or '.join(permissions)}' in this practice")


def _today() -> date:
    return datetime.now(UTC).date()


# --- rules ----------------------------------------------------------------------------------------------------------


def get_rules(session: Session) -> dict:
    row = session.get(CollectionRules, 1)
    if row is None:
        return dict(DEFAULT_RULES)
    return {k: getattr(row, k) for k in RULE_FIELDS}


def set_rules(session: Session, access: PracticeAccess, data: dict) -> dict:
    _require(access, "collections:write")
    rules = get_rules(session) | {k: v for k, v in data.items() if k in RULE_FIELDS and v is not None}
    errors: dict[str, list[str]] = {}
    for key in ("min_age_days", "min_statements", "skip_days"):
        value = rules[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3650:
            errors.setdefault(key, []).append("a whole number of days/statements from 0 to 3650")
    try:
        rules["min_balance"] = money(rules["min_balance"])
        if rules["min_balance"] < ZERO:
            errors.setdefault("min_balance", []).append("must not be negative")
    except (ValueError, TypeError):
        errors.setdefault("min_balance", []).append("an amount like 25.00")
    if not isinstance(rules["exclude_payment_plans"], bool):
        errors.setdefault("exclude_payment_plans", []).append("true or false")
    if errors:
        raise Invalid("collection rules are not valid", errors=errors)
    values = {k: rules[k] for k in RULE_FIELDS} | {"updated_by_user_id": access.user_id, "updated_at": func.now()}
    session.execute(
        insert(CollectionRules).values(id=1, **values).on_conflict_do_update(index_elements=["id"], set_=values)
    )
    audit.record_access(session, access, "collection_rules", 1, "update", {k: str(rules[k]) for k in RULE_FIELDS})
    return rules


# --- agencies and their terms ---------------------------------------------------------------------------------------


def linked_agencies(session: Session, access: PracticeAccess) -> list[CollectionAgency]:
    """The agencies this practice places with (an agency caller: only its own)."""
    stmt = (
        select(CollectionAgency)
        .join(AgencyPractice, AgencyPractice.agency_id == CollectionAgency.id)
        .where(AgencyPractice.practice_id == access.practice_id)
        .order_by(CollectionAgency.name, CollectionAgency.id)
    )
    if access.placed_only:
        stmt = stmt.where(CollectionAgency.id.in_(list(access.agency_ids)))
    return list(session.scalars(stmt))


def linked_agency(session: Session, access: PracticeAccess, agency_id: int) -> CollectionAgency:
    agency = next((a for a in linked_agencies(session, access) if a.id == agency_id), None)
    if agency is None:
        raise NotFound(f"collection agency {agency_id} not found for this practice")
    return agency


def terms_of(session: Session, agency_id: int) -> AgencyTerms | None:
    return session.get(AgencyTerms, agency_id)


def format_config(agency: CollectionAgency, terms: AgencyTerms | None) -> dict:
    """The practice's format for the agency, else the agency's own default, else ours."""
    if terms is not None and terms.file_format:
        return terms.file_format
    return (agency.settings or {}).get("file_format") or agency_formats.DEFAULT_FORMAT


def report_format_config(agency: CollectionAgency, terms: AgencyTerms | None) -> dict:
    """The layout of the agency's payment files: the practice's, else the agency's own, else ours."""
    if terms is not None and terms.report_format:
        return terms.report_format
    return (agency.settings or {}).get("report_format") or agency_formats.DEFAULT_REPORT_FORMAT


def set_terms(
    session: Session,
    access: PracticeAccess,
    agency_id: int,
    data: dict,
    *,
    policy: connections.OutboundPolicy | None = None,
) -> AgencyTerms:
    """Configure the agency's format (validated now: errors name the field), fee percent and optional delivery.

    The delivery target (`sftp`) is a connection of the company: changing it needs `connections:write` (company
    admins), is checked against the company's secrets and the operator's allowed agency hosts in `policy` (none
    given: nothing is allowed) and is audited with before and after. Sent back unchanged, it needs nothing."""
    _require(access, "collections:write")
    linked_agency(session, access, agency_id)
    terms = session.get(AgencyTerms, agency_id) or AgencyTerms(agency_id=agency_id)
    delivery_before = terms.sftp or {}
    if "file_format" in data:
        if data["file_format"] is not None:
            agency_formats.validate_format(data["file_format"])
        terms.file_format = data["file_format"]
    if "report_format" in data:
        config = data["report_format"]
        if config is not None:
            if isinstance(config, dict):
                config = {"purpose": "report"} | config
            try:
                fmt = agency_formats.validate_format(config)
            except Invalid as exc:
                raise Invalid(exc.message, errors={f"report_format.{k}": v for k, v in exc.errors.items()}) from exc
            if fmt.purpose != "report":
                raise Invalid("not a payment file format", errors={"report_format.purpose": ["must be 'report'"]})
        terms.report_format = config
    if "fee_percent" in data and data["fee_percent"] is not None:
        try:
            pct = Decimal(str(data["fee_percent"])).quantize(Decimal("0.01"))
        except ArithmeticError as exc:
            raise Invalid("fee is not valid", errors={"fee_percent": ["a percent like 25 or 33.5"]}) from exc
        if not ZERO <= pct <= Decimal(100):
            raise Invalid("fee is not valid", errors={"fee_percent": ["from 0 to 100"]})
        terms.fee_percent = pct
    if terms.fee_percent is None:
        terms.fee_percent = ZERO
    delivery_changed = "sftp" in data and (data["sftp"] or {}) != delivery_before
    if delivery_changed:
        connections.require_admin(access, "agency delivery target", "sftp")
        terms.sftp = (
            connections.validate(
                session, access.company_id, data["sftp"], purpose="agency",
                policy=policy or connections.OutboundPolicy(), field="sftp",
            )
            or None
        )  # fmt: skip
    terms.updated_by_user_id = access.user_id
    terms.updated_at = datetime.now(UTC)
    session.add(terms)
    session.flush()
    audit.record_access(
        session, access, "agency_terms", agency_id, "update",
        {"fee_percent": str(terms.fee_percent), "format": (terms.file_format or {}).get("type"),
         "delivery": bool(terms.sftp)},
    )  # fmt: skip
    if delivery_changed:
        connections.record_change(session, access, "agency_terms", agency_id, delivery_before, terms.sftp)
    return terms


# --- the patient part of the ledger ---------------------------------------------------------------------------------


def _due_lines(patient_ids: list[int] | None = None):
    """Services of visits insurance is done with: their patient part is what the patient owes now (the rule of
    `billing.rules`, the same statements bill from)."""
    return owed_now_services_sql(patient_ids)


def balances_by_service_date(session: Session, patient_ids: list[int]) -> dict[int, list[tuple[date, Decimal]]]:
    """What each patient owes per date of service (positive amounts only), oldest first."""
    due = _due_lines(patient_ids)
    rows = session.execute(
        select(due.c.patient_id, due.c.date_of_service, func.sum(due.c.patient_part))
        .group_by(due.c.patient_id, due.c.date_of_service)
        .having(func.sum(due.c.patient_part) > 0)
        .order_by(due.c.patient_id, due.c.date_of_service)
    ).all()
    out: dict[int, list[tuple[date, Decimal]]] = {}
    for patient_id, dos, amount in rows:
        out.setdefault(patient_id, []).append((dos, money(amount)))
    return out


def patient_due(session: Session, patient_id: int) -> tuple[Decimal, date | None]:
    """What the patient owes now and the oldest date of service that carries some of it."""
    services = balances_by_service_date(session, [patient_id]).get(patient_id, [])
    due = _due_lines([patient_id])
    total_due = session.scalar(select(func.coalesce(func.sum(due.c.patient_part), 0)))
    return money(total_due), (services[0][0] if services else None)


# --- candidates -----------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    patient_id: int
    account_number: str
    first_name: str
    last_name: str
    patient_balance: Decimal
    oldest_service_date: date
    age_days: int
    statements: int
    last_statement_date: date | None
    last_payment_date: date | None
    on_payment_plan: bool
    reasons: list[str] = field(default_factory=list)  # why it qualifies, in words


def _candidate_query(rules: dict, today: date, patient_id: int | None = None, *, ignore_skip: bool = False):
    due = _due_lines([patient_id] if patient_id is not None else None)
    per_patient = (
        select(
            due.c.patient_id,
            func.sum(due.c.patient_part).label("balance"),
            func.min(due.c.date_of_service).filter(due.c.patient_part > 0).label("oldest"),
        )
        .group_by(due.c.patient_id)
        .subquery("per_patient")
    )
    statements = (
        select(
            Statement.patient_id,
            func.count().label("n"),
            func.max(Statement.statement_date).label("last"),
        )
        .group_by(Statement.patient_id)
        .subquery("st")
    )
    last_payment = (
        select(PatientPayment.patient_id, func.max(PatientPayment.received_on).label("last"))
        .where(PatientPayment.kind == "payment")
        .group_by(PatientPayment.patient_id)
        .subquery("lp")
    )
    open_placement = exists().where(AgencyPlacement.patient_id == Patient.id, AgencyPlacement.recalled_at.is_(None))
    active_plan = exists().where(PaymentPlan.patient_id == Patient.id, PaymentPlan.status == "active")
    skipped = exists().where(
        PlacementReview.patient_id == Patient.id,
        PlacementReview.decision == "skipped",
        PlacementReview.skip_until > today,
    )
    cutoff = today - timedelta(days=rules["min_age_days"])
    stmt = (
        select(
            Patient,
            per_patient.c.balance,
            per_patient.c.oldest,
            func.coalesce(statements.c.n, 0),
            statements.c.last,
            last_payment.c.last,
            active_plan.label("on_plan"),
        )
        .join(per_patient, per_patient.c.patient_id == Patient.id)
        .outerjoin(statements, statements.c.patient_id == Patient.id)
        .outerjoin(last_payment, last_payment.c.patient_id == Patient.id)
        .where(
            per_patient.c.balance >= rules["min_balance"],
            per_patient.c.balance > 0,
            per_patient.c.oldest <= cutoff,
            func.coalesce(statements.c.n, 0) >= rules["min_statements"],
            ~open_placement,
        )
        .order_by(per_patient.c.oldest, Patient.last_name, Patient.id)
    )
    if rules["exclude_payment_plans"]:
        stmt = stmt.where(~active_plan)
    if not ignore_skip:
        stmt = stmt.where(~skipped)
    if patient_id is not None:
        stmt = stmt.where(Patient.id == patient_id)
    return stmt


def _candidate(row, rules: dict, today: date) -> Candidate:
    patient, balance, oldest, n_statements, last_statement, last_paid, on_plan = row
    age = (today - oldest).days
    return Candidate(
        patient_id=patient.id,
        account_number=patient.account_number,
        first_name=patient.first_name,
        last_name=patient.last_name,
        patient_balance=money(balance),
        oldest_service_date=oldest,
        age_days=age,
        statements=n_statements,
        last_statement_date=last_statement,
        last_payment_date=last_paid,
        on_payment_plan=bool(on_plan),
        reasons=[
            f"oldest balance {age} days old (rule: {rules['min_age_days']})",
            f"{n_statements} statement(s) sent (rule: {rules['min_statements']})",
            f"owes {money(balance)} (rule: at least {money(rules['min_balance'])})",
        ],
    )


def candidates(session: Session, access: PracticeAccess, *, today: date | None = None) -> list[Candidate]:
    """Accounts the practice's rules pick for placement, oldest balance first."""
    _require(access, "collections:write")
    today = today or _today()
    rules = get_rules(session)
    rows = session.execute(_candidate_query(rules, today)).all()
    found = [_candidate(row, rules, today) for row in rows]
    audit.record_access(session, access, "collection_candidates", None, "list", {"ids": [c.patient_id for c in found]})
    return found


def candidate_count(session: Session, *, today: date | None = None) -> int:
    """How many accounts `candidates` would list now, in one statement beside the rules' (for the work queues; not
    audited: it names no patient)."""
    stmt = _candidate_query(get_rules(session), today or _today())
    return session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


# --- approve, skip, recall ------------------------------------------------------------------------------------------


def _lock_patient(session: Session, patient_id: int) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update())
    if patient is None:
        raise NotFound(f"patient {patient_id} not found")
    return patient


def approve(
    session: Session,
    access: PracticeAccess,
    patient_id: int,
    agency_id: int,
    *,
    note: str = "",
    today: date | None = None,
) -> AgencyPlacement:
    """Place a candidate with one of the practice's agencies, with the balance the patient owes now."""
    _require(access, "collections:write")
    today = today or _today()
    linked_agency(session, access, agency_id)
    _lock_patient(session, patient_id)
    rules = get_rules(session)
    if session.scalar(
        select(AgencyPlacement.id).where(
            AgencyPlacement.patient_id == patient_id, AgencyPlacement.recalled_at.is_(None)
        )
    ):
        raise Conflict(f"patient {patient_id} is already placed with an agency")
    # A skip is a biller's earlier decision, not a rule: approving overrides it.
    row = session.execute(_candidate_query(rules, today, patient_id, ignore_skip=True)).first()
    if row is None:
        raise Conflict(f"patient {patient_id} does not meet the practice's collection rules")
    candidate = _candidate(row, rules, today)
    placement = AgencyPlacement(patient_id=patient_id, agency_id=agency_id)
    session.add(placement)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent approval won
        raise Conflict(f"patient {patient_id} is already placed with an agency") from exc
    session.add(
        PlacementDetail(
            placement_id=placement.id,
            balance_placed=candidate.patient_balance,
            oldest_service_date=candidate.oldest_service_date,
            placed_by_user_id=access.user_id,
        )
    )
    session.add(
        PlacementReview(
            patient_id=patient_id,
            decision="approved",
            reason=note[:2000],
            agency_id=agency_id,
            placement_id=placement.id,
            patient_balance=candidate.patient_balance,
            decided_by_user_id=access.user_id,
        )
    )
    session.flush()
    audit.record_access(
        session, access, "agency_placement", placement.id, "place",
        {"patient_id": patient_id, "agency_id": agency_id, "balance": str(candidate.patient_balance)},
    )  # fmt: skip
    return placement


def skip(
    session: Session,
    access: PracticeAccess,
    patient_id: int,
    reason: str,
    *,
    until: date | None = None,
    today: date | None = None,
) -> PlacementReview:
    """Leave a candidate with the practice for now, saying why; it returns to the list after `until`."""
    _require(access, "collections:write")
    today = today or _today()
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("say why the account is skipped", errors={"reason": ["required"]})
    rules = get_rules(session)
    until = until or today + timedelta(days=rules["skip_days"] or 1)
    if until <= today:
        raise Invalid("a skip must last at least a day", errors={"until": ["a date after today"]})
    _lock_patient(session, patient_id)
    balance, _ = patient_due(session, patient_id)
    review = PlacementReview(
        patient_id=patient_id,
        decision="skipped",
        reason=reason[:2000],
        patient_balance=balance,
        skip_until=until,
        decided_by_user_id=access.user_id,
    )
    session.add(review)
    session.flush()
    audit.record_access(
        session, access, "collection_candidate", patient_id, "skip", {"reason": reason[:200], "until": str(until)}
    )
    return review


def _placements_stmt(access: PracticeAccess):
    stmt = select(AgencyPlacement)
    if access.placed_only:
        stmt = stmt.where(AgencyPlacement.agency_id.in_(list(access.agency_ids)), AgencyPlacement.recalled_at.is_(None))
    return stmt


def get_placement(
    session: Session, access: PracticeAccess, placement_id: int, *, lock: bool = False
) -> AgencyPlacement:
    stmt = _placements_stmt(access).where(AgencyPlacement.id == placement_id)
    if lock:
        stmt = stmt.with_for_update()
    placement = session.scalar(stmt)
    if placement is None:
        raise NotFound(f"placement {placement_id} not found")
    return placement


def recall(session: Session, access: PracticeAccess, placement_id: int, reason: str) -> AgencyPlacement:
    """End a placement: the agency returns the account, or the practice takes it back. The account returns to the
    practice's statement cycle."""
    _require(access, "collections:write", "agency:report")
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("say why the account is recalled", errors={"reason": ["required"]})
    placement = get_placement(session, access, placement_id, lock=True)
    as_practice = access.can("collections:write")
    if not as_practice and placement.agency_id not in access.agency_ids:
        raise NotFound(f"placement {placement_id} not found")
    if placement.recalled_at is not None:
        raise Conflict(f"placement {placement_id} was already recalled")
    placement.recalled_at = datetime.now(UTC)
    detail = session.get(PlacementDetail, placement.id)
    if detail is None:  # placed before details were kept
        detail = PlacementDetail(
            placement_id=placement.id, balance_placed=patient_due(session, placement.patient_id)[0]
        )
        session.add(detail)
    detail.recalled_by = "practice" if as_practice else "agency"
    detail.recall_reason = reason[:2000]
    detail.recalled_by_user_id = access.user_id
    session.flush()
    audit.record_access(
        session, access, "agency_placement", placement.id, "recall",
        {"patient_id": placement.patient_id, "by": detail.recalled_by, "reason": reason[:200]},
    )  # fmt: skip
    return placement


# --- placements as the callers see them -----------------------------------------------------------------------------


@dataclass
class PlacementView:
    id: int
    patient_id: int
    account_number: str
    first_name: str
    last_name: str
    agency_id: int
    agency_name: str
    placed_at: datetime
    recalled_at: datetime | None
    balance_placed: Decimal
    patient_balance: Decimal
    collected_gross: Decimal
    collected_fee: Decimal
    collected_net: Decimal
    recalled_by: str | None = None
    recall_reason: str = ""
    exported_in: int | None = None


def list_placements(session: Session, access: PracticeAccess, *, status: str = "open") -> list[PlacementView]:
    """Placements (agency callers: their open ones only), newest first, with what was collected on each."""
    _require(access, "patients:read", "collections:write")
    stmt = _placements_stmt(access)
    if status == "open":
        stmt = stmt.where(AgencyPlacement.recalled_at.is_(None))
    elif status == "recalled":
        stmt = stmt.where(AgencyPlacement.recalled_at.is_not(None))
    placements = list(session.scalars(stmt.order_by(AgencyPlacement.placed_at.desc(), AgencyPlacement.id.desc())))
    views = placement_views(session, placements)
    audit.record_access(session, access, "agency_placement", None, "list", {"ids": [v.id for v in views]})
    return views


def placement_view(session: Session, access: PracticeAccess, placement_id: int) -> PlacementView:
    _require(access, "patients:read", "collections:write")
    view = placement_views(session, [get_placement(session, access, placement_id)])[0]
    audit.record_access(session, access, "agency_placement", placement_id, "read", {"patient_id": view.patient_id})
    return view


def placement_views(session: Session, placements: list[AgencyPlacement]) -> list[PlacementView]:
    if not placements:
        return []
    ids = [p.id for p in placements]
    patient_ids = list({p.patient_id for p in placements})
    patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(patient_ids)))}
    details = {
        d.placement_id: d for d in session.scalars(select(PlacementDetail).where(PlacementDetail.placement_id.in_(ids)))
    }
    agencies = {
        a.id: a.name
        for a in session.scalars(
            select(CollectionAgency).where(CollectionAgency.id.in_({p.agency_id for p in placements}))
        )
    }
    collected = {
        row[0]: row[1:]
        for row in session.execute(
            select(
                AgencyPaymentReport.placement_id,
                func.sum(AgencyPaymentReport.gross),
                func.sum(AgencyPaymentReport.fee),
                func.sum(AgencyPaymentReport.net),
            )
            .where(AgencyPaymentReport.placement_id.in_(ids))
            .group_by(AgencyPaymentReport.placement_id)
        )
    }
    exported = dict(
        session.execute(
            select(AgencyExportItem.placement_id, AgencyExportItem.export_id).where(
                AgencyExportItem.placement_id.in_(ids)
            )
        ).all()
    )
    due = _due_lines(patient_ids)
    balances = dict(
        session.execute(select(due.c.patient_id, func.sum(due.c.patient_part)).group_by(due.c.patient_id)).all()
    )
    out = []
    for p in placements:
        patient = patients[p.patient_id]
        detail = details.get(p.id)
        gross, fee, net = collected.get(p.id, (ZERO, ZERO, ZERO))
        out.append(
            PlacementView(
                id=p.id,
                patient_id=p.patient_id,
                account_number=patient.account_number,
                first_name=patient.first_name,
                last_name=patient.last_name,
                agency_id=p.agency_id,
                agency_name=agencies.get(p.agency_id, ""),
                placed_at=p.placed_at,
                recalled_at=p.recalled_at,
                balance_placed=money(detail.balance_placed) if detail else money(balances.get(p.patient_id, ZERO)),
                patient_balance=money(balances.get(p.patient_id, ZERO)),
                collected_gross=money(gross),
                collected_fee=money(fee),
                collected_net=money(net),
                recalled_by=detail.recalled_by if detail else None,
                recall_reason=detail.recall_reason if detail else "",
                exported_in=exported.get(p.id),
            )
        )
    return out


# --- agency payment reports -----------------------------------------------------------------------------------------


def report_payment(
    session: Session,
    access: PracticeAccess,
    placement_id: int,
    *,
    amount: Decimal,
    received_on: date,
    reference: str,
    today: date | None = None,
) -> tuple[AgencyPaymentReport, bool]:
    """Record a payment the agency collected and post its gross to the ledger as a patient payment (source agency).
    Returns (report, created); the same agency reference again returns the first report and posts nothing."""
    from billing.patient_payments import post_patient_payment

    _require(access, "agency:report")
    today = today or _today()
    errors: dict[str, list[str]] = {}
    reference = (reference or "").strip()
    if not reference or len(reference) > 100:
        errors["reference"] = ["the agency's receipt reference, 1-100 characters"]
    try:
        gross = money(amount)
        if gross <= ZERO:
            errors["amount"] = ["must be more than 0"]
    except (ValueError, TypeError):
        errors["amount"] = ["an amount like 42.50"]
        gross = ZERO
    if received_on > today:
        errors["received_on"] = ["is in the future"]
    if errors:
        raise Invalid("payment report is not valid", errors=errors)
    placement = get_placement(session, access, placement_id, lock=True)
    if placement.agency_id not in access.agency_ids:
        raise NotFound(f"placement {placement_id} not found")
    existing = session.scalar(
        select(AgencyPaymentReport).where(
            AgencyPaymentReport.agency_id == placement.agency_id, AgencyPaymentReport.reference == reference
        )
    )
    if existing is not None:
        if existing.placement_id != placement.id or existing.gross != gross:
            raise Conflict(f"reference {reference!r} was already reported for a different payment")
        return existing, False
    if placement.recalled_at is not None:
        raise Conflict(f"placement {placement_id} was recalled")
    ceiling = reportable_balance(session, placement)
    if gross > ceiling:
        # Refused, not held: a report above what is still owed on the placement would post as patient credit
        # (999,999.00 on a 299.71 account did); the agency corrects the amount or the practice takes it up.
        raise Invalid(
            "payment report is not valid",
            errors={"amount": [f"more than the {ceiling} still owed on this placement"]},
        )
    terms = session.get(AgencyTerms, placement.agency_id)
    pct = terms.fee_percent if terms is not None else ZERO
    fee = percent_of(gross, pct)
    report = AgencyPaymentReport(
        placement_id=placement.id,
        agency_id=placement.agency_id,
        patient_id=placement.patient_id,
        reference=reference,
        received_on=received_on,
        gross=gross,
        fee_percent=pct,
        fee=fee,
        net=gross - fee,
        reported_by_user_id=access.user_id,
    )
    session.add(report)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # the same reference reported concurrently
        raise Conflict(f"reference {reference!r} is being reported already") from exc
    post_patient_payment(
        session,
        placement.patient_id,
        gross,
        method="agency",
        reference=reference,
        received_on=received_on,
        user_id=access.user_id,
        source_type="agency",
        source_id=f"agency_report:{report.id}",
        posting_key=f"agency:{placement.agency_id}:{reference}",
        note=f"collected by agency {placement.agency_id}, fee {fee}",
    )
    audit.record_access(
        session, access, "agency_payment_report", report.id, "report",
        {"placement_id": placement.id, "patient_id": placement.patient_id, "gross": str(gross), "fee": str(fee)},
    )  # fmt: skip
    return report, True


def reportable_balance(session: Session, placement: AgencyPlacement) -> Decimal:
    """The most an agency may report on a placement now: what is left of the balance placed after what it already
    reported, and never more than the patient owes today (a payment made at the practice lowers it too)."""
    view = placement_views(session, [placement])[0]
    return max(ZERO, min(view.balance_placed - view.collected_gross, view.patient_balance))


def report_payment_file(
    session: Session,
    access: PracticeAccess,
    data: bytes,
    *,
    agency_id: int | None = None,
    today: date | None = None,
) -> dict:
    """Post an agency's payment file (its configured report layout): every line names one of the agency's open
    placements by account number. The whole file is checked first and posted all or nothing; lines already
    reported (same reference) are recognised and post nothing again."""
    _require(access, "agency:report")
    mine = [a for a in linked_agencies(session, access) if a.id in access.agency_ids]
    if agency_id is not None:
        mine = [a for a in mine if a.id == agency_id]
    if not mine:
        raise NotFound("no agency of yours serves this practice")
    if len(mine) > 1:
        raise Invalid("you report for several agencies here", errors={"agency_id": ["say which agency sent it"]})
    agency = mine[0]
    fmt = agency_formats.validate_format(report_format_config(agency, session.get(AgencyTerms, agency.id)))
    rows = agency_formats.parse(fmt, data)
    if not rows:
        raise Invalid("the file holds no payments", errors={"file": ["no payment lines"]})
    numbers = {r["account_number"] for r in rows if r.get("account_number")}
    placements = dict(
        session.execute(
            select(Patient.account_number, AgencyPlacement.id)
            .join(AgencyPlacement, AgencyPlacement.patient_id == Patient.id)
            .where(
                Patient.account_number.in_(numbers),
                AgencyPlacement.agency_id == agency.id,
                AgencyPlacement.recalled_at.is_(None),
            )
        ).all()
    )
    errors: dict[str, list[str]] = {}
    for n, row in enumerate(rows, start=1):
        for name in agency_formats.REPORT_REQUIRED:
            if row.get(name) in (None, ""):
                errors.setdefault(f"record {n}", []).append(f"{name} is empty")
        if row.get("account_number") and row["account_number"] not in placements:
            errors.setdefault(f"record {n}", []).append(
                f"account {row['account_number']!r} is not placed with {agency.name}"
            )
    if errors:
        raise Invalid("the payment file was not posted", errors=errors)
    posted, duplicates, gross = 0, 0, ZERO
    for n, row in enumerate(rows, start=1):
        try:
            report, created = report_payment(
                session,
                access,
                placements[row["account_number"]],
                amount=row["payment_amount"],
                received_on=row["payment_date"],
                reference=row["payment_reference"],
                today=today,
            )
        except Invalid as exc:
            raise Invalid(
                "the payment file was not posted", errors={f"record {n}: {k}": v for k, v in exc.errors.items()}
            ) from exc
        if created:
            posted += 1
            gross += report.gross
        else:
            duplicates += 1
    return {"agency_id": agency.id, "posted": posted, "duplicates": duplicates, "gross": money(gross)}


def store_payment_file(
    session: Session, storage: Storage, access: PracticeAccess, agency_id: int, data: bytes, filename: str
) -> str:
    """Keep an agency's payment file as received, beside its exports: a posting can be traced to its file."""
    agency = session.get(CollectionAgency, agency_id)
    key = company_key(
        access.company_id, "agencies", agency.slug, "returns", access.slug, f"{hashlib.sha256(data).hexdigest()}.dat"
    )
    storage.put(key, data, metadata={"filename": filename[:200]})
    return key


def list_reports(
    session: Session, access: PracticeAccess, placement_id: int | None = None
) -> list[AgencyPaymentReport]:
    _require(access, "patients:read", "collections:write")
    stmt = select(AgencyPaymentReport)
    if access.placed_only:
        stmt = stmt.where(
            AgencyPaymentReport.agency_id.in_(list(access.agency_ids)),
            exists().where(
                AgencyPlacement.id == AgencyPaymentReport.placement_id, AgencyPlacement.recalled_at.is_(None)
            ),
        )
    if placement_id is not None:
        get_placement(session, access, placement_id)
        stmt = stmt.where(AgencyPaymentReport.placement_id == placement_id)
    rows = list(session.scalars(stmt.order_by(AgencyPaymentReport.received_on.desc(), AgencyPaymentReport.id.desc())))
    audit.record_access(session, access, "agency_payment_report", None, "list", {"ids": [r.id for r in rows]})
    return rows


# --- exports --------------------------------------------------------------------------------------------------------


def _accounts(session: Session, practice_name: str, placements: list[AgencyPlacement]) -> list[dict]:
    """Everything an agency file may carry about each placed account, as agency_formats fields."""
    patient_ids = [p.patient_id for p in placements]
    patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(patient_ids)))}
    guarantors = {
        g.patient_id: g for g in session.scalars(select(Guarantor).where(Guarantor.patient_id.in_(patient_ids)))
    }
    coverage_rows = session.execute(
        select(Coverage, Payer)
        .join(Payer, Payer.id == Coverage.payer_id)
        .where(Coverage.patient_id.in_(patient_ids))
        .order_by(Coverage.patient_id, Coverage.priority, Coverage.effective_date.desc())
    ).all()
    coverages: dict[int, tuple[Coverage, Payer]] = {}
    for coverage, payer in coverage_rows:
        coverages.setdefault(coverage.patient_id, (coverage, payer))
    details = {
        d.placement_id: d
        for d in session.scalars(
            select(PlacementDetail).where(PlacementDetail.placement_id.in_([p.id for p in placements]))
        )
    }
    services = balances_by_service_date(session, patient_ids)
    last_payments: dict[int, PatientPayment] = {}
    for payment in session.scalars(
        select(PatientPayment)
        .where(PatientPayment.patient_id.in_(patient_ids), PatientPayment.kind == "payment")
        .order_by(PatientPayment.patient_id, PatientPayment.received_on.desc(), PatientPayment.id.desc())
    ):
        last_payments.setdefault(payment.patient_id, payment)
    accounts = []
    for placement in placements:
        patient = patients[placement.patient_id]
        guarantor = guarantors.get(patient.id)
        coverage, payer = coverages.get(patient.id, (None, None))
        lines = services.get(patient.id, [])
        current = money(sum((a for _, a in lines), ZERO))
        detail = details.get(placement.id)
        paid = last_payments.get(patient.id)
        account = {
            "account_number": patient.account_number,
            "placement_id": placement.id,
            "placed_date": placement.placed_at.date(),
            "total_placed": money(detail.balance_placed) if detail else current,
            "patient_balance": current,
            "oldest_service_date": lines[0][0] if lines else None,
            "last_payment_date": paid.received_on if paid else None,
            "last_payment_amount": money(paid.amount) if paid else None,
            "practice_name": practice_name,
            "services": [{"service_date": d, "service_balance": a} for d, a in lines],
        }
        for name in ("first_name", "middle_name", "last_name", "sex", "address_line1", "address_line2", "city",
                     "state", "postal_code", "phone", "email"):  # fmt: skip
            account[f"patient_{name}"] = getattr(patient, name)
        account["patient_date_of_birth"] = patient.date_of_birth
        # Without a guarantor on file the patient answers for the account.
        source = guarantor or patient
        account["guarantor_relationship"] = guarantor.relationship if guarantor else "self"
        for name in ("first_name", "last_name", "address_line1", "address_line2", "city", "state", "postal_code",
                     "phone"):  # fmt: skip
            account[f"guarantor_{name}"] = getattr(source, name)
        account["insurance_payer_name"] = payer.name if payer else ""
        account["insurance_payer_id"] = payer.payer_id if payer else ""
        account["insurance_member_id"] = coverage.member_id if coverage else ""
        account["insurance_group_number"] = (coverage.group_number or "") if coverage else ""
        accounts.append(account)
    return accounts


@dataclass
class ExportResult:
    export: AgencyExport
    data: bytes
    agency: CollectionAgency
    sftp: dict | None


def _export_context(session: Session, practice_slug: str, agency_id: int) -> tuple[Practice, CollectionAgency]:
    """The practice and agency of an export, checked to be linked; then the per practice-and-agency lock that
    serialises exports (a second job waits and then finds the work done)."""
    practice = session.scalar(select(Practice).where(Practice.slug == practice_slug))
    agency = session.get(CollectionAgency, agency_id)
    if practice is None or agency is None:
        raise NotFound("practice or agency not found")
    linked = session.scalar(
        select(AgencyPractice.agency_id).where(
            AgencyPractice.agency_id == agency_id, AgencyPractice.practice_id == practice.id
        )
    )
    if linked is None:
        raise NotFound(f"agency {agency_id} does not serve practice {practice_slug!r}")
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"agency-export:{practice_slug}:{agency_id}"))))
    return practice, agency


def _write_export(
    session: Session,
    storage: Storage,
    practice: Practice,
    agency: CollectionAgency,
    kind: str,
    accounts: list[dict],
    *,
    user_id: int | None,
    now: datetime,
) -> ExportResult:
    terms = session.get(AgencyTerms, agency.id)
    fmt = agency_formats.validate_format(format_config(agency, terms))
    data = agency_formats.render(fmt, accounts)
    digest = hashlib.sha256(data).hexdigest()
    # The day, not the second: a retried export (its worker died after storing the file) renders the same bytes and
    # writes them under the same name, over the dead attempt's file, instead of leaving a second file beside it.
    stamp = now.strftime("%Y%m%d")
    filename = f"{practice.slug}-{agency.slug}-{kind}-{stamp}-{digest[:8]}.{fmt.extension}"
    key = company_key(practice.company_id, "agencies", agency.slug, "exports", practice.slug, filename)
    # Stored before it is recorded: a recorded export always has its file.
    storage.put(key, data, content_type=fmt.content_type, metadata={"agency": agency.slug, "practice": practice.slug})
    export = AgencyExport(
        agency_id=agency.id,
        kind=kind,
        storage_key=key,
        filename=filename,
        file_type=fmt.type,
        row_count=len(agency_formats.records_of(fmt, accounts)),
        account_count=len(accounts),
        total_placed=money(sum((a["total_placed"] for a in accounts), ZERO)),
        sha256=digest,
        created_by_user_id=user_id,
    )
    session.add(export)
    session.flush()
    audit.record(
        session,
        user_id=user_id,
        practice_id=practice.id,
        object_type="agency_export",
        object_id=export.id,
        action="create",
        detail={"agency_id": agency.id, "kind": kind, "placements": [a["placement_id"] for a in accounts]},
    )
    return ExportResult(export=export, data=data, agency=agency, sftp=terms.sftp if terms else None)


def _details_for(session: Session, placements: list[AgencyPlacement], accounts: list[dict]) -> dict[int, Any]:
    """Each placement's detail row, created for placements made before details were kept."""
    details = {
        d.placement_id: d
        for d in session.scalars(
            select(PlacementDetail).where(PlacementDetail.placement_id.in_([p.id for p in placements]))
        )
    }
    for placement, account in zip(placements, accounts, strict=True):
        if placement.id not in details:
            details[placement.id] = PlacementDetail(
                placement_id=placement.id, balance_placed=account["patient_balance"]
            )
            session.add(details[placement.id])
    return details


def export_agency(
    session: Session,
    storage: Storage,
    practice_slug: str,
    agency_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> ExportResult | None:
    """Write the agency's file of placements not yet exported and record it; None when there is nothing new.
    Runs under a per practice-and-agency lock and records each placement once, so a retry or a second job writes
    no second file of the same accounts. The caller commits."""
    practice, agency = _export_context(session, practice_slug, agency_id)
    placements = list(
        session.scalars(
            select(AgencyPlacement)
            .where(
                AgencyPlacement.agency_id == agency_id,
                AgencyPlacement.recalled_at.is_(None),
                ~exists().where(AgencyExportItem.placement_id == AgencyPlacement.id),
            )
            .order_by(AgencyPlacement.id)
        )
    )
    if not placements:
        return None
    accounts = [a | {"status": "placed"} for a in _accounts(session, practice.name, placements)]
    result = _write_export(
        session, storage, practice, agency, "placements", accounts, user_id=user_id, now=now or datetime.now(UTC)
    )
    session.execute(
        insert(AgencyExportItem).values([{"placement_id": p.id, "export_id": result.export.id} for p in placements])
    )
    details = _details_for(session, placements, accounts)
    for placement, account in zip(placements, accounts, strict=True):
        details[placement.id].sent_balance = account["patient_balance"]
    session.flush()
    return result


def export_agency_updates(
    session: Session,
    storage: Storage,
    practice_slug: str,
    agency_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> ExportResult | None:
    """Write the agency's updates file: accounts sent before whose balance changed since (payments the practice
    took, adjustments...) with status "updated", and accounts recalled since with status "recalled". Each change
    goes out once; None when nothing changed. The caller commits."""
    practice, agency = _export_context(session, practice_slug, agency_id)
    sent = list(
        session.scalars(
            select(AgencyPlacement)
            .join(AgencyExportItem, AgencyExportItem.placement_id == AgencyPlacement.id)
            .outerjoin(PlacementDetail, PlacementDetail.placement_id == AgencyPlacement.id)
            .where(
                AgencyPlacement.agency_id == agency_id,
                func.coalesce(PlacementDetail.recall_sent, False).is_(False),
            )
            .order_by(AgencyPlacement.id)
        )
    )
    if not sent:
        return None
    accounts = _accounts(session, practice.name, sent)
    details = _details_for(session, sent, accounts)
    changed: list[tuple[AgencyPlacement, dict, str]] = []
    for placement, account in zip(sent, accounts, strict=True):
        detail = details[placement.id]
        if placement.recalled_at is not None:
            changed.append((placement, account | {"status": "recalled"}, "recalled"))
        elif detail.sent_balance is None or detail.sent_balance != account["patient_balance"]:
            changed.append((placement, account | {"status": "updated"}, "balance"))
    if not changed:
        return None
    result = _write_export(
        session, storage, practice, agency, "updates", [a for _, a, _ in changed], user_id=user_id,
        now=now or datetime.now(UTC),
    )  # fmt: skip
    session.execute(
        insert(AgencyUpdateItem).values(
            [
                {"export_id": result.export.id, "placement_id": p.id, "update_type": kind,
                 "balance": a["patient_balance"]}
                for p, a, kind in changed
            ]
        )
    )  # fmt: skip
    for placement, account, kind in changed:
        details[placement.id].sent_balance = account["patient_balance"]
        if kind == "recalled":
            details[placement.id].recall_sent = True
    session.flush()
    return result


def agencies_with_pending_exports(session: Session) -> list[int]:
    """Agencies with placements of this practice not yet exported, or sent before (their updates may be due)."""
    return list(session.scalars(select(AgencyPlacement.agency_id).distinct().order_by(AgencyPlacement.agency_id)))


def list_exports(session: Session, access: PracticeAccess) -> list[AgencyExport]:
    """Export files (agency callers: only their agencies'), newest first."""
    _require(access, "exports:read")
    stmt = select(AgencyExport)
    if access.placed_only:
        stmt = stmt.where(AgencyExport.agency_id.in_(list(access.agency_ids)))
    rows = list(session.scalars(stmt.order_by(AgencyExport.created_at.desc(), AgencyExport.id.desc())))
    audit.record_access(session, access, "agency_export", None, "list", {"ids": [r.id for r in rows]})
    return rows


def get_export(session: Session, access: PracticeAccess, export_id: int, *, action: str = "read") -> AgencyExport:
    _require(access, "exports:read")
    stmt = select(AgencyExport).where(AgencyExport.id == export_id)
    if access.placed_only:
        stmt = stmt.where(AgencyExport.agency_id.in_(list(access.agency_ids)))
    export = session.scalar(stmt)
    if export is None:
        raise NotFound(f"export {export_id} not found")
    # The file holds patient data: each look and each download is recorded.
    audit.record_access(session, access, "agency_export", export.id, action, {"agency_id": export.agency_id})
    return export


def undelivered_exports(session: Session, agency_ids: list[int]) -> list[tuple[AgencyExport, dict]]:
    """Exports of agencies that take SFTP delivery which have not reached the agency yet (a failed delivery, or a
    worker that died between recording the file and sending it), oldest first, with the agency's delivery settings."""
    if not agency_ids:
        return []
    rows = session.execute(
        select(AgencyExport, AgencyTerms.sftp)
        .join(AgencyTerms, AgencyTerms.agency_id == AgencyExport.agency_id)
        .where(
            AgencyExport.agency_id.in_(agency_ids),
            AgencyExport.delivered_sftp_at.is_(None),
            AgencyTerms.sftp.is_not(None),
        )
        .order_by(AgencyExport.id)
    ).all()
    return [(export, sftp) for export, sftp in rows if sftp]


def mark_delivered(session: Session, export_id: int, error: str = "") -> None:
    export = session.get(AgencyExport, export_id)
    if error:
        export.delivery_error = error[:2000]
    else:
        export.delivered_sftp_at = datetime.now(UTC)
        export.delivery_error = ""


def collected_totals(session: Session, access: PracticeAccess) -> dict[str, Decimal]:
    """Gross, fee and net of every payment agencies reported (agency callers: their own)."""
    stmt = select(
        func.coalesce(func.sum(AgencyPaymentReport.gross), 0),
        func.coalesce(func.sum(AgencyPaymentReport.fee), 0),
        func.coalesce(func.sum(AgencyPaymentReport.net), 0),
    )
    if access.placed_only:
        stmt = stmt.where(AgencyPaymentReport.agency_id.in_(list(access.agency_ids)))
    gross, fee, net = session.execute(stmt).one()
    return {"gross": money(gross), "fee": money(fee), "net": money(net)}


__all__ = [
    "Candidate",
    "ExportResult",
    "PlacementView",
    "approve",
    "candidates",
    "export_agency",
    "export_agency_updates",
    "get_rules",
    "list_exports",
    "list_placements",
    "recall",
    "report_payment",
    "report_payment_file",
    "set_rules",
    "set_terms",
    "skip",
]
