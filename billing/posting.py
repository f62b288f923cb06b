"""Posting an 835: one transaction set (one payment) into one practice, inside the caller's transaction.

The payment becomes a `Deposit` (to reconcile with the bank) with its PLB pairs; every CLP becomes a
`RemittanceClaim` saying what became of it. A claim is matched by CLP01 (our claim id), its lines by REF*6R (our
claim line id), falling back to procedure + modifiers + date + charge among the claim's lines not matched yet.
Whatever does not match is an exception (outcome `exception`, with the reason) and nothing of that claim is posted;
the rest of the set still posts.

Every ledger entry carries a posting key made of the set's content key and the segment positions, so a retried
posting adds nothing. The caller records the set once (`InboundFile`, keyed by the same content key) in the same
transaction, so the same set in another file, or the same file again, is recognised before anything is posted.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from billing import ledger, underpayments
from billing.claim_status import TRANSITIONS, transition
from billing.models import (
    Claim,
    ClaimLine,
    Deposit,
    InboundFile,
    LedgerEntry,
    ProviderAdjustmentEntry,
    RemittanceClaim,
)
from billing.money import ZERO, money, total
from billing.scrubber import scrub_claims
from billing.secondary import build_secondary_claims
from integrations.x12.remit835 import Adjustment, ClaimPayment, Remittance, ServicePayment

SOURCE = ledger.REMITTANCE_SOURCE
STATUS_SOURCE = "835"
# CAS group -> ledger kind; any other group (OA, PI, CR, OI...) is an other adjustment.
KIND_BY_GROUP = {"CO": "contractual_adjustment", "PR": "patient_responsibility"}


def adjustment_kind(group: str) -> str:
    return KIND_BY_GROUP.get(group.strip().upper(), "other_adjustment")


def record_inbound(session: Session, remittance: Remittance, storage_key: str) -> int | None:
    """Record the set as received; None when it was received before (the same ST..SE, in any envelope)."""
    return session.scalar(
        insert(InboundFile)
        .values(kind="835", content_sha256=remittance.content_key, storage_key=storage_key)
        .on_conflict_do_nothing(index_elements=["content_sha256"])
        .returning(InboundFile.id)
    )


def _claim_id(value: str | None) -> int | None:
    value = (value or "").strip()
    # Claim ids are bigint; anything longer cannot be one of ours.
    return int(value) if value.isdigit() and len(value) <= 18 else None


def _find_claim(session: Session, reference: str | None) -> Claim | None:
    claim_id = _claim_id(reference)
    if claim_id is None:
        return None
    return session.scalar(select(Claim).where(Claim.id == claim_id).with_for_update())


def _claim_for_reference(session: Session, reference: str | None) -> int | None:
    """A PLB reference naming one of our claims: its id, or the payer's claim number."""
    if not reference:
        return None
    claim_id = _claim_id(reference)
    if claim_id is not None and session.get(Claim, claim_id) is not None:
        return claim_id
    return session.scalar(select(Claim.id).where(Claim.payer_claim_number == reference).order_by(Claim.id).limit(1))


# --- matching -------------------------------------------------------------------------------------------------------


def _billed_code(svc: ServicePayment) -> tuple[str, list[str]]:
    """What we billed: SVC06 when the payer re-coded or bundled the line, else SVC01."""
    if svc.recoded:
        return svc.original_procedure_code, svc.original_modifiers
    return svc.procedure_code, svc.modifiers


def _matches(svc: ServicePayment, line: ClaimLine, claim_payment: ClaimPayment) -> bool:
    code, modifiers = _billed_code(svc)
    service = line.service_line
    if code != service.procedure_code or list(modifiers) != list(service.modifiers or []):
        return False
    when = svc.service_date or svc.service_period_start or claim_payment.statement_from
    if when is not None and when != service.date_of_service:
        return False
    return money(svc.charge) == money(line.charge)


def match_lines(claim: Claim, claim_payment: ClaimPayment) -> tuple[list[tuple[ServicePayment, ClaimLine]], str]:
    """Each SVC with its claim line, or ([], reason) when one of them matches nothing."""
    unmatched = {line.id: line for line in claim.lines}
    pairs: list[tuple[ServicePayment, ClaimLine]] = []
    # REF*6R first for every line, so a fallback never takes a line another SVC names explicitly.
    pending: list[ServicePayment] = []
    for svc in claim_payment.lines:
        line_id = _claim_id(svc.line_item_control_number)
        if line_id is not None and line_id in unmatched:
            pairs.append((svc, unmatched.pop(line_id)))
        else:
            pending.append(svc)
    for svc in pending:
        line = next((ln for ln in unmatched.values() if _matches(svc, ln, claim_payment)), None)
        if line is None:
            ref = f" (REF*6R {svc.line_item_control_number})" if svc.line_item_control_number else ""
            date = svc.service_date.isoformat() if svc.service_date else "no date"
            return [], (
                f"service line {svc.procedure}{ref}, {date}, charge {money(svc.charge)} at segment "
                f"{svc.segment_position} matches no line of claim {claim.id}"
            )
        pairs.append((svc, unmatched.pop(line.id)))
    pairs.sort(key=lambda pair: pair[0].segment_position)
    return pairs, ""


# --- posting --------------------------------------------------------------------------------------------------------


class _Poster:
    def __init__(self, session: Session, remittance: Remittance, deposit: Deposit) -> None:
        self.session = session
        self.remittance = remittance
        self.deposit = deposit
        self.key = remittance.content_key
        self.added = 0
        self.skipped = 0

    def _post(self, claim: Claim, line: ClaimLine, kind: str, amount: Decimal, key: str, **extra) -> None:
        new_id = ledger.post(
            self.session, line, kind, amount, source_type=SOURCE, source_id=f"deposit:{self.deposit.id}",
            posting_key=f"835:{self.key}:{key}", patient_id=claim.patient_id, **extra,
        )  # fmt: skip
        if new_id is None:
            self.skipped += 1
        else:
            self.added += 1

    def ensure_charge(self, claim: Claim, line: ClaimLine) -> None:
        ledger.post(
            self.session, line, "charge", line.charge, source_type="claim", source_id=f"claim:{claim.id}",
            posting_key=f"charge:{line.id}", patient_id=claim.patient_id,
        )  # fmt: skip

    def adjustments(self, claim: Claim, line: ClaimLine, adjustments: list[Adjustment], note: str = "") -> None:
        for index, adj in enumerate(adjustments):
            self._post(
                claim, line, adjustment_kind(adj.group), adj.amount, f"{adj.segment_position}:{index}",
                group_code=adj.group[:2], reason_code=adj.reason[:5], note=note,
            )  # fmt: skip

    def payment(self, claim: Claim, line: ClaimLine, amount: Decimal, position: int, note: str = "") -> None:
        if amount:
            self._post(claim, line, "insurance_payment", amount, f"{position}:paid", note=note)

    def reverse_previous(self, claim: Claim, position: int) -> list[int]:
        """Take back every remittance entry of the claim that is still in force; ids of the entries reversed."""
        reversal = aliased(LedgerEntry)
        entries = list(
            self.session.scalars(
                select(LedgerEntry)
                .where(
                    LedgerEntry.claim_id == claim.id,
                    LedgerEntry.source_type == SOURCE,
                    LedgerEntry.kind != "reversal",
                    ~exists().where(reversal.reverses_entry_id == LedgerEntry.id),
                )
                .order_by(LedgerEntry.id)
            )
        )
        for entry in entries:
            ledger.reverse(
                self.session, entry.id, source_type=SOURCE,
                note=f"835 reversal (CLP02 22) at segment {position}, trace {self.remittance.trace_number}",
                posting_key=f"835:{self.key}:{position}:reverse:{entry.id}",
            )  # fmt: skip
        return [entry.id for entry in entries]


def _status_after(session: Session, claim: Claim, payment: ClaimPayment) -> str:
    adjustments = [*payment.adjustments, *(adj for svc in payment.lines for adj in svc.adjustments)]
    groups = {adj.group for adj in adjustments}
    if payment.is_denied or (not payment.paid and "CO" in groups and "PR" not in groups):
        return "denied"
    return "paid" if ledger.claim_balance(session, claim.id).insurance == ZERO else "partially_paid"


def _move(session: Session, claim: Claim, to_status: str, reason: str) -> str:
    """Transition when the machine allows it; a note when it does not (the money is posted either way)."""
    if claim.status == to_status:
        return ""
    if to_status not in TRANSITIONS.get(claim.status, frozenset()):
        return f"claim {claim.id} stays {claim.status} (cannot become {to_status})"
    transition(session, claim, to_status, source=STATUS_SOURCE, reason=reason)
    return ""


def post_remittance(session: Session, remittance: Remittance, *, inbound_id: int, deposit_storage_key: str) -> dict:
    """Post one 835 transaction set into the practice of `session`. Nothing is committed here."""
    deposit = Deposit(
        inbound_file_id=inbound_id,
        payer_name=remittance.payer_name[:60],
        payer_id=remittance.payer_id[:80],
        payer_identifier=remittance.payer_identifier[:50],
        payment_method=remittance.payment_method[:10],
        handling_code=remittance.handling_code[:2],
        trace_number=remittance.trace_number[:50],
        payment_date=remittance.payment_date,
        amount=money(remittance.total_payment),
        payee_npi=remittance.payee_npi,
        payee_tax_id=remittance.payee_tax_id,
        storage_key=deposit_storage_key,
    )
    session.add(deposit)
    session.flush()
    for plb in remittance.provider_adjustments:
        session.add(
            ProviderAdjustmentEntry(
                deposit_id=deposit.id,
                reason_code=plb.reason[:5],
                reference=plb.reference[:50] if plb.reference else None,
                amount=money(plb.amount),
                fiscal_period_date=plb.fiscal_period_date,
                claim_id=_claim_for_reference(session, plb.reference),
            )
        )
    poster = _Poster(session, remittance, deposit)
    summary: dict = {
        "deposit_id": deposit.id,
        "trace_number": remittance.trace_number,
        "deposit_amount": str(money(remittance.total_payment)),
        "claims_posted": 0,
        "reversals": 0,
        "duplicates": 0,
        "exceptions": [],
        "notes": [],
        "provider_adjustments": len(remittance.provider_adjustments),
        "underpayments": 0,
    }
    posted_paid: list[Decimal] = []
    posted_claim_ids: list[int] = []
    for payment in remittance.claims:
        outcome, reason, claim_id = _post_claim(session, poster, payment)
        remittance_claim = RemittanceClaim(
            deposit_id=deposit.id,
            claim_id=claim_id,
            patient_control_number=payment.patient_control_number[:38],
            status_code=payment.status_code[:2],
            charge=money(payment.total_charge),
            paid=money(payment.paid),
            patient_responsibility=money(payment.patient_responsibility),
            payer_claim_number=payment.payer_claim_number[:50],
            segment_position=payment.segment_position,
            outcome=outcome,
            exception_reason=reason if outcome == "exception" else "",
        )
        session.add(remittance_claim)
        if outcome == "exception":
            summary["exceptions"].append(
                {"patient_control_number": payment.patient_control_number, "segment": payment.segment_position,
                 "reason": reason}
            )  # fmt: skip
            continue
        if reason:
            summary["notes"].append(reason)
        posted_paid.append(money(payment.paid))
        if outcome == "reversal":
            summary["reversals"] += 1
        elif outcome == "duplicate":
            summary["duplicates"] += 1
        else:
            summary["claims_posted"] += 1
            posted_claim_ids.append(claim_id)
            session.flush()
            flagged = underpayments.check_claim(
                session, session.get(Claim, claim_id), deposit.id, remittance_claim_id=remittance_claim.id
            )
            summary["underpayments"] += len(flagged)
    summary["total_paid"] = str(total(posted_paid))
    # Coordination of benefits: what the primary paid goes on to the next coverage, scrubbed and ready to submit.
    secondary = build_secondary_claims(session, posted_claim_ids, practice_id=None)
    scrub_claims(session, secondary, user_id=None)
    summary["secondary_claims"] = [claim.id for claim in secondary]
    session.flush()
    return summary


def _post_claim(session: Session, poster: _Poster, payment: ClaimPayment) -> tuple[str, str, int | None]:
    """(outcome, reason or note, claim id) for one CLP."""
    claim = _find_claim(session, payment.patient_control_number)
    if claim is None:
        return "exception", f"no claim with patient control number {payment.patient_control_number}", None
    if not claim.lines:
        return "exception", f"claim {claim.id} has no lines to post to", claim.id
    trace = poster.remittance.trace_number
    figures = (
        f"payer claim number {payment.payer_claim_number or '-'}, charge {money(payment.total_charge)}, "
        f"paid {money(payment.paid)}, patient responsibility {money(payment.patient_responsibility)}, trace {trace}"
    )
    if payment.is_reversal:
        reversed_ids = poster.reverse_previous(claim, payment.segment_position)
        if not reversed_ids:
            return "exception", f"reversal (CLP02 22) of claim {claim.id}, but no posted payment to take back", claim.id
        note = _move(session, claim, "accepted", f"835 reversal: {figures}")
        return "reversal", note, claim.id

    pairs, reason = match_lines(claim, payment)
    if reason:
        return "exception", reason, claim.id
    notes: list[str] = []
    first = claim.lines[0]
    before = poster.added
    for svc, line in pairs:
        poster.ensure_charge(claim, line)
        poster.payment(claim, line, svc.paid, svc.segment_position)
        poster.adjustments(claim, line, svc.adjustments)
    poster.ensure_charge(claim, first)
    if not payment.lines:
        poster.payment(
            claim, first, payment.paid, payment.segment_position,
            note="claim without service lines: claim payment posted to its first line",
        )  # fmt: skip
        notes.append(f"claim {claim.id}: no service lines in the 835; posted to line {first.line_number}")
    if payment.adjustments:
        poster.adjustments(
            claim, first, payment.adjustments, note="claim-level adjustment (CAS of the CLP) posted to the first line"
        )
        notes.append(f"claim {claim.id}: claim-level adjustments posted to line {first.line_number}")
    if not claim.payer_claim_number and payment.payer_claim_number:
        claim.payer_claim_number = payment.payer_claim_number[:50]
    if poster.added == before and (payment.lines or payment.adjustments or payment.paid):
        return "duplicate", "", claim.id
    moved = _move(session, claim, _status_after(session, claim, payment), f"835: {figures}")
    if moved:
        notes.append(moved)
    return "posted", "; ".join(notes), claim.id
