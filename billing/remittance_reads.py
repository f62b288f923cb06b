"""Remittance reads shared by the API and the portal: deposits (the 835 payments) with their claims, what each posted
and the provider-level adjustments, the posting-exception queue, the denial work queue and a claim's ledger with its
balances. Plain functions over a tenant session, so both front ends show the same figures.

Remark codes (RARC) are not columns of the ledger: they are read from the deposit's raw 835 in storage (the caller
passes its storage client), parsed once per process and kept in a small cache."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import String, and_, case, cast, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY, array, array_agg
from sqlalchemy.orm import Session

from billing import ledger, rules
from billing.adjustment_codes import describe_adjustment, describe_remark
from billing.models import (
    Claim,
    ClaimLine,
    Deposit,
    InboundFile,
    LedgerEntry,
    Patient,
    Payer,
    ProviderAdjustmentEntry,
    RemittanceClaim,
    ServiceLine,
)
from integrations.storage import Storage, StorageError
from integrations.x12.reader import X12Error
from integrations.x12.remit835 import CLAIM_STATUSES, PROVIDER_ADJUSTMENT_REASONS, parse_835
from medbill.errors import NotFound

log = logging.getLogger("medbill.remittances")

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


# --- remark codes, from the raw 835 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Remarks:
    claim: tuple[str, ...]  # MOA/MIA
    lines: dict[int, tuple[str, ...]]  # our claim line id (REF*6R) -> LQ*HE


_REMARK_CACHE: OrderedDict[tuple[str, str], dict[int, _Remarks]] = OrderedDict()
_REMARK_CACHE_SIZE = 32
_REMARK_LOCK = threading.Lock()


def _remarks_of_set(storage: Storage, storage_key: str, content_sha256: str) -> dict[int, _Remarks]:
    """CLP segment position -> its remark codes, for the transaction set `content_sha256` of the stored file."""
    cache_key = (storage_key, content_sha256)
    with _REMARK_LOCK:
        if cache_key in _REMARK_CACHE:
            _REMARK_CACHE.move_to_end(cache_key)
            return _REMARK_CACHE[cache_key]
    found: dict[int, _Remarks] = {}
    try:
        data = storage.get(storage_key)
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


def remark_codes(
    storage: Storage, storage_key: str, content_sha256: str, clp_position: int, claim_line_id: int | None
) -> list[str]:
    """The remark codes of one claim of a deposit: of one of its lines (or of all of them when `claim_line_id` is None)
    first, then the claim's own (MOA/MIA)."""
    if not storage_key:
        return []
    remarks = _remarks_of_set(storage, storage_key, content_sha256).get(clp_position)
    if remarks is None:
        return []
    if claim_line_id is None:  # the whole claim: every line's codes
        codes = [code for line_codes in remarks.lines.values() for code in line_codes]
    else:
        codes = list(remarks.lines.get(claim_line_id, ()))
    return list(dict.fromkeys([*codes, *remarks.claim]))


# --- deposits, exceptions, denials, a claim's ledger ----------------------------------------------------------------


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


def deposit_detail(session: Session, storage: Storage, deposit_id: int) -> dict:
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
                    for c in remark_codes(storage, deposit.storage_key, content_sha, rc.segment_position, None)
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


def list_denials(session: Session, storage: Storage, filters: DenialFilters, *, page: int, per_page: int) -> dict:
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
        remarks = remark_codes(storage, r.storage_key, r.content_sha256, r.segment_position, r.claim_line_id)
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
