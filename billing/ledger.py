"""The ledger: append-only financial events, and the balances derived from them. Every entry says how it moves what
insurance owes and what the patient owes; nothing is ever edited — a correction reverses the entry (once) and posts
anew. Postings carry a key, so posting the same thing twice adds nothing.

The account is the service line: a service is charged once (`charge_key`), and every claim that bills it — primary,
secondary, tertiary, a replacement — posts its payments and adjustments to that same account, each entry recording the
claim and claim line that caused it. Coordination of benefits moves money between the two parts: the primary's
patient responsibility goes to the patient, and back to insurance (`transfer_to_secondary`) when a secondary payer is
billed for it, so what is still pending with insurance is never billed to the patient. A line's balance
(`line_balance`) is its service line's; a claim's (`claim_balance`) is that of the services it bills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from billing import rules
from billing.models import Claim, ClaimLine, LedgerEntry
from billing.money import ZERO, money
from medbill.errors import Conflict, Invalid, NotFound

# kind -> (insurance sign, patient sign) applied to the entry's amount.
EFFECTS: dict[str, tuple[int, int]] = {
    "charge": (1, 0),
    "insurance_payment": (-1, 0),
    "contractual_adjustment": (-1, 0),
    "other_adjustment": (-1, 0),
    "patient_responsibility": (-1, 1),  # PR deductible/coinsurance/copay: the patient owes it now
    # The patient's share goes back to insurance: the next payer (secondary, tertiary, a crossover) is billed for it.
    # A negative amount moves it to the patient again (the prior payer's share was reversed).
    "transfer_to_secondary": (1, -1),
    "patient_payment": (0, -1),
}
BUCKETED = {"write_off": -1, "refund": 1}  # apply to the insurance or the patient part
PAYMENT_KINDS = rules.PAYMENT_KINDS  # what counts as a payment, an adjustment, a refund: billing.rules
# source_type of entries posted from a payer's remittance (835).
REMITTANCE_SOURCE = "remittance"
ADJUSTMENT_KINDS = rules.ADJUSTMENT_KINDS
REFUND_KINDS = rules.REFUND_KINDS


@dataclass(frozen=True)
class Balance:
    charges: Decimal
    payments: Decimal
    adjustments: Decimal
    insurance: Decimal
    patient: Decimal

    @property
    def total(self) -> Decimal:
        return self.insurance + self.patient


def _deltas(kind: str, amount: Decimal, bucket: str | None) -> tuple[Decimal, Decimal]:
    if kind in EFFECTS:
        if bucket is not None:
            raise Invalid(f"{kind} does not take a bucket", errors={"bucket": ["only for write_off and refund"]})
        ins, pat = EFFECTS[kind]
    elif kind in BUCKETED:
        if bucket not in ("insurance", "patient"):
            raise Invalid(f"{kind} needs a bucket", errors={"bucket": ["insurance or patient"]})
        sign = BUCKETED[kind]
        ins, pat = (sign, 0) if bucket == "insurance" else (0, sign)
    else:
        raise Invalid(f"unknown ledger entry kind {kind!r}", errors={"kind": [f"one of {', '.join(all_kinds())}"]})
    return money(amount * ins), money(amount * pat)


def all_kinds() -> list[str]:
    return [*EFFECTS, *BUCKETED]


_ACCOUNTING_DATE = "ledger_accounting_date"


def accounting_date(session: Session) -> date:
    """The date entries posted now count on (reports group by it): the session's business date when its work has
    one (an 835's payment date), else today."""
    return session.info.get(_ACCOUNTING_DATE) or date.today()


def set_accounting_date(session: Session, day: date | None) -> date | None:
    """Date what the session posts from here on (None: today again); returns the date it replaces."""
    previous = session.info.get(_ACCOUNTING_DATE)
    session.info[_ACCOUNTING_DATE] = day
    return previous


def charge_key(service_line_id: int) -> str:
    """The posting key of a service's one charge, whichever claim posts it first (submission or remittance)."""
    return f"charge:service:{service_line_id}"


def entry_row(
    *,
    service_line_id: int,
    claim_line_id: int,
    claim_id: int,
    patient_id: int,
    kind: str,
    amount: Decimal,
    source_type: str,
    bucket: str | None = None,
    group_code: str = "",
    reason_code: str = "",
    source_id: str = "",
    posting_key: str | None = None,
    user_id: int | None = None,
    note: str = "",
    posted_on: date | None = None,
) -> dict:
    """The column values of one entry, checked, for `post_rows` (which dates it when `posted_on` is None)."""
    amount = money(amount)
    insurance_delta, patient_delta = _deltas(kind, amount, bucket)
    return {
        "service_line_id": service_line_id,
        "claim_line_id": claim_line_id,
        "claim_id": claim_id,
        "patient_id": patient_id,
        "kind": kind,
        "amount": amount,
        "insurance_delta": insurance_delta,
        "patient_delta": patient_delta,
        "group_code": group_code,
        "reason_code": reason_code,
        "reverses_entry_id": None,
        "source_type": source_type,
        "source_id": source_id,
        "posting_key": posting_key,
        "user_id": user_id,
        "note": note[:2000],
        "posted_on": posted_on,
    }


def reversal_row(
    entry, *, source_type: str, source_id: str = "", posting_key: str | None = None, note: str = "",
    posted_on: date | None = None,
) -> dict:  # fmt: skip
    """The mirror image of `entry` (a LedgerEntry or a row with the same attributes), for `post_rows`."""
    return {
        "service_line_id": entry.service_line_id,
        "claim_line_id": entry.claim_line_id,
        "claim_id": entry.claim_id,
        "patient_id": entry.patient_id,
        "kind": "reversal",
        "amount": -entry.amount,
        "insurance_delta": -entry.insurance_delta,
        "patient_delta": -entry.patient_delta,
        "group_code": entry.group_code,
        "reason_code": entry.reason_code,
        "reverses_entry_id": entry.id,
        "source_type": source_type,
        "source_id": source_id,
        "posting_key": posting_key,
        "user_id": None,
        "note": note[:2000],
        "posted_on": posted_on,
    }


def post_rows(session: Session, rows: list[dict]) -> set[str]:
    """Append many entries; the posting keys actually added (a key posted before, or an entry reversed before, adds
    nothing). Every row should carry a posting key: rows without one are added and not reported. Large batches are
    copied (COPY) into a temporary table and inserted from it in one statement: compiling a multi-row VALUES costs
    far more than the database's work at posting volume."""
    if not rows:
        return set()
    today = accounting_date(session)
    for row in rows:
        if row.get("posted_on") is None:
            row["posted_on"] = today
    if len(rows) >= COPY_FROM:
        return _copy_rows(session, rows)
    table = LedgerEntry.__table__
    # No conflict target: a taken posting key and an entry already reversed are both "posted before".
    stmt = insert(table).on_conflict_do_nothing().returning(table.c.posting_key)
    added: set[str] = set()
    for start in range(0, len(rows), POST_BATCH):
        batch = rows[start : start + POST_BATCH]
        added.update(key for key in session.execute(stmt.values(batch)).scalars() if key is not None)
    return added


_STAGE_COLUMNS = (
    "service_line_id", "claim_line_id", "claim_id", "patient_id", "kind", "amount", "insurance_delta",
    "patient_delta", "group_code", "reason_code", "reverses_entry_id", "source_type", "source_id", "posting_key",
    "user_id", "note", "posted_on",
)  # fmt: skip
_STAGE = "pg_temp.medbill_ledger_stage"


def _copy_rows(session: Session, rows: list[dict]) -> set[str]:
    connection = session.connection()
    # The practice's schema, as the session's engine maps it (tenants.db: schema_translate_map, no search_path).
    schema = connection.get_execution_options().get("schema_translate_map", {}).get(None)
    target = f'"{schema}".ledger_entries' if schema else "ledger_entries"
    raw = connection.connection.driver_connection  # psycopg, inside the session's transaction
    columns = ", ".join(_STAGE_COLUMNS)
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (ord integer, service_line_id bigint, claim_line_id bigint, "
            "claim_id bigint, patient_id bigint, kind text, amount numeric(12, 2), insurance_delta numeric(12, 2), "
            "patient_delta numeric(12, 2), group_code text, reason_code text, reverses_entry_id bigint, "
            "source_type text, source_id text, posting_key text, user_id bigint, note text, posted_on date) "
            "ON COMMIT DELETE ROWS"
        )
        cur.execute(f"TRUNCATE {_STAGE}")
        with cur.copy(f"COPY {_STAGE} (ord, {columns}) FROM STDIN") as copy:
            for index, row in enumerate(rows):
                copy.write_row((index, *(row[c] for c in _STAGE_COLUMNS)))
        # In posting order, so entry ids follow the remittance.
        cur.execute(
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {_STAGE} ORDER BY ord "
            "ON CONFLICT DO NOTHING RETURNING posting_key"
        )
        added = {key for (key,) in cur.fetchall() if key is not None}
        cur.execute(f"TRUNCATE {_STAGE}")
    return added


COPY_FROM = 500  # rows: from here on, COPY through a temporary table
POST_BATCH = 2000  # rows per INSERT: well under PostgreSQL's 65,535 bind parameters (16 columns a row)


def post(
    session: Session,
    claim_line: ClaimLine,
    kind: str,
    amount: Decimal,
    *,
    source_type: str,
    bucket: str | None = None,
    group_code: str = "",
    reason_code: str = "",
    source_id: str = "",
    posting_key: str | None = None,
    user_id: int | None = None,
    note: str = "",
    patient_id: int | None = None,
    posted_on: date | None = None,
) -> int | None:
    """Append an entry on the account of the claim line's service line, recording the claim and claim line as its
    cause; returns its id, or None when `posting_key` was posted before (nothing is added)."""
    claim_patient = patient_id if patient_id is not None else _patient_of(session, claim_line.claim_id)
    # Core insert on the table: the ORM-enabled bulk path costs more than the statement itself at posting volume.
    stmt = insert(LedgerEntry.__table__).values(
        entry_row(
            service_line_id=claim_line.service_line_id,
            claim_line_id=claim_line.id,
            claim_id=claim_line.claim_id,
            patient_id=claim_patient,
            kind=kind,
            amount=amount,
            source_type=source_type,
            bucket=bucket,
            group_code=group_code,
            reason_code=reason_code,
            source_id=source_id,
            posting_key=posting_key,
            user_id=user_id,
            note=note,
            posted_on=posted_on or accounting_date(session),
        )  # fmt: skip
    )
    if posting_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["posting_key"])
    return session.execute(stmt.returning(LedgerEntry.__table__.c.id)).scalar()


def _patient_of(session: Session, claim_id: int) -> int:
    """A claim's patient never changes: remembered for the session, so posting a claim's lines asks once."""
    cache = session.info.setdefault("ledger_claim_patients", {})
    if claim_id not in cache:
        cache[claim_id] = session.scalar(select(Claim.patient_id).where(Claim.id == claim_id))
    return cache[claim_id]


def reverse(
    session: Session, entry_id: int, *, source_type: str, user_id: int | None = None, note: str = "",
    posting_key: str | None = None, posted_on: date | None = None,
) -> int:  # fmt: skip
    """Cancel an entry with its mirror image. An entry is reversed at most once; a reversal is never reversed."""
    entry = session.get(LedgerEntry, entry_id)
    if entry is None:
        raise NotFound(f"ledger entry {entry_id} not found")
    if entry.kind == "reversal":
        raise Conflict("a reversal cannot itself be reversed: post a new entry instead")
    stmt = (
        insert(LedgerEntry)
        .values(
            {
                **reversal_row(
                    entry,
                    source_type=source_type,
                    posting_key=posting_key,
                    note=note,
                    posted_on=posted_on or accounting_date(session),
                ),
                "user_id": user_id,
            }  # fmt: skip
        )
        .on_conflict_do_nothing(index_elements=["reverses_entry_id"])
        .returning(LedgerEntry.id)
    )
    new_id = session.scalar(stmt)
    if new_id is None:
        raise Conflict(f"ledger entry {entry_id} is already reversed")
    return new_id


def _balance(session: Session, *where) -> Balance:
    original = aliased(LedgerEntry)
    # A reversal counts in the category of the entry it reverses (its amount is already negated).
    kind = func.coalesce(original.kind, LedgerEntry.kind)
    refund = kind.in_(REFUND_KINDS)

    def sum_where(condition):
        return func.coalesce(func.sum(case((condition, LedgerEntry.amount), else_=0)), 0)

    row = session.execute(
        select(
            sum_where(kind == "charge"),
            sum_where(kind.in_(PAYMENT_KINDS)) - sum_where(refund),
            sum_where(kind.in_(ADJUSTMENT_KINDS)),
            func.coalesce(func.sum(LedgerEntry.insurance_delta), 0),
            func.coalesce(func.sum(LedgerEntry.patient_delta), 0),
        )
        .select_from(LedgerEntry)
        .outerjoin(original, original.id == LedgerEntry.reverses_entry_id)
        .where(*where)
    ).one()
    return Balance(*(money(v) for v in row))


def service_line_balance(session: Session, service_line_id: int) -> Balance:
    """The account of one service, whatever claims billed it."""
    return _balance(session, LedgerEntry.service_line_id == service_line_id)


def line_balance(session: Session, claim_line_id: int) -> Balance:
    """The balance of the service a claim line bills (shared by every claim billing that service)."""
    service = select(ClaimLine.service_line_id).where(ClaimLine.id == claim_line_id).scalar_subquery()
    return _balance(session, LedgerEntry.service_line_id == service)


def _claim_services(claim_id: int):
    return select(ClaimLine.service_line_id).where(ClaimLine.claim_id == claim_id)


def claim_balance(session: Session, claim_id: int) -> Balance:
    """The balance of the services the claim bills: charges once, with every payer's postings on them."""
    return _balance(session, LedgerEntry.service_line_id.in_(_claim_services(claim_id)))


def posted_by_claim(session: Session, claim_id: int) -> Balance:
    """Only what the claim itself caused (its trail): a secondary claim has no charge of its own here."""
    return _balance(session, LedgerEntry.claim_id == claim_id)


def patient_balance(session: Session, patient_id: int) -> Balance:
    return _balance(session, LedgerEntry.patient_id == patient_id)


def practice_balance(session: Session) -> Balance:
    return _balance(session)


def entries_for_claim(session: Session, claim_id: int) -> list[LedgerEntry]:
    """Every entry on the accounts of the claim's services (other claims' included: see `claim_id` of each), so the
    entries add up to `claim_balance`."""
    return list(
        session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.service_line_id.in_(_claim_services(claim_id)))
            .order_by(LedgerEntry.id)
        )
    )


__all__ = [
    "ZERO",
    "Balance",
    "all_kinds",
    "charge_key",
    "claim_balance",
    "line_balance",
    "post",
    "post_rows",
    "reverse",
    "service_line_balance",
]
