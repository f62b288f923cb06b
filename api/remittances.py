"""Remittances over HTTP: deposits (the 835 payments) with their claims, what each posted and the provider-level
adjustments, the posting-exception queue, the denial work queue, and a claim's ledger with its balances. Read-only
views over billing.models and billing.ledger; every read of patient data is audited.

The read functions below (everything before the routes) take a plain session and are shared with the portal
(portal/remittances.py), so both show the same figures. Remark codes (RARC) are not columns of the ledger: they are
read from the deposit's raw 835 in storage, parsed once per process and kept in a small cache."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import String, and_, case, cast, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY, array, array_agg
from sqlalchemy.orm import Session

from api.schemas import PageArgs, PageMeta
from api.security import access, db_session, policy
from api.setup import Id, Money, payers_by_id
from billing import ledger, rules, underpayments
from billing.adjustment_codes import describe_adjustment, describe_remark
from billing.models import (
    Claim,
    ClaimLine,
    Deposit,
    InboundFile,
    LedgerEntry,
    Patient,
    Payer,
    PracticePayer,
    ProviderAdjustmentEntry,
    RemittanceClaim,
    ServiceLine,
    Underpayment,
    UnderpaymentTolerance,
)
from integrations.storage import StorageError
from integrations.x12.reader import X12Error
from integrations.x12.remit835 import CLAIM_STATUSES, PROVIDER_ADJUSTMENT_REASONS, parse_835
from medbill.errors import Invalid, NotFound
from tenants import audit

log = logging.getLogger("medbill.remittances")

blp = Blueprint(
    "remittances",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Remittances (835 deposits), posting exceptions, denials and a claim's ledger",
)

KIND_LABELS = {
    "charge": "Charge",
    "insurance_payment": "Insurance payment",
    "contractual_adjustment": "Contractual adjustment",
    "other_adjustment": "Other adjustment",
    "patient_responsibility": "Patient responsibility",
    "transfer_to_secondary": "Transfer to secondary",
    "patient_payment": "Patient payment",
    "write_off": "Write-off",
    "refund": "Refund",
    "reversal": "Reversal",
}
# Groups whose zero-paid adjustments make a line a denial (PR means the patient owes it: not a denial).
DENIAL_GROUPS = rules.DENIAL_GROUPS  # the rule lives in billing.rules
DENIAL_SORTS = ("-age", "age", "-amount", "amount")
DEFAULT_DENIAL_SORT = "-age"


def plb_reason_text(code: str) -> str:
    return PROVIDER_ADJUSTMENT_REASONS.get((code or "").strip().upper(), f"PLB reason {code}")


def claim_status_text(code: str) -> str:
    return CLAIM_STATUSES.get((code or "").strip(), f"Claim status {code}")


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def reason_text(group: str, reason: str) -> str:
    return describe_adjustment(group, reason) if (group or reason) else ""


def _deposit_source(deposit_id: int) -> str:
    return f"deposit:{deposit_id}"


def _posting_position(posting_key: str | None) -> int | None:
    """The segment position in a remittance posting key ("835:<set>:<position>:..."), None for other keys."""
    parts = (posting_key or "").split(":")
    if len(parts) >= 3 and parts[0] == "835" and parts[2].isdigit():
        return int(parts[2])
    return None


def download_url(deposit: Deposit) -> str | None:
    """The audited documents route of the deposit's own 835 (its transaction set in its own envelope, not the file it
    came in, which for a company-level upload may hold other practices' payments); the route records the download
    and redirects to a short-lived link. None when the deposit has no stored 835 or the caller may not read
    documents."""
    if not deposit.storage_key or not access().can("documents:read"):
        return None
    return f"/api/v1/practices/{access().slug}/documents/835-{deposit.id}/download"


# --- remark codes, from the raw 835 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Remarks:
    claim: tuple[str, ...]  # MOA/MIA
    lines: dict[int, tuple[str, ...]]  # our claim line id (REF*6R) -> LQ*HE


_REMARK_CACHE: OrderedDict[tuple[str, str], dict[int, _Remarks]] = OrderedDict()
_REMARK_CACHE_SIZE = 32
_REMARK_LOCK = threading.Lock()


def _remarks_of_set(storage_key: str, content_sha256: str) -> dict[int, _Remarks]:
    """CLP segment position -> its remark codes, for the transaction set `content_sha256` of the stored file."""
    cache_key = (storage_key, content_sha256)
    with _REMARK_LOCK:
        if cache_key in _REMARK_CACHE:
            _REMARK_CACHE.move_to_end(cache_key)
            return _REMARK_CACHE[cache_key]
    found: dict[int, _Remarks] = {}
    try:
        data = current_app.extensions["medbill"].storage.get(storage_key)
        for remittance in parse_835(data, strict_balancing=False, check_counts=False):
            if remittance.content_key != content_sha256:
                continue
            for clp in remittance.claims:
                lines = {
                    int(svc.line_item_control_number): tuple(svc.remark_codes)
                    for svc in clp.lines
                    if (svc.line_item_control_number or "").strip().isdigit() and svc.remark_codes
                }
                found[clp.segment_position] = _Remarks(tuple(clp.remark_codes), lines)
    except (StorageError, X12Error, ValueError) as exc:
        # The figures come from the ledger; remarks are a help. A missing or unreadable file shows none.
        log.info("remark codes of %s unavailable: %s", storage_key, exc)
        return found
    with _REMARK_LOCK:
        _REMARK_CACHE[cache_key] = found
        while len(_REMARK_CACHE) > _REMARK_CACHE_SIZE:
            _REMARK_CACHE.popitem(last=False)
    return found


def remark_codes(storage_key: str, content_sha256: str, clp_position: int, claim_line_id: int | None) -> list[str]:
    """The remark codes of one claim of a deposit: of one of its lines (or of all of them when `claim_line_id` is None)
    first, then the claim's own (MOA/MIA)."""
    if not storage_key:
        return []
    remarks = _remarks_of_set(storage_key, content_sha256).get(clp_position)
    if remarks is None:
        return []
    if claim_line_id is None:  # the whole claim: every line's codes
        codes = [code for line_codes in remarks.lines.values() for code in line_codes]
    else:
        codes = list(remarks.lines.get(claim_line_id, ()))
    return list(dict.fromkeys([*codes, *remarks.claim]))


# --- reads shared with the portal -----------------------------------------------------------------------------------


def _counts_by_deposit():
    claims_count = func.count(RemittanceClaim.id)
    exceptions_count = func.count(RemittanceClaim.id).filter(RemittanceClaim.outcome == "exception")
    return (
        select(
            RemittanceClaim.deposit_id,
            claims_count.label("claims_count"),
            exceptions_count.label("exceptions_count"),
        )
        .group_by(RemittanceClaim.deposit_id)
        .subquery("counts")
    )


def list_deposits(session: Session, *, page: int, per_page: int) -> tuple[list, int]:
    """Deposits newest first with their claim and exception counts: two statements whatever the page size."""
    total = session.scalar(select(func.count()).select_from(Deposit)) or 0
    counts = _counts_by_deposit()
    rows = session.execute(
        select(
            Deposit,
            func.coalesce(counts.c.claims_count, 0).label("claims_count"),
            func.coalesce(counts.c.exceptions_count, 0).label("exceptions_count"),
        )
        .outerjoin(counts, counts.c.deposit_id == Deposit.id)
        .order_by(Deposit.payment_date.desc().nulls_last(), Deposit.created_at.desc(), Deposit.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return rows, total


def deposit_row(d: Deposit, claims_count: int, exceptions_count: int) -> dict:
    return {
        "id": d.id,
        "payer_name": d.payer_name,
        "payer_id": d.payer_id,
        "payment_method": d.payment_method,
        "handling_code": d.handling_code,
        "trace_number": d.trace_number,
        "payment_date": d.payment_date,
        "amount": d.amount,
        "payee_npi": d.payee_npi,
        "payee_tax_id": d.payee_tax_id,
        "claims_count": claims_count,
        "exceptions_count": exceptions_count,
        "received_at": d.created_at,
    }


def deposit_detail(session: Session, deposit_id: int) -> dict:
    """A deposit with its PLB pairs and each of its claims with what it posted (the ledger entries of this deposit,
    reversals included), in a fixed number of statements."""
    found = session.execute(
        select(Deposit, InboundFile.content_sha256)
        .join(InboundFile, InboundFile.id == Deposit.inbound_file_id)
        .where(Deposit.id == deposit_id)
    ).one_or_none()
    if found is None:
        raise NotFound(f"remittance {deposit_id} not found")
    deposit, content_sha = found
    plb = session.scalars(
        select(ProviderAdjustmentEntry)
        .where(ProviderAdjustmentEntry.deposit_id == deposit.id)
        .order_by(ProviderAdjustmentEntry.id)
    ).all()
    rcs = session.execute(
        select(RemittanceClaim, Patient.first_name, Patient.last_name, Patient.account_number)
        .outerjoin(Claim, Claim.id == RemittanceClaim.claim_id)
        .outerjoin(Patient, Patient.id == Claim.patient_id)
        .where(RemittanceClaim.deposit_id == deposit.id)
        .order_by(RemittanceClaim.segment_position, RemittanceClaim.id)
    ).all()
    claim_ids = {rc.RemittanceClaim.claim_id for rc in rcs if rc.RemittanceClaim.claim_id is not None}
    entries = []
    if claim_ids:
        entries = session.execute(
            select(LedgerEntry, ClaimLine.line_number, ServiceLine.procedure_code)
            .join(ClaimLine, ClaimLine.id == LedgerEntry.claim_line_id)
            .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
            .where(
                LedgerEntry.claim_id.in_(claim_ids),
                or_(
                    LedgerEntry.source_id == _deposit_source(deposit.id),
                    LedgerEntry.posting_key.startswith(f"835:{content_sha}:", autoescape=True),
                ),
            )
            .order_by(LedgerEntry.id)
        ).all()
    # An entry belongs to the CLP of its claim at or before its segment position (a reversal and its re-payment
    # share CLP01 in one set).
    by_claim: dict[int, list] = {}
    for r in rcs:
        if r.RemittanceClaim.claim_id is not None:
            by_claim.setdefault(r.RemittanceClaim.claim_id, []).append(r.RemittanceClaim)
    posted: dict[int, list[dict]] = {}
    for e in entries:
        entry = e.LedgerEntry
        position = _posting_position(entry.posting_key) or 0
        candidates = [rc for rc in by_claim.get(entry.claim_id, []) if rc.segment_position <= position]
        owner = candidates[-1] if candidates else by_claim[entry.claim_id][0]
        posted.setdefault(owner.id, []).append(entry_out(entry, e.line_number, e.procedure_code))
    claims_out = []
    for r in rcs:
        rc = r.RemittanceClaim
        claims_out.append(
            {
                "id": rc.id,
                "claim_id": rc.claim_id,
                "patient_control_number": rc.patient_control_number,
                "patient_name": f"{r.last_name}, {r.first_name}" if r.last_name else None,
                "account_number": r.account_number,
                "status_code": rc.status_code,
                "status_text": claim_status_text(rc.status_code),
                "payer_claim_number": rc.payer_claim_number,
                "charge": rc.charge,
                "paid": rc.paid,
                "patient_responsibility": rc.patient_responsibility,
                "outcome": rc.outcome,
                "exception_reason": rc.exception_reason,
                "segment_position": rc.segment_position,
                "remark_codes": [
                    {"code": c, "description": describe_remark(c)}
                    for c in remark_codes(deposit.storage_key, content_sha, rc.segment_position, None)
                ],
                "posted": posted.get(rc.id, []),
            }
        )
    return {
        "deposit": deposit,
        "provider_adjustments": [
            {
                "reason_code": p.reason_code,
                "reason": plb_reason_text(p.reason_code),
                "reference": p.reference,
                "amount": p.amount,
                "fiscal_period_date": p.fiscal_period_date,
                "claim_id": p.claim_id,
            }
            for p in plb
        ],
        "claims": claims_out,
        "claims_count": len(rcs),
        "exceptions_count": sum(1 for r in rcs if r.RemittanceClaim.outcome == "exception"),
    }


def entry_out(entry: LedgerEntry, line_number: int | None = None, procedure_code: str | None = None) -> dict:
    return {
        "id": entry.id,
        "claim_id": entry.claim_id,
        "claim_line_id": entry.claim_line_id,
        "line_number": line_number,
        "procedure_code": procedure_code,
        "kind": entry.kind,
        "kind_label": kind_label(entry.kind),
        "amount": entry.amount,
        "insurance_delta": entry.insurance_delta,
        "patient_delta": entry.patient_delta,
        "group_code": entry.group_code,
        "reason_code": entry.reason_code,
        "reason": reason_text(entry.group_code, entry.reason_code),
        "reverses_entry_id": entry.reverses_entry_id,
        "source_type": entry.source_type,
        "source_id": entry.source_id,
        "deposit_id": _deposit_of(entry.source_id),
        "note": entry.note,
        "user_id": entry.user_id,
        "created_at": entry.created_at,
    }


def _deposit_of(source_id: str) -> int | None:
    prefix, _, value = (source_id or "").partition(":")
    return int(value) if prefix == "deposit" and value.isdigit() else None


def list_exceptions(session: Session, *, page: int, per_page: int) -> tuple[list, int]:
    """RemittanceClaim rows that could not post, oldest first, with their deposit: two statements."""
    total = count_exceptions(session)
    rows = session.execute(
        select(
            RemittanceClaim,
            Deposit.payer_name,
            Deposit.trace_number,
            Deposit.payment_date,
            Deposit.payment_method,
        )
        .join(Deposit, Deposit.id == RemittanceClaim.deposit_id)
        .where(RemittanceClaim.outcome == "exception")
        .order_by(RemittanceClaim.created_at, RemittanceClaim.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return rows, total


def exception_row(row) -> dict:
    rc = row.RemittanceClaim
    return {
        "id": rc.id,
        "deposit_id": rc.deposit_id,
        "claim_id": rc.claim_id,
        "patient_control_number": rc.patient_control_number,
        "payer_claim_number": rc.payer_claim_number,
        "status_code": rc.status_code,
        "status_text": claim_status_text(rc.status_code),
        "charge": rc.charge,
        "paid": rc.paid,
        "patient_responsibility": rc.patient_responsibility,
        "reason": rc.exception_reason,
        "payer_name": row.payer_name,
        "trace_number": row.trace_number,
        "payment_date": row.payment_date,
        "received_at": rc.created_at,
    }


@dataclass(frozen=True)
class DenialFilters:
    reason: str | None = None  # "CO-50"
    payer_id: int | None = None  # shared.payers.id of the claim
    min_age: int | None = None
    max_age: int | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    sort: str = DEFAULT_DENIAL_SORT


def _denial_base():
    """One row per denied claim line: the line, its claim, the claim's latest remittance (a posted one) and what
    that remittance posted to the line. A line is denied when its claim is denied, or when the remittance paid
    nothing on it and adjusted it with a CO/PI/OA reason and no patient responsibility."""
    latest = (
        select(
            RemittanceClaim.id.label("rc_id"),
            RemittanceClaim.deposit_id,
            RemittanceClaim.outcome,
            RemittanceClaim.segment_position,
        )
        .where(RemittanceClaim.claim_id == Claim.id, RemittanceClaim.outcome.in_(("posted", "reversal")))
        .order_by(RemittanceClaim.id.desc())
        .limit(1)
        .correlate(Claim)
        .lateral("latest_rc")
    )
    source = literal("deposit:") + cast(latest.c.deposit_id, String)
    on_line = LedgerEntry.claim_line_id == ClaimLine.id
    coded = rules.denial_code_sql(LedgerEntry.group_code, LedgerEntry.reason_code)
    code_text = LedgerEntry.group_code + literal("-") + LedgerEntry.reason_code
    posted = (
        select(
            func.coalesce(
                func.sum(case((and_(on_line, LedgerEntry.kind == "insurance_payment"), LedgerEntry.amount), else_=0)),
                0,
            ).label("paid"),
            func.coalesce(func.sum(case((and_(on_line, coded), LedgerEntry.amount), else_=0)), 0).label("denied"),
            func.coalesce(func.bool_or(and_(on_line, LedgerEntry.group_code == "PR")), False).label("has_pr"),
            array_agg(code_text.distinct()).filter(and_(on_line, coded)).label("line_codes"),
            array_agg(code_text.distinct()).filter(coded).label("claim_codes"),
        )
        .where(
            LedgerEntry.claim_id == Claim.id,
            LedgerEntry.source_id == source,
            LedgerEntry.kind != "reversal",
        )
        .correlate(Claim, ClaimLine, latest)
        .lateral("posted")
    )
    # The line's own codes; a claim-level denial (CAS of the CLP, posted to the first line) speaks for every line.
    codes = func.coalesce(posted.c.line_codes, posted.c.claim_codes, array([], type_=String)).label("codes")
    payment_day = func.coalesce(Deposit.payment_date, func.date(Deposit.created_at))
    age = (func.current_date() - payment_day).label("age_days")
    denied = rules.line_denied_sql(
        posted.c.paid, func.coalesce(func.cardinality(posted.c.line_codes), 0), posted.c.has_pr,
        Claim.status == "denied",
    )  # fmt: skip
    where = [Claim.status.in_(("denied", "paid", "partially_paid")), latest.c.outcome == "posted", denied]
    return latest, posted, codes, age, payment_day, where


def _denial_filtered(filters: DenialFilters):
    latest, posted, codes, age, payment_day, where = _denial_base()
    where = list(where)
    if filters.reason:
        where.append(cast(codes, ARRAY(String)).contains(array([filters.reason.strip().upper()], type_=String)))
    if filters.payer_id:
        where.append(Claim.payer_id == filters.payer_id)
    if filters.min_age is not None:
        where.append(age >= filters.min_age)
    if filters.max_age is not None:
        where.append(age <= filters.max_age)
    if filters.min_amount is not None:
        where.append(ClaimLine.charge >= filters.min_amount)
    if filters.max_amount is not None:
        where.append(ClaimLine.charge <= filters.max_amount)

    def joined(stmt):
        return (
            stmt.select_from(ClaimLine)
            .join(Claim, Claim.id == ClaimLine.claim_id)
            .join(latest, true())
            .join(Deposit, Deposit.id == latest.c.deposit_id)
            .join(posted, true())
        )

    return latest, posted, codes, age, payment_day, where, joined


def count_denials(session: Session) -> int:
    _latest, _posted, _codes, _age, _day, where, joined = _denial_filtered(DenialFilters())
    return session.scalar(joined(select(func.count())).where(*where)) or 0


def count_exceptions(session: Session) -> int:
    where = RemittanceClaim.outcome == "exception"
    return session.scalar(select(func.count()).select_from(RemittanceClaim).where(where)) or 0


def list_denials(session: Session, filters: DenialFilters, *, page: int, per_page: int) -> dict:
    """The denial work queue, a page of it and its groups (by reason, by payer): four statements whatever the size."""
    latest, posted, codes, age, payment_day, where, joined = _denial_filtered(filters)
    total = session.scalar(joined(select(func.count())).where(*where)) or 0
    order = {
        "-age": (payment_day.asc(), ClaimLine.id.asc()),
        "age": (payment_day.desc(), ClaimLine.id.desc()),
        "-amount": (ClaimLine.charge.desc(), ClaimLine.id.asc()),
        "amount": (ClaimLine.charge.asc(), ClaimLine.id.asc()),
    }[filters.sort if filters.sort in DENIAL_SORTS else DEFAULT_DENIAL_SORT]
    rows = session.execute(
        joined(
            select(
                ClaimLine.id.label("claim_line_id"),
                ClaimLine.line_number,
                ClaimLine.charge,
                Claim.id.label("claim_id"),
                Claim.status,
                Claim.payer_id,
                Claim.payer_claim_number,
                Patient.id.label("patient_id"),
                Patient.first_name,
                Patient.last_name,
                Patient.account_number,
                ServiceLine.procedure_code,
                ServiceLine.modifiers,
                ServiceLine.date_of_service,
                Payer.name.label("payer_name"),
                Deposit.id.label("deposit_id"),
                Deposit.trace_number,
                Deposit.storage_key,
                payment_day.label("payment_date"),
                InboundFile.content_sha256,
                latest.c.segment_position,
                posted.c.paid,
                posted.c.denied,
                codes,
                age,
            )
        )
        .join(Patient, Patient.id == Claim.patient_id)
        .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
        .join(InboundFile, InboundFile.id == Deposit.inbound_file_id)
        .outerjoin(Payer, Payer.id == Claim.payer_id)
        .where(*where)
        .order_by(*order)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    # Groups over the whole (unfiltered by reason) queue, so the filter can offer every reason.
    _l, _p, all_codes, _a, _d, all_where, all_joined = _denial_filtered(
        DenialFilters(payer_id=filters.payer_id, min_age=filters.min_age, max_age=filters.max_age,
                      min_amount=filters.min_amount, max_amount=filters.max_amount)
    )  # fmt: skip
    per_line = all_joined(select(ClaimLine.id, ClaimLine.charge, all_codes)).where(*all_where).subquery("q")
    code = func.unnest(per_line.c.codes).table_valued("code").render_derived()
    reasons = session.execute(
        select(code.c.code, func.count(), func.coalesce(func.sum(per_line.c.charge), 0))
        .select_from(per_line)
        .join(code, true())
        .group_by(code.c.code)
        .order_by(func.count().desc(), code.c.code)
    ).all()
    _l2, _p2, _c2, _a2, _d2, payer_where, payer_joined = _denial_filtered(
        DenialFilters(reason=filters.reason, min_age=filters.min_age, max_age=filters.max_age,
                      min_amount=filters.min_amount, max_amount=filters.max_amount)
    )  # fmt: skip
    payers = session.execute(
        payer_joined(select(Claim.payer_id, Payer.name, func.count(), func.coalesce(func.sum(ClaimLine.charge), 0)))
        .outerjoin(Payer, Payer.id == Claim.payer_id)
        .where(*payer_where)
        .group_by(Claim.payer_id, Payer.name)
        .order_by(func.count().desc(), Payer.name)
    ).all()
    items = []
    for r in rows:
        remarks = remark_codes(r.storage_key, r.content_sha256, r.segment_position, r.claim_line_id)
        items.append(
            {
                "claim_line_id": r.claim_line_id,
                "line_number": r.line_number,
                "claim_id": r.claim_id,
                "claim_status": r.status,
                "payer_claim_number": r.payer_claim_number,
                "patient": {
                    "id": r.patient_id,
                    "first_name": r.first_name,
                    "last_name": r.last_name,
                    "account_number": r.account_number,
                },
                "procedure_code": r.procedure_code,
                "modifiers": list(r.modifiers or []),
                "date_of_service": r.date_of_service,
                "payer_id": r.payer_id,
                "payer_name": r.payer_name,
                "charge": r.charge,
                "paid": r.paid,
                "denied_amount": r.denied,
                "deposit_id": r.deposit_id,
                "trace_number": r.trace_number,
                "payment_date": r.payment_date,
                "age_days": r.age_days,
                "reasons": [_reason(c) for c in sorted(r.codes or [])],
                "remarks": [{"code": c, "description": describe_remark(c)} for c in remarks],
            }
        )
    return {
        "items": items,
        "total": total,
        "reasons": [{**_reason(c), "count": n, "amount": amount} for c, n, amount in reasons],
        "payers": [{"payer_id": pid, "name": name, "count": n, "amount": amount} for pid, name, n, amount in payers],
    }


def _reason(code: str) -> dict:
    group, _, reason = code.partition("-")
    return {"code": code, "group_code": group, "reason_code": reason, "description": describe_adjustment(group, reason)}


def claim_ledger(session: Session, claim_id: int) -> dict:
    """Every ledger entry of a claim, its lines' balances and the claim's."""
    found = session.execute(
        select(Claim, Patient, Payer.name.label("payer_name"))
        .join(Patient, Patient.id == Claim.patient_id)
        .outerjoin(Payer, Payer.id == Claim.payer_id)
        .where(Claim.id == claim_id)
    ).one_or_none()
    if found is None:
        raise NotFound(f"claim {claim_id} not found")
    claim = found.Claim
    lines = session.execute(
        select(ClaimLine, ServiceLine.procedure_code, ServiceLine.modifiers, ServiceLine.date_of_service)
        .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
        .where(ClaimLine.claim_id == claim.id)
        .order_by(ClaimLine.line_number, ClaimLine.id)
    ).all()
    # Entries sit on the service's account, posted by this claim or another billing the same service (the primary,
    # a secondary, a replacement): each is shown against this claim's line for that service.
    numbers = {ln.ClaimLine.service_line_id: (ln.ClaimLine.line_number, ln.procedure_code) for ln in lines}
    entries = [
        entry_out(e, *numbers.get(e.service_line_id, (None, None))) for e in ledger.entries_for_claim(session, claim.id)
    ]
    return {
        "claim": claim,
        "patient": found.Patient,
        "payer_name": found.payer_name,
        "entries": entries,
        "lines": [
            {
                "claim_line_id": ln.ClaimLine.id,
                "line_number": ln.ClaimLine.line_number,
                "procedure_code": ln.procedure_code,
                "modifiers": list(ln.modifiers or []),
                "date_of_service": ln.date_of_service,
                "charge": ln.ClaimLine.charge,
                "balance": _balance_out(ledger.line_balance(session, ln.ClaimLine.id)),
            }
            for ln in lines
        ],
        "balance": _balance_out(ledger.claim_balance(session, claim.id)),
    }


def _balance_out(balance: ledger.Balance) -> dict:
    return {
        "charges": balance.charges,
        "payments": balance.payments,
        "adjustments": balance.adjustments,
        "insurance_balance": balance.insurance,
        "patient_balance": balance.patient,
        "total_balance": balance.total,
    }


# --- schemas --------------------------------------------------------------------------------------------------------


class DepositOut(Schema):
    id = fields.Integer(required=True)
    payer_name = fields.String(required=True)
    payer_id = fields.String(required=True, metadata={"description": "REF*2U of the payer, else N104"})
    payment_method = fields.String(required=True, metadata={"description": "BPR04: ACH, CHK, NON, ..."})
    handling_code = fields.String(required=True, metadata={"description": "BPR01"})
    trace_number = fields.String(required=True, metadata={"description": "TRN02: check or EFT trace number"})
    payment_date = fields.Date(allow_none=True, metadata={"description": "BPR16"})
    amount = Money(required=True, metadata={"description": "BPR02; may be 0 or negative"})
    payee_npi = fields.String(allow_none=True)
    payee_tax_id = fields.String(allow_none=True)
    claims_count = fields.Integer(required=True)
    exceptions_count = fields.Integer(required=True)
    received_at = fields.DateTime(required=True)


class DepositPage(Schema):
    items = fields.List(fields.Nested(DepositOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class CodeOut(Schema):
    code = fields.String(required=True)
    description = fields.String(required=True)


class EntryOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    claim_line_id = fields.Integer(required=True)
    line_number = fields.Integer(allow_none=True)
    procedure_code = fields.String(allow_none=True)
    kind = fields.String(required=True)
    kind_label = fields.String(required=True)
    amount = Money(required=True)
    insurance_delta = Money(required=True, metadata={"description": "how the entry moves what insurance owes"})
    patient_delta = Money(required=True, metadata={"description": "how the entry moves what the patient owes"})
    group_code = fields.String(required=True)
    reason_code = fields.String(required=True)
    reason = fields.String(required=True, metadata={"description": "group-reason in words; empty without a code"})
    reverses_entry_id = fields.Integer(allow_none=True)
    source_type = fields.String(required=True)
    source_id = fields.String(required=True)
    deposit_id = fields.Integer(allow_none=True)
    note = fields.String(required=True)
    user_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)


class PlbOut(Schema):
    reason_code = fields.String(required=True)
    reason = fields.String(required=True)
    reference = fields.String(allow_none=True)
    amount = Money(required=True, metadata={"description": "a positive amount reduces the payment"})
    fiscal_period_date = fields.Date(allow_none=True)
    claim_id = fields.Integer(allow_none=True)


class RemittanceClaimOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(allow_none=True)
    claim_url = fields.String(allow_none=True)
    ledger_url = fields.String(allow_none=True)
    patient_control_number = fields.String(required=True, metadata={"description": "CLP01"})
    patient_name = fields.String(allow_none=True)
    account_number = fields.String(allow_none=True)
    status_code = fields.String(required=True, metadata={"description": "CLP02"})
    status_text = fields.String(required=True)
    payer_claim_number = fields.String(required=True)
    charge = Money(required=True)
    paid = Money(required=True)
    patient_responsibility = Money(required=True)
    outcome = fields.String(required=True, metadata={"description": "posted, exception, reversal or duplicate"})
    exception_reason = fields.String(required=True)
    segment_position = fields.Integer(required=True)
    remark_codes = fields.List(fields.Nested(CodeOut), required=True, metadata={"description": "MOA/MIA, in words"})
    posted = fields.List(fields.Nested(EntryOut), required=True, metadata={"description": "ledger entries posted"})


class DepositDetail(DepositOut):
    provider_adjustments = fields.List(fields.Nested(PlbOut), required=True)
    claims = fields.List(fields.Nested(RemittanceClaimOut), required=True)
    download_url = fields.String(
        allow_none=True,
        metadata={"description": "the audited download of the payment's own 835 (answers with a redirect to a "
                  "short-lived link)"},
    )  # fmt: skip


class ExceptionOut(Schema):
    id = fields.Integer(required=True)
    deposit_id = fields.Integer(required=True)
    remittance_url = fields.String(required=True)
    claim_id = fields.Integer(allow_none=True)
    patient_control_number = fields.String(required=True)
    payer_claim_number = fields.String(required=True)
    status_code = fields.String(required=True)
    status_text = fields.String(required=True)
    charge = Money(required=True)
    paid = Money(required=True)
    patient_responsibility = Money(required=True)
    reason = fields.String(required=True)
    payer_name = fields.String(required=True)
    trace_number = fields.String(required=True)
    payment_date = fields.Date(allow_none=True)
    received_at = fields.DateTime(required=True)


class ExceptionPage(Schema):
    items = fields.List(fields.Nested(ExceptionOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class ReasonOut(Schema):
    code = fields.String(required=True, metadata={"description": "group-CARC, e.g. CO-50"})
    group_code = fields.String(required=True)
    reason_code = fields.String(required=True)
    description = fields.String(required=True)


class ReasonGroupOut(ReasonOut):
    count = fields.Integer(required=True)
    amount = Money(required=True, metadata={"description": "charges of the lines"})


class PayerGroupOut(Schema):
    payer_id = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True)
    count = fields.Integer(required=True)
    amount = Money(required=True)


class DenialPatientOut(Schema):
    id = fields.Integer(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    account_number = fields.String(required=True)


class DenialOut(Schema):
    claim_line_id = fields.Integer(required=True)
    line_number = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    claim_status = fields.String(required=True)
    payer_claim_number = fields.String(allow_none=True)
    patient = fields.Nested(DenialPatientOut, required=True)
    procedure_code = fields.String(required=True)
    modifiers = fields.List(fields.String(), required=True)
    date_of_service = fields.Date(required=True)
    payer_id = fields.Integer(allow_none=True)
    payer_name = fields.String(allow_none=True)
    charge = Money(required=True)
    paid = Money(required=True)
    denied_amount = Money(required=True, metadata={"description": "CO/PI/OA adjustments of the line"})
    deposit_id = fields.Integer(required=True)
    trace_number = fields.String(required=True)
    payment_date = fields.Date(required=True)
    age_days = fields.Integer(required=True, metadata={"description": "days since the deposit's payment date"})
    reasons = fields.List(fields.Nested(ReasonOut), required=True)
    remarks = fields.List(fields.Nested(CodeOut), required=True, metadata={"description": "RARC, in words"})


class DenialPage(Schema):
    items = fields.List(fields.Nested(DenialOut), required=True)
    meta = fields.Nested(PageMeta, required=True)
    reasons = fields.List(fields.Nested(ReasonGroupOut), required=True, metadata={"description": "the queue by reason"})
    payers = fields.List(fields.Nested(PayerGroupOut), required=True, metadata={"description": "the queue by payer"})


class DenialArgs(PageArgs):
    reason = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z]{2}-[A-Za-z0-9]{1,5}$"),
        metadata={"description": "group-CARC, e.g. CO-50"},
    )
    payer_id = Id(load_default=None)
    min_age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=100_000))
    max_age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=100_000))
    min_amount = Money(load_default=None)
    max_amount = Money(load_default=None)
    sort = fields.String(
        load_default=DEFAULT_DENIAL_SORT,
        validate=validate.OneOf(DENIAL_SORTS),
        metadata={"description": "-age oldest first (default), age newest first, -amount highest, amount lowest"},
    )


class BalanceOut(Schema):
    charges = Money(required=True)
    payments = Money(required=True)
    adjustments = Money(required=True)
    insurance_balance = Money(required=True)
    patient_balance = Money(required=True)
    total_balance = Money(required=True)


class LedgerLineOut(Schema):
    claim_line_id = fields.Integer(required=True)
    line_number = fields.Integer(required=True)
    procedure_code = fields.String(required=True)
    modifiers = fields.List(fields.String(), required=True)
    date_of_service = fields.Date(required=True)
    charge = Money(required=True)
    balance = fields.Nested(BalanceOut, required=True)


class ClaimLedgerOut(Schema):
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)
    entries = fields.List(fields.Nested(EntryOut), required=True)
    lines = fields.List(fields.Nested(LedgerLineOut), required=True)
    balance = fields.Nested(BalanceOut, required=True)


# --- routes ---------------------------------------------------------------------------------------------------------


def _audit(session: Session, object_type: str, object_id, action: str, detail: dict | None = None) -> None:
    audit.record_access(session, access(), object_type, object_id, action, detail)


def _meta(args: dict, total: int) -> dict:
    return {"page": args["page"], "per_page": args["per_page"], "total": total}


@blp.route("/remittances", methods=["GET"])
@policy("claims:read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, DepositPage)
def list_remittances(args, slug: str):
    """Deposits (the payment of each 835), newest payment first, with how many claims they carried and how many of
    those could not post."""
    session = db_session()
    rows, total = list_deposits(session, page=args["page"], per_page=args["per_page"])
    items = [deposit_row(r.Deposit, r.claims_count, r.exceptions_count) for r in rows]
    _audit(session, "remittance", None, "list", {"ids": [i["id"] for i in items]})
    session.commit()
    return {"items": items, "meta": _meta(args, total)}


@blp.route("/remittances/<id:deposit_id>", methods=["GET"])
@policy("claims:read")
@blp.response(200, DepositDetail)
def get_remittance(slug: str, deposit_id: int):
    """A deposit: the payment, its provider-level adjustments (PLB), each claim of the 835 with its outcome and the
    ledger entries it posted (group-reason codes in words), and the audited download route of its own 835."""
    session = db_session()
    detail = deposit_detail(session, deposit_id)
    deposit = detail["deposit"]
    base = f"/api/v1/practices/{access().slug}/claims"
    out = deposit_row(deposit, detail["claims_count"], detail["exceptions_count"])
    out["provider_adjustments"] = detail["provider_adjustments"]
    out["claims"] = [
        c
        | {
            "claim_url": f"{base}/{c['claim_id']}" if c["claim_id"] else None,
            "ledger_url": f"{base}/{c['claim_id']}/ledger" if c["claim_id"] else None,
        }
        for c in detail["claims"]
    ]
    out["download_url"] = download_url(deposit)
    claim_ids = sorted({c["claim_id"] for c in out["claims"] if c["claim_id"]})
    _audit(session, "remittance", deposit.id, "read", {"claim_ids": claim_ids})
    session.commit()
    return out


@blp.route("/posting-exceptions", methods=["GET"])
@policy("claims:read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, ExceptionPage)
def list_posting_exceptions(args, slug: str):
    """Remittance claims that could not post (no such claim, a line that matches nothing, ...), oldest first, with
    the reason and the deposit they came in."""
    session = db_session()
    rows, total = list_exceptions(session, page=args["page"], per_page=args["per_page"])
    base = f"/api/v1/practices/{access().slug}/remittances"
    items = [exception_row(r) | {"remittance_url": f"{base}/{r.RemittanceClaim.deposit_id}"} for r in rows]
    _audit(session, "remittance", None, "list", {"queue": "posting_exceptions", "ids": [i["id"] for i in items]})
    session.commit()
    return {"items": items, "meta": _meta(args, total)}


def denial_filters(args: dict) -> DenialFilters:
    return DenialFilters(
        reason=args.get("reason"),
        payer_id=args.get("payer_id"),
        min_age=args.get("min_age"),
        max_age=args.get("max_age"),
        min_amount=args.get("min_amount"),
        max_amount=args.get("max_amount"),
        sort=args.get("sort") or DEFAULT_DENIAL_SORT,
    )


@blp.route("/denials", methods=["GET"])
@policy("claims:read")
@blp.arguments(DenialArgs, location="query")
@blp.response(200, DenialPage)
def list_denials_view(args, slug: str):
    """The denial work queue: claim lines whose latest remittance denied them (denied claims, and zero-paid lines with
    CO/PI/OA reasons on otherwise paid claims), with the reasons (CARC) and remarks (RARC) in words, the payer and
    the age in days since the payment date; filter by reason, payer, age and amount, sort by age or amount. Also
    gives the queue grouped by reason and by payer."""
    session = db_session()
    found = list_denials(session, denial_filters(args), page=args["page"], per_page=args["per_page"])
    _audit(session, "claim", None, "list", {"queue": "denials", "ids": sorted({i["claim_id"] for i in found["items"]})})
    session.commit()
    return {
        "items": found["items"],
        "meta": _meta(args, found["total"]),
        "reasons": found["reasons"],
        "payers": found["payers"],
    }


@blp.route("/claims/<id:claim_id>/ledger", methods=["GET"])
@policy("claims:read")
@blp.response(200, ClaimLedgerOut)
def get_claim_ledger(slug: str, claim_id: int):
    """Every ledger entry of a claim (kind, amount, group-reason in words, source, when) with each line's balances
    and the claim's: charges, payments, adjustments, what insurance and the patient still owe."""
    session = db_session()
    found = claim_ledger(session, claim_id)
    _audit(session, "claim", claim_id, "read", {"view": "ledger"})
    session.commit()
    return {
        "claim_id": found["claim"].id,
        "status": found["claim"].status,
        "entries": found["entries"],
        "lines": found["lines"],
        "balance": found["balance"],
    }


class UnderpaymentOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    claim_line_id = fields.Integer(required=True)
    deposit_id = fields.Integer(required=True)
    remittance_url = fields.String(required=True)
    payer_id = fields.Integer(required=True)
    payer_name = fields.String(allow_none=True)
    procedure_code = fields.String(required=True)
    expected_allowed = Money(required=True, metadata={"description": "the contract's allowed amount"})
    paid = Money(required=True)
    patient_responsibility = Money(required=True)
    shortfall = Money(required=True, metadata={"description": "expected - (paid + patient responsibility)"})
    tolerance = Money(required=True)
    created_at = fields.DateTime(required=True)


class UnderpaymentPage(Schema):
    items = fields.List(fields.Nested(UnderpaymentOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class UnderpaymentArgs(PageArgs):
    payer_id = Id(load_default=None)
    claim_id = Id(load_default=None)


@blp.route("/underpayments", methods=["GET"])
@policy("claims:read")
@blp.arguments(UnderpaymentArgs, location="query")
@blp.response(200, UnderpaymentPage)
def list_underpayments(args, slug: str):
    """The underpayment queue (billing.underpayments.list_open): open lines whose paid + patient-responsibility amount
    falls short of the contract's allowed amount beyond the tolerance, largest shortfall first."""
    session = db_session()
    filters = [Underpayment.status == "open"]
    if args["payer_id"]:
        filters.append(Underpayment.payer_id == args["payer_id"])
    if args["claim_id"]:
        filters.append(Underpayment.claim_id == args["claim_id"])
    total = session.scalar(select(func.count()).select_from(Underpayment).where(*filters)) or 0
    rows = underpayments.list_open(
        session, payer_id=args["payer_id"], claim_id=args["claim_id"], limit=args["per_page"],
        offset=(args["page"] - 1) * args["per_page"],
    )  # fmt: skip
    payers = payers_by_id(session, (r.payer_id for r in rows))
    base = f"/api/v1/practices/{access().slug}/remittances"
    items = [
        {name: getattr(r, name) for name in UnderpaymentOut._declared_fields if hasattr(r, name)}
        | {"payer_name": payers[r.payer_id].name if r.payer_id in payers else None,
           "remittance_url": f"{base}/{r.deposit_id}"}
        for r in rows
    ]  # fmt: skip
    _audit(session, "claim", None, "list", {"queue": "underpayments", "ids": sorted({i["claim_id"] for i in items})})
    session.commit()
    return {"items": items, "meta": _meta(args, total)}


class ResolveIn(Schema):
    note = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "why the line leaves the queue (appealed and repaid, accepted, written off...)"},
    )


class ResolvedOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)
    note = fields.String(required=True)
    resolved_at = fields.DateTime(required=True)
    resolved_by_user_id = fields.Integer(allow_none=True)


@blp.route("/underpayments/<id:underpayment_id>/resolve", methods=["POST"])
@policy("claims:write")
@blp.arguments(ResolveIn)
@blp.response(200, ResolvedOut)
def resolve_underpayment(body, slug: str, underpayment_id: int):
    """Take a line off the underpayment queue with a note saying why. Resolving it again is a conflict (409)."""
    session = db_session()
    note = body["note"].strip()
    if not note:
        raise Invalid("say why the line leaves the queue", errors={"note": ["required"]})
    row = underpayments.resolve(session, underpayment_id, user_id=access().user_id, note=note)
    out = {name: getattr(row, name) for name in ResolvedOut._declared_fields}
    _audit(session, "claim", row.claim_id, "resolve", {"underpayment": row.id})
    session.commit()
    return out


# --- underpayment tolerance (per payer enrolment) ---------------------------------------------------------------------


class ToleranceIn(Schema):
    amount = Money(
        required=True,
        validate=validate.Range(min=Decimal("0"), max=Decimal("99999.99")),
        metadata={"description": "a shortfall up to this amount is not flagged"},
    )
    percent = fields.Decimal(
        required=True,
        as_string=True,
        places=3,
        validate=validate.Range(min=Decimal("0"), max=Decimal("100")),
        metadata={"description": "...or up to this percent of the allowed amount, whichever is larger (0 to 100)"},
    )


class ToleranceOut(ToleranceIn):
    payer_id = fields.Integer(required=True)
    payer_name = fields.String(allow_none=True)
    is_default = fields.Boolean(required=True, metadata={"description": "true: no tolerance set, the default applies"})


def _enrolled(session: Session, payer_id: int) -> None:
    if session.scalar(select(PracticePayer.id).where(PracticePayer.payer_id == payer_id)) is None:
        raise NotFound(f"payer {payer_id} is not enrolled in this practice")


def _tolerance_out(session: Session, payer_id: int) -> dict:
    tolerance = underpayments.tolerance_for(session, payer_id)
    payer = payers_by_id(session, [payer_id]).get(payer_id)
    return {
        "payer_id": payer_id,
        "payer_name": payer.name if payer else None,
        "amount": tolerance.amount,
        "percent": tolerance.percent,
        "is_default": session.get(UnderpaymentTolerance, payer_id) is None,
    }


@blp.route("/payers/<id:payer_id>/underpayment-tolerance", methods=["GET"])
@policy("claims:read")
@blp.response(200, ToleranceOut)
def get_underpayment_tolerance(slug: str, payer_id: int):
    """How far below the contract this payer may pay before a line is flagged: the larger of an amount and a percent
    of the allowed amount. Without a setting the default applies ($1.00 or 1 %)."""
    session = db_session()
    _enrolled(session, payer_id)
    return _tolerance_out(session, payer_id)


@blp.route("/payers/<id:payer_id>/underpayment-tolerance", methods=["PUT"])
@policy("setup:write")
@blp.arguments(ToleranceIn)
@blp.response(200, ToleranceOut)
def put_underpayment_tolerance(body, slug: str, payer_id: int):
    """Set the underpayment tolerance on the practice's enrolment with this payer (lines already flagged stay)."""
    session = db_session()
    _enrolled(session, payer_id)
    before = underpayments.tolerance_for(session, payer_id)
    underpayments.set_tolerance(session, payer_id, amount=body["amount"], percent=body["percent"])
    audit.record_access(
        session, access(), "payer_enrolment", payer_id, "update",
        {"underpayment_tolerance": {"from": [str(before.amount), str(before.percent)],
                                    "to": [str(body["amount"]), str(body["percent"])]}},
    )  # fmt: skip
    session.commit()
    return _tolerance_out(session, payer_id)


__all__ = ["blp", "claim_ledger", "deposit_detail", "list_denials", "list_deposits", "list_exceptions"]
