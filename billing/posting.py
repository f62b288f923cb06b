"""Posting an 835: one transaction set (one payment) into one practice, inside the caller's transaction.

The payment becomes a `Deposit` (to reconcile with the bank) with its PLB pairs; every CLP becomes a
`RemittanceClaim` saying what became of it. A claim is matched by CLP01 (our claim id), its lines by REF*6R (our
claim line id), falling back to procedure + modifiers + date + charge among the claim's lines not matched yet.
Whatever does not match is an exception (outcome `exception`, with the reason) and nothing of that claim is posted;
the rest of the set still posts.

Entries go on the account of each line's service (billing.ledger): the service is charged once, whichever claim
bills it. Claim statuses handled beyond "processed": denied (4); forwarded (19/20/21: the payer sent the claim on to
the crossover payer of NM1*TT, recorded on the claim; the patient's share stays with insurance and no secondary
claim of ours goes out); split claims (several CLPs of one claim in a set, each line matched once); a claim paid on
two ERAs (lines the first ERA adjudicated identically are not posted again; a different adjudication of a line needs a
reversal first); reversals (22: only when their amounts mirror what was posted, which they take back, resolving the
underpayments flagged on it). A claim adjudicated as secondary or tertiary (its own coverage's priority, or CLP02
2/3/20/21) only reduces what is still pending with insurance on each line: the payer's adjustments that repeat the
prior payers' adjudication (OA-23, a repeated CO-45) are not posted again.

Every ledger entry carries a posting key made of the set's content key and the segment positions, so a retried
posting adds nothing. The caller records the set once (`InboundFile`, keyed by the same content key) in the same
transaction, so the same set in another file, or the same file again, is recognised before anything is posted.

Speed: the set's claims and lines are loaded in a few queries, every entry of the set goes in batched
INSERT ... ON CONFLICT DO NOTHING RETURNING statements, and the balances that decide claim statuses come from one
aggregate query for the whole set.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased, lazyload

from billing import ledger, rules, underpayments
from billing.claim_status import TRANSITIONS, transition
from billing.models import (
    Claim,
    ClaimLine,
    Coverage,
    Deposit,
    InboundFile,
    LedgerEntry,
    ProviderAdjustmentEntry,
    RemittanceClaim,
    ServiceLine,
    Underpayment,
)
from billing.money import ZERO, money, total
from billing.scrubber import scrub_claims
from billing.secondary import build_secondary_claims, transfer_rows_for
from integrations.x12.remit835 import Adjustment, ClaimPayment, Remittance, ServicePayment

SOURCE = ledger.REMITTANCE_SOURCE
STATUS_SOURCE = "835"
# CAS group -> ledger kind; any other group (OA, PI, CR, OI...) is an other adjustment.
KIND_BY_GROUP = {"CO": "contractual_adjustment", "PR": "patient_responsibility"}
FORWARDED = frozenset({"19", "20", "21"})
# Processed as secondary / tertiary (forwarded or not): the payer adjudicated what the earlier payers left.
AS_LATER_PAYER = frozenset({"2", "3", "20", "21"})
PRIOR_PAYER_REASON = "23"  # CARC 23: the impact of prior payer(s) adjudication
CHUNK = 5000  # ids per IN (...) list


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
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None  # not "²"


def _claim_for_reference(session: Session, reference: str | None) -> int | None:
    """A PLB reference naming one of our claims: its id, or the payer's claim number."""
    if not reference:
        return None
    claim_id = _claim_id(reference)
    if claim_id is not None and session.get(Claim, claim_id) is not None:
        return claim_id
    return session.scalar(select(Claim.id).where(Claim.payer_claim_number == reference).order_by(Claim.id).limit(1))


def _chunks(values: list, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- matching -------------------------------------------------------------------------------------------------------


def _billed_code(svc: ServicePayment) -> tuple[str, list[str]]:
    """What we billed: SVC06 when the payer re-coded or bundled the line, else SVC01."""
    if svc.recoded:
        return svc.original_procedure_code, svc.original_modifiers
    return svc.procedure_code, svc.modifiers


def _matches(svc: ServicePayment, line: ClaimLine, claim_payment: ClaimPayment, sign: int = 1) -> bool:
    code, modifiers = _billed_code(svc)
    service = line.service_line
    if code != service.procedure_code or list(modifiers) != list(service.modifiers or []):
        return False
    when = svc.service_date or svc.service_period_start or claim_payment.statement_from
    if when is not None and when != service.date_of_service:
        return False
    return money(svc.charge) * sign == money(line.charge)


def match_lines(
    claim: Claim, claim_payment: ClaimPayment, taken: dict[int, int] | None = None, lines: list | None = None
) -> tuple[list[tuple[ServicePayment, ClaimLine]], str]:
    """Each SVC with its claim line, or ([], reason) when one of them matches nothing. `taken`: lines another CLP of
    the same set already matched (claim line id -> its segment), which a split claim's CLP may not match again.
    `lines`: the claim's lines when the caller loaded them (else `claim.lines`)."""
    taken = taken or {}
    sign = -1 if claim_payment.is_reversal else 1  # a reversal's charges are negated
    unmatched = {line.id: line for line in (claim.lines if lines is None else lines) if line.id not in taken}
    pairs: list[tuple[ServicePayment, ClaimLine]] = []
    # REF*6R first for every line, so a fallback never takes a line another SVC names explicitly.
    pending: list[ServicePayment] = []
    for svc in claim_payment.lines:
        line_id = _claim_id(svc.line_item_control_number)
        if line_id is not None and line_id in unmatched:
            pairs.append((svc, unmatched.pop(line_id)))
        elif line_id is not None and line_id in taken:
            return [], (
                f"service line at segment {svc.segment_position} (REF*6R {line_id}) was already posted by the claim "
                f"at segment {taken[line_id]} of this remittance"
            )
        else:
            pending.append(svc)
    for svc in pending:
        line = next((ln for ln in unmatched.values() if _matches(svc, ln, claim_payment, sign)), None)
        if line is None:
            ref = f" (REF*6R {svc.line_item_control_number})" if svc.line_item_control_number else ""
            date = svc.service_date.isoformat() if svc.service_date else "no date"
            return [], (
                f"service line {svc.procedure}{ref}, {date}, charge {money(svc.charge)} at segment "
                f"{svc.segment_position} matches no line of claim {claim.id}"
                + (" not already posted by another claim of this remittance" if taken else "")
            )
        pairs.append((svc, unmatched.pop(line.id)))
    pairs.sort(key=lambda pair: pair[0].segment_position)
    return pairs, ""


# --- what the set finds in the database -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Service:
    """What matching and underpayments read of a service line, loaded without ORM objects (posting volume)."""

    id: int
    procedure_code: str
    modifiers: list[str]
    units: Decimal
    charge: Decimal
    date_of_service: object


@dataclass(frozen=True, slots=True)
class _Line:
    id: int
    claim_id: int
    service_line_id: int
    line_number: int
    charge: Decimal
    service_line: _Service


@dataclass
class _ClaimState:
    claim: Claim
    priority: int
    lines: list[_Line] = field(default_factory=list)
    # Remittance entries of the claim in force (not reversed), posted before this set, by claim line.
    in_force: dict[int, list] = field(default_factory=lambda: defaultdict(list))
    taken: dict[int, int] = field(default_factory=dict)  # claim line id -> segment of the CLP of this set


def _load_claims(session: Session, remittance: Remittance) -> tuple[dict[int, _ClaimState], dict[int, str]]:
    """The set's claims (locked, in id order so concurrent postings never deadlock), their lines and priority, what
    is in force on them, and the payer of each deposit that posted it."""
    ids = sorted({cid for cid in (_claim_id(c.patient_control_number) for c in remittance.claims) if cid is not None})
    states: dict[int, _ClaimState] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Claim, Coverage.priority)
            .join(Coverage, Coverage.id == Claim.coverage_id)
            .where(Claim.id.in_(chunk))
            .order_by(Claim.id)
            .with_for_update(of=Claim)
            .options(lazyload(Claim.lines))  # read below as plain rows: ORM lines cost more than the posting
        ).all()
        for claim, priority in rows:
            states[claim.id] = _ClaimState(claim, priority)
        lines = session.execute(
            select(
                ClaimLine.id, ClaimLine.claim_id, ClaimLine.service_line_id, ClaimLine.line_number, ClaimLine.charge,
                ServiceLine.procedure_code, ServiceLine.modifiers, ServiceLine.units, ServiceLine.charge,
                ServiceLine.date_of_service,
            )
            .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
            .where(ClaimLine.claim_id.in_(chunk))
            .order_by(ClaimLine.claim_id, ClaimLine.line_number)
        ).all()  # fmt: skip
        for line_id, claim_id, sl_id, number, charge, code, modifiers, units, sl_charge, dos in lines:
            service = _Service(sl_id, code, list(modifiers or []), units, sl_charge, dos)
            states[claim_id].lines.append(_Line(line_id, claim_id, sl_id, number, charge, service))
    return states, (_load_in_force(session, states) if states else {})


def _load_in_force(session: Session, states: dict[int, _ClaimState]) -> dict[int, str]:
    reversal = aliased(LedgerEntry)
    table = LedgerEntry.__table__
    deposit_ids: set[int] = set()
    rows = []
    for chunk in _chunks(list(states)):
        rows += session.execute(
            select(table)
            .where(
                table.c.claim_id.in_(chunk),
                table.c.source_type == SOURCE,
                table.c.kind != "reversal",
                ~select(reversal.id).where(reversal.reverses_entry_id == table.c.id).exists(),
            )
            .order_by(table.c.id)
        ).all()
    for row in rows:
        states[row.claim_id].in_force[row.claim_line_id].append(row)
        deposit_ids.add(_deposit_of(row.source_id))
    deposit_ids.discard(None)
    if not deposit_ids:
        return {}
    return dict(session.execute(select(Deposit.id, Deposit.payer_id).where(Deposit.id.in_(deposit_ids))).all())


def _deposit_of(source_id: str) -> int | None:
    prefix, _, value = source_id.partition(":")
    return int(value) if prefix == "deposit" and value.isdigit() else None


# --- posting --------------------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    payment: ClaimPayment
    outcome: str  # posted, exception, reversal, duplicate
    reason: str = ""
    claim_id: int | None = None
    keys: list[str] = field(default_factory=list)  # posting keys of this CLP's entries (charges excluded)
    reversed_deposits: set[int] = field(default_factory=set)
    later_payer: bool = False
    notes: list[str] = field(default_factory=list)


class _Poster:
    def __init__(self, session: Session, remittance: Remittance, deposit: Deposit, payers: dict[int, str]) -> None:
        self.session = session
        self.remittance = remittance
        self.deposit = deposit
        self.key = remittance.content_key
        self.rows: list[dict] = []
        self.deferred: list[dict] = []  # posted after the statuses are decided (crossover transfers)
        self.charged: set[int] = set()  # service lines whose charge this set ensures
        self.pending: dict[int, Decimal] = {}  # service line -> insurance part, for later-payer postings
        self.payers = payers  # deposit id -> payer id, of the entries in force

    def _row(self, claim: Claim, line: ClaimLine, kind: str, amount: Decimal, key: str, **extra) -> str:
        posting_key = f"835:{self.key}:{key}"
        self.rows.append(
            ledger.entry_row(
                service_line_id=line.service_line_id,
                claim_line_id=line.id,
                claim_id=claim.id,
                patient_id=claim.patient_id,
                kind=kind,
                amount=amount,
                source_type=SOURCE,
                source_id=f"deposit:{self.deposit.id}",
                posting_key=posting_key,
                **extra,
            )  # fmt: skip
        )
        return posting_key

    def ensure_charge(self, claim: Claim, line: ClaimLine) -> None:
        """The service's one charge (posted at submission; here for claims never submitted through us)."""
        if line.service_line_id in self.charged:
            return
        self.charged.add(line.service_line_id)
        self.rows.append(
            ledger.entry_row(
                service_line_id=line.service_line_id,
                claim_line_id=line.id,
                claim_id=claim.id,
                patient_id=claim.patient_id,
                kind="charge",
                amount=line.service_line.charge,
                source_type="claim",
                source_id=f"claim:{claim.id}",
                posting_key=ledger.charge_key(line.service_line_id),
            )  # fmt: skip
        )

    def load_pending(self, lines: list[ClaimLine]) -> None:
        """What insurance still owes on these services, before this set (a charge not posted yet counts)."""
        wanted = [ln.service_line_id for ln in lines if ln.service_line_id not in self.pending]
        if not wanted:
            return
        table = LedgerEntry.__table__
        sums = dict(
            self.session.execute(
                select(table.c.service_line_id, func.sum(table.c.insurance_delta))
                .where(table.c.service_line_id.in_(wanted))
                .group_by(table.c.service_line_id)
            ).all()
        )
        charged = set(
            self.session.scalars(
                select(table.c.service_line_id).where(table.c.posting_key.in_([ledger.charge_key(sl) for sl in wanted]))
            )
        )
        for ln in lines:
            sl = ln.service_line_id
            if sl in self.pending:
                continue
            self.pending[sl] = money(sums.get(sl) or ZERO)
            if sl not in charged:
                self.pending[sl] += money(ln.service_line.charge)

    def adjudication(
        self, out: _Outcome, claim: Claim, line: ClaimLine, paid: Decimal, adjustments: list[Adjustment],
        position: int, note: str = "",
    ) -> None:  # fmt: skip
        """One line's payment and adjustments. A later payer's adjustments are posted only as far as insurance still
        has something pending on the line after its payment and the patient's share."""
        if paid:
            out.keys.append(self._row(claim, line, "insurance_payment", paid, f"{position}:paid", note=note))
        indexed = list(enumerate(adjustments))
        if not out.later_payer:
            for index, adj in indexed:
                out.keys.append(self._adjustment(claim, line, adj, adj.amount, f"{adj.segment_position}:{index}", note))
            return
        sl = line.service_line_id
        pending = self.pending[sl] - money(paid)
        for index, adj in indexed:
            if adj.group.strip().upper() == "PR":
                out.keys.append(self._adjustment(claim, line, adj, adj.amount, f"{adj.segment_position}:{index}", note))
                pending -= money(adj.amount)
        # The payer's own adjustments first; what repeats the prior payers' adjudication (CARC 23) last.
        others = [(i, a) for i, a in indexed if a.group.strip().upper() != "PR"]
        others.sort(key=lambda pair: pair[1].reason == PRIOR_PAYER_REASON)
        for index, adj in others:
            amount = money(adj.amount)
            if amount > 0:
                amount = min(amount, max(pending, ZERO))
            if amount != money(adj.amount):
                out.notes.append(
                    f"claim {claim.id} line {line.line_number}: {adj.group}-{adj.reason} {money(adj.amount)} posted "
                    f"as {amount}: the rest is the prior payers' adjudication, already on the account"
                )
            if amount and not paid and adj.reason not in (PRIOR_PAYER_REASON, *underpayments.CONTRACTUAL_REASONS):
                # The later payer denies the line: what it was billed for is the patient's again, not a write-off.
                out.keys.append(
                    self._row(
                        claim,
                        line,
                        "transfer_to_secondary",
                        -amount,
                        f"{adj.segment_position}:{index}",
                        group_code=adj.group[:2],
                        reason_code=adj.reason[:5],
                        note=f"denied by this payer ({adj.group}-{adj.reason}): the share returns to the patient",
                    )  # fmt: skip
                )
                pending -= amount
            elif amount:
                why = f"{note}; " if note else ""
                short = amount != money(adj.amount)
                key = f"{adj.segment_position}:{index}"
                out.keys.append(
                    self._adjustment(
                        claim,
                        line,
                        adj,
                        amount,
                        key,
                        f"{why}of {money(adj.amount)} adjudicated by this payer" if short else note,
                    )  # fmt: skip
                )
                pending -= amount
        self.pending[sl] = pending

    def _adjustment(self, claim, line, adj: Adjustment, amount: Decimal, key: str, note: str) -> str:
        return self._row(
            claim, line, adjustment_kind(adj.group), amount, key, group_code=adj.group[:2], reason_code=adj.reason[:5],
            note=note,
        )  # fmt: skip


def post_remittance(session: Session, remittance: Remittance, *, inbound_id: int, deposit_storage_key: str) -> dict:
    """Post one 835 transaction set into the practice of `session`. Nothing is committed here. Everything it posts
    (secondary transfers included) counts on the payment's date (BPR16), or today when that is still ahead (an EFT
    dated for the coming days)."""
    payment_date = remittance.payment_date
    day = payment_date if payment_date is not None and payment_date <= date.today() else None
    previous = ledger.set_accounting_date(session, day)
    try:
        return _post_remittance(session, remittance, inbound_id=inbound_id, deposit_storage_key=deposit_storage_key)
    finally:
        ledger.set_accounting_date(session, previous)


def _post_remittance(session: Session, remittance: Remittance, *, inbound_id: int, deposit_storage_key: str) -> dict:
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
    states, payers = _load_claims(session, remittance)
    poster = _Poster(session, remittance, deposit, payers)
    outcomes = [_post_claim(session, poster, states, payment) for payment in remittance.claims]
    added = ledger.post_rows(session, poster.rows)
    for out in outcomes:
        if out.outcome in ("posted", "reversal") and out.keys and not any(key in added for key in out.keys):
            out.outcome, out.reason = "duplicate", ""

    summary: dict = {
        "deposit_id": deposit.id,
        "trace_number": remittance.trace_number,
        "deposit_amount": str(money(remittance.total_payment)),
        "claims_posted": 0,
        "reversals": 0,
        "duplicates": 0,
        "exceptions": [],
        "notes": [],
        "crossovers": [],
        "provider_adjustments": len(remittance.provider_adjustments),
        "underpayments": 0,
    }
    statuses = _statuses_after(session, states, outcomes)
    remittance_claims: list[dict] = []
    posted_paid: list[Decimal] = []
    for out in outcomes:
        payment = out.payment
        remittance_claims.append(
            {
                "deposit_id": deposit.id,
                "claim_id": out.claim_id,
                "patient_control_number": payment.patient_control_number[:38],
                "status_code": payment.status_code[:2],
                "charge": money(payment.total_charge),
                "paid": money(payment.paid),
                "patient_responsibility": money(payment.patient_responsibility),
                "payer_claim_number": payment.payer_claim_number[:50],
                "segment_position": payment.segment_position,
                "outcome": out.outcome,
                "exception_reason": out.reason if out.outcome == "exception" else "",
            }
        )
        if out.outcome == "exception":
            summary["exceptions"].append(
                {"patient_control_number": payment.patient_control_number, "segment": payment.segment_position,
                 "reason": out.reason}
            )  # fmt: skip
            continue
        posted_paid.append(money(payment.paid))
        notes = [*out.notes]
        if out.reason:
            notes.append(out.reason)
        claim = states[out.claim_id].claim
        figures = _figures(payment, remittance.trace_number)
        if out.outcome == "reversal":
            summary["reversals"] += 1
            notes.append(_move(session, claim, "accepted", f"835 reversal: {figures}"))
        elif out.outcome == "duplicate":
            summary["duplicates"] += 1
        else:
            summary["claims_posted"] += 1
            notes.append(_move(session, claim, statuses[claim.id], f"835: {figures}"))
        summary["notes"] += [note for note in notes if note]
    session.flush()
    rc_ids = _insert_remittance_claims(session, remittance_claims)

    # Forwarded claims: the crossover payer gets the claim from this payer; the patient's share stays with insurance.
    for out in outcomes:
        if out.outcome == "posted" and out.payment.status_code in FORWARDED:
            _record_crossover(poster, states[out.claim_id], out, summary)
    ledger.post_rows(session, poster.deferred)

    checked = [
        (states[out.claim_id].claim, rc_ids[out.payment.segment_position], states[out.claim_id].lines)
        for out in outcomes
        if out.outcome == "posted" and not out.later_payer
    ]
    summary["underpayments"] = len(underpayments.check_claims(session, checked, deposit.id))
    _resolve_reversed_underpayments(session, outcomes, remittance)
    summary["total_paid"] = str(total(posted_paid))

    # Coordination of benefits: what the earlier payer left goes on to the next coverage. Claims already billed to the
    # next payer get their transfer brought up to date (a reversal, a replacement claim); the others get a claim.
    moved = [states[out.claim_id] for out in outcomes if out.outcome in ("posted", "reversal")]
    _sync_existing_transfers(session, moved)
    forwarded = {out.claim_id for out in outcomes if out.payment.status_code in FORWARDED}
    candidates = sorted(
        {st.claim.id for st in moved if st.claim.id not in forwarded and st.claim.crossover_payer_name is None}
    )
    secondary = build_secondary_claims(session, candidates, practice_id=None)
    scrub_claims(session, secondary, user_id=None)
    summary["secondary_claims"] = [claim.id for claim in secondary]
    session.flush()
    return summary


def _insert_remittance_claims(session: Session, rows: list[dict]) -> dict[int, int]:
    """The set's RemittanceClaim rows; segment position -> id. A large set goes through COPY (see ledger.post_rows)."""
    table = RemittanceClaim.__table__
    if len(rows) < ledger.COPY_FROM:
        if not rows:
            return {}
        result = session.execute(insert(table).values(rows).returning(table.c.segment_position, table.c.id))
        return dict(result.all())
    columns = list(rows[0])
    connection = session.connection()
    schema = connection.get_execution_options().get("schema_translate_map", {}).get(None)
    target = f'"{schema}".{table.name}' if schema else table.name
    types = ", ".join(f"{c} {table.c[c].type.compile(dialect=connection.dialect)}" for c in columns)
    names = ", ".join(columns)
    stage = "pg_temp.medbill_remittance_claim_stage"
    with connection.connection.driver_connection.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (ord integer, {types}) ON COMMIT DELETE ROWS")
        cur.execute(f"TRUNCATE {stage}")
        with cur.copy(f"COPY {stage} (ord, {names}) FROM STDIN") as copy:
            for index, row in enumerate(rows):
                copy.write_row((index, *(row[c] for c in columns)))
        cur.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage} ORDER BY ord RETURNING segment_position, id"
        )
        ids = dict(cur.fetchall())
        cur.execute(f"TRUNCATE {stage}")
    return ids


def _figures(payment: ClaimPayment, trace: str) -> str:
    return (
        f"payer claim number {payment.payer_claim_number or '-'}, charge {money(payment.total_charge)}, "
        f"paid {money(payment.paid)}, patient responsibility {money(payment.patient_responsibility)}, trace {trace}"
    )


def _move(session: Session, claim: Claim, to_status: str, reason: str) -> str:
    """Transition when the machine allows it; a note when it does not (the money is posted either way)."""
    if claim.status == to_status:
        return ""
    if to_status not in TRANSITIONS.get(claim.status, frozenset()):
        return f"claim {claim.id} stays {claim.status} (cannot become {to_status})"
    transition(session, claim, to_status, source=STATUS_SOURCE, reason=reason)
    return ""


def _post_claim(session: Session, poster: _Poster, states: dict[int, _ClaimState], payment: ClaimPayment) -> _Outcome:
    """Rows for one CLP (added to the poster), and what became of it."""
    claim_id = _claim_id(payment.patient_control_number)
    state = states.get(claim_id) if claim_id is not None else None
    if state is None:
        return _Outcome(payment, "exception", f"no claim with patient control number {payment.patient_control_number}")
    claim = state.claim
    out = _Outcome(payment, "posted", claim_id=claim.id)
    if not state.lines:
        out.outcome, out.reason = "exception", f"claim {claim.id} has no lines to post to"
        return out
    if payment.is_reversal:
        return _reverse(poster, state, payment, out)
    out.later_payer = state.priority > 1 or payment.status_code in AS_LATER_PAYER
    pairs, reason = match_lines(claim, payment, state.taken, state.lines)
    if reason:
        out.outcome, out.reason = "exception", reason
        return out
    # A line this payer adjudicated before (an earlier ERA) posts again only as a reversal and a new adjudication.
    fresh: list[tuple[ServicePayment, ClaimLine]] = []
    for svc, line in pairs:
        earlier = [e for e in state.in_force.get(line.id, []) if _same_payer(poster, e)]
        if not earlier:
            fresh.append((svc, line))
            continue
        if _same_adjudication(earlier, svc):
            out.notes.append(
                f"claim {claim.id} line {line.line_number}: already posted identically from deposit "
                f"{_deposit_of(earlier[0].source_id)}; not posted again"
            )
            continue
        out.outcome = "exception"
        out.reason = (
            f"line {line.line_number} of claim {claim.id} (segment {svc.segment_position}) was already adjudicated "
            f"by this payer (deposit {_deposit_of(earlier[0].source_id)}, paid "
            f"{total(e.amount for e in earlier if e.kind == 'insurance_payment')}); a new adjudication needs a "
            f"reversal (CLP02 22) first"
        )
        return out
    if pairs and not fresh and not payment.adjustments:
        out.outcome = "duplicate"
        return out
    for _svc, line in pairs:
        state.taken[line.id] = payment.segment_position
    first = state.lines[0]
    lines = [line for _svc, line in fresh] + [first]
    for line in lines:
        poster.ensure_charge(claim, line)
    if out.later_payer:
        poster.load_pending(lines)
    for svc, line in fresh:
        poster.adjudication(out, claim, line, svc.paid, svc.adjustments, svc.segment_position)
    if not payment.lines:
        poster.adjudication(
            out, claim, first, payment.paid, [], payment.segment_position,
            note="claim without service lines: claim payment posted to its first line",
        )  # fmt: skip
        out.notes.append(f"claim {claim.id}: no service lines in the 835; posted to line {first.line_number}")
    if payment.adjustments:
        poster.adjudication(
            out, claim, first, ZERO, payment.adjustments, payment.segment_position,
            note="claim-level adjustment (CAS of the CLP) posted to the first line",
        )  # fmt: skip
        out.notes.append(f"claim {claim.id}: claim-level adjustments posted to line {first.line_number}")
    if not claim.payer_claim_number and payment.payer_claim_number:
        claim.payer_claim_number = payment.payer_claim_number[:50]
    if not out.keys and (payment.lines or payment.adjustments or payment.paid):
        out.outcome = "duplicate"
    return out


def _same_payer(poster: _Poster, entry) -> bool:
    deposit_id = _deposit_of(entry.source_id)
    payer = poster.payers.get(deposit_id) if deposit_id is not None else None
    return payer is None or payer == poster.deposit.payer_id


def _same_adjudication(earlier: list, svc: ServicePayment) -> bool:
    posted_paid = total(e.amount for e in earlier if e.kind == "insurance_payment")
    posted = sorted((e.group_code, e.reason_code, money(e.amount)) for e in earlier if e.group_code)
    remitted = sorted((a.group[:2], a.reason[:5], money(a.amount)) for a in svc.adjustments)
    return posted_paid == money(svc.paid) and posted == remitted


def _reverse(poster: _Poster, state: _ClaimState, payment: ClaimPayment, out: _Outcome) -> _Outcome:
    """Take back what this payer posted on the claim, when the reversal's amounts mirror it."""
    claim = state.claim
    entries = [e for line_entries in state.in_force.values() for e in line_entries if _same_payer(poster, e)]
    if not entries:
        out.outcome = "exception"
        out.reason = f"reversal (CLP02 22) of claim {claim.id}, but no posted payment to take back"
        return out
    mismatch = _mirror_mismatch(entries, payment, exact=state.priority == 1)
    if mismatch:
        out.outcome = "exception"
        out.reason = f"reversal (CLP02 22) of claim {claim.id} does not mirror what was posted: {mismatch}"
        return out
    note = f"835 reversal (CLP02 22) at segment {payment.segment_position}, trace {poster.remittance.trace_number}"
    for entry in sorted(entries, key=lambda e: e.id):
        key = f"835:{poster.key}:{payment.segment_position}:reverse:{entry.id}"
        poster.rows.append(
            ledger.reversal_row(
                entry, source_type=SOURCE, source_id=f"deposit:{poster.deposit.id}", posting_key=key, note=note
            )
        )
        out.keys.append(key)
        out.reversed_deposits.add(_deposit_of(entry.source_id))
    out.reversed_deposits.discard(None)
    for line_id in list(state.in_force):
        state.in_force[line_id] = [e for e in state.in_force[line_id] if not _same_payer(poster, e)]
    out.outcome = "reversal"
    return out


def _mirror_mismatch(entries: list, payment: ClaimPayment, *, exact: bool) -> str:
    """What differs between the reversal's negated amounts and the entries in force ('' when they mirror). A later
    payer's adjustments may have been posted short of their CAS amount (the part repeating the prior payers'
    adjudication): for those, the reversal must take back at least what was posted; payment and PR always match."""
    posted_paid = total(e.amount for e in entries if e.kind == "insurance_payment")
    problems = []
    if money(-payment.paid) != posted_paid:
        problems.append(f"CLP04 {money(payment.paid)} against {posted_paid} paid")
    posted: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for e in entries:
        if e.group_code:
            posted[f"{e.group_code}-{e.reason_code}"] += e.amount
    reversed_: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for adj in [*payment.adjustments, *(a for svc in payment.lines for a in svc.adjustments)]:
        reversed_[f"{adj.group[:2]}-{adj.reason[:5]}"] -= money(adj.amount)
    for code in sorted(set(posted) | set(reversed_)):
        was, back = money(posted.get(code, ZERO)), money(reversed_.get(code, ZERO))
        if was == back or (not exact and not code.startswith("PR") and back >= was >= 0):
            continue
        problems.append(f"{code} {-back} against {was} posted")
    return "; ".join(problems)


def _statuses_after(session: Session, states: dict[int, _ClaimState], outcomes: list[_Outcome]) -> dict[int, str]:
    """The status each posted claim takes: denied, paid (nothing left pending with its payer or an earlier one on its
    services) or partially paid. One query for the set."""
    posted: dict[int, list[_Outcome]] = defaultdict(list)
    for out in outcomes:
        if out.outcome == "posted":
            posted[out.claim_id].append(out)
    if not posted:
        return {}
    pending = _pending_by_claim(session, list(posted))
    result = {}
    for claim_id, outs in posted.items():
        result[claim_id] = rules.claim_status_after((_denied(out.payment) for out in outs), pending.get(claim_id, ZERO))
    return result


def _denied(payment: ClaimPayment) -> bool:
    return rules.claim_denied(payment.status_code, payment.total_charge, payment.paid, payment.patient_responsibility)


def _pending_by_claim(session: Session, claim_ids: list[int]) -> dict[int, Decimal]:
    """Per claim: what insurance still owes on its services counting only the claims of its payer's priority or an
    earlier one (what a later payer was billed for is that payer's)."""
    own = aliased(Coverage)
    billed_by = aliased(Claim)
    billed_cov = aliased(Coverage)
    line = aliased(ClaimLine)
    entry = LedgerEntry.__table__
    out: dict[int, Decimal] = {}
    for chunk in _chunks(claim_ids):
        rows = session.execute(
            select(Claim.id, func.coalesce(func.sum(entry.c.insurance_delta), 0))
            .join(own, own.id == Claim.coverage_id)
            .join(line, line.claim_id == Claim.id)
            .join(entry, entry.c.service_line_id == line.service_line_id)
            .join(billed_by, billed_by.id == entry.c.claim_id)
            .join(billed_cov, and_(billed_cov.id == billed_by.coverage_id, billed_cov.priority <= own.priority))
            .where(Claim.id.in_(chunk))
            .group_by(Claim.id)
        ).all()
        out.update({claim_id: money(amount) for claim_id, amount in rows})
    return out


def _record_crossover(poster: _Poster, state: _ClaimState, out: _Outcome, summary: dict) -> None:
    claim, payment = state.claim, out.payment
    party = payment.crossover_payer
    name = (party.name if party else "") or "another payer"
    claim.crossover_payer_name = name[:60]
    claim.crossover_payer_id = party.identifier[:80] if party and party.identifier else None
    summary["crossovers"].append({"claim_id": claim.id, "payer": name, "payer_id": claim.crossover_payer_id})
    summary["notes"].append(
        f"claim {claim.id} was forwarded by the payer to {name} (crossover, CLP02 {payment.status_code}): "
        f"no secondary claim is built; the patient's share stays with insurance until {name} pays"
    )
    # The patient's share of this adjudication goes back to insurance: the crossover payer is billed for it.
    by_line: dict[int, Decimal] = defaultdict(lambda: ZERO)
    lines = {line.id: line for line in state.lines}
    keys = set(out.keys)
    for row in poster.rows:
        if row["posting_key"] in keys and row["kind"] == "patient_responsibility":
            by_line[row["claim_line_id"]] += row["amount"]
    for line_id, amount in by_line.items():
        if not amount:
            continue
        line = lines[line_id]
        key = f"835:{poster.key}:{payment.segment_position}:crossover:{line_id}"
        poster.deferred.append(
            ledger.entry_row(
                service_line_id=line.service_line_id,
                claim_line_id=line.id,
                claim_id=claim.id,
                patient_id=claim.patient_id,
                kind="transfer_to_secondary",
                amount=amount,
                source_type=SOURCE,
                source_id=f"deposit:{poster.deposit.id}",
                posting_key=key,
                note=f"forwarded to {name} (crossover): the patient's share is billed to it",
            )  # fmt: skip
        )


def _resolve_reversed_underpayments(session: Session, outcomes: list[_Outcome], remittance: Remittance) -> None:
    for out in outcomes:
        if out.outcome != "reversal" or not out.reversed_deposits:
            continue
        session.execute(
            update(Underpayment)
            .where(
                Underpayment.claim_id == out.claim_id,
                Underpayment.deposit_id.in_(out.reversed_deposits),
                Underpayment.status == "open",
            )
            .values(
                status="resolved",
                resolved_at=datetime.now(UTC),
                note=f"the payment was reversed (CLP02 22, trace {remittance.trace_number})",
            )
        )


def _sync_existing_transfers(session: Session, states: list[_ClaimState]) -> None:
    """Claims whose next payer was already billed (a secondary exists): bring its transfer up to date."""
    if not states:
        return
    encounters = sorted({st.claim.encounter_id for st in states})
    later = []
    for chunk in _chunks(encounters):
        later += session.execute(
            select(Claim, Coverage.priority)
            .join(Coverage, Coverage.id == Claim.coverage_id)
            .where(Claim.encounter_id.in_(chunk), Claim.frequency_code == "1", Coverage.priority > 1)
        ).all()
    if not later:
        return
    wanted = {(st.claim.encounter_id, st.priority + 1) for st in states}
    rows = []
    for claim, priority in later:
        if (claim.encounter_id, priority) in wanted:
            rows += transfer_rows_for(session, claim, priority)
    ledger.post_rows(session, rows)
