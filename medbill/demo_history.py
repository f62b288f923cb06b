"""A year (or any number of months) of realistic billing activity for a demo practice, generated through the real
pipeline and backdated, so reports, charts and work queues have something to show.

Month after month: visits dated in the month (patients with coverages, some with a secondary), their claims scrubbed
and sent in one 837P dated that month (``prepare_submission`` / ``mark_transmitted`` with the month's time), the
sandbox clearinghouse — run in-process with its clock set to that month — answering with a 999 and a 277CA, and
remitting twelve days later with an 835 of that date; every file is stored like the real intake stores it and applied
by ``billing.edi_intake.intake`` (posting, secondary claims, underpayments). Patients pay part of what they owe
(``post_patient_payment`` received that month), one overpays and is refunded, a few never pay; statement runs go
out in the last months; some denials are moved to the patient, written off or appealed, the rest stay in the queue;
two claims of the month before the last go in a file the clearinghouse never answers (follow-up items); at the end
the follow-up queue is brought up to date and the oldest unpaid account is placed with the agency and exported.

Ledger entries carry their accounting date (charges: the day the claim was billed; remittances: the 835's payment
date; patient payments: the day received; write-offs: the day worked), so every month's figures come out in their
month. Deterministic (seeded) and idempotent per practice: a practice with visits older than the recent demo visits
is taken to have its history and is left alone. An interrupted generation is not resumed (start from a fresh data
directory).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from billing import (
    appeals,
    collections,
    denials,
    encounters,
    followup,
    ledger,
    patient_payments,
    setup,
    statements,
    submissions,
)
from billing import claims as claim_service
from billing.edi_intake import ALL_KINDS, intake
from billing.models import (
    BillingIdentity,
    Claim,
    Coverage,
    DenialItem,
    Encounter,
    LedgerEntry,
    Patient,
    Payer,
    Provider,
)
from billing.money import money
from billing.scrubber import scrub_claims
from integrations.sandbox import SandboxConfig, process_inbox_once
from integrations.storage import Storage, practice_key
from medbill.errors import DomainError
from tenants.authz import system_access
from tenants.db import Database

__all__ = ["HISTORY_MONTHS", "HistoryReport", "generate_history", "has_history"]

HISTORY_MONTHS = 12
VISITS_PER_MONTH = 14
# The sandbox pays twelve days after it acknowledges: a month's claims are mostly paid early the next month.
REMIT_DELAY = timedelta(days=12)
SUBMIT_DAY = 22  # claims of the month go out on this day (visits are dated before it)
REMIT_DAY = 9  # the day the sandbox's due remittances are fetched and posted
PAYMENT_DAY = 16  # patients' payments arrive around this day
STATEMENT_DAY = 25
STATEMENT_MONTHS = 5  # statement runs in the last months only (rendering PDFs is the slow part)
# The sandbox's payers, as the demo's contracts would have them: Medicaid pays under its contract (underpayments),
# Medicare at its fee schedule, the commercial plan at the default 62 %.
SANDBOX_PAYERS = {
    "OHMCD01": {"allowed_percent_of_charge": "36", "deductible": "0.00", "coinsurance_percent": "0"},
    "MCRB01": {"allowed_percent_of_charge": "48", "deductible": "120.00", "coinsurance_percent": "20"},
    "SUMMIT01": {"denial_rate": "0.12", "deductible": "150.00", "copay_by_code": {"99213": "25.00", "99214": "25.00"}},
}
# Who pays what they owe: most pay in full, some in part, some never (these become collection candidates).
PAYER_HABITS = ("full", "full", "full", "full", "full", "partial", "partial", "late", "never")
SECONDARY_FOR = {"MCRB01": "SUMMIT01", "SUMMIT01": "OHMCD01"}


@dataclass
class HistoryReport:
    practice: str
    months: int = 0
    encounters: int = 0
    claims: int = 0
    submissions: int = 0
    files: int = 0
    patient_payments: int = 0
    statements: int = 0
    placements: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def has_history(db: Database, slug: str, *, today: date | None = None) -> bool:
    """True when the practice has visits older than the demo's recent ones (its history was generated)."""
    today = today or date.today()
    with db.tenant_session(slug) as session:
        return (
            session.scalar(select(Encounter.id).where(Encounter.date_of_service < today - timedelta(days=60)).limit(1))
            is not None
        )


def _month_starts(end: date, months: int) -> list[date]:
    first = end.replace(day=1)
    out = []
    for _ in range(months):
        out.append(first)
        first = (first - timedelta(days=1)).replace(day=1)
    return out[::-1]


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)


class _Clock:
    """The in-process sandbox's notion of now, moved along the generated timeline."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now.replace(tzinfo=None)


def generate_history(
    db: Database,
    storage: Storage,
    slug: str,
    *,
    specialty: dict,
    months: int = HISTORY_MONTHS,
    visits_per_month: int = VISITS_PER_MONTH,
    today: date | None = None,
    seed: int = 0,
    agency_id: int | None = None,
    statement_months: int = STATEMENT_MONTHS,
) -> HistoryReport | None:
    """Generate `months` months of activity ending yesterday; None when the practice already has its history.

    `specialty` is a :data:`medbill.demo_billing.SPECIALTIES` entry (visit templates and diagnoses); the practice
    needs its billing identity, payers enrolled, providers, fees and patients with a primary coverage."""
    today = today or date.today()
    if has_history(db, slug, today=today):
        return None
    started = time.monotonic()
    end = today - timedelta(days=1)
    report = HistoryReport(slug)
    rng = random.Random(f"history:{slug}:{seed}")
    clock = _Clock()
    root = Path(tempfile.mkdtemp(prefix="medbill-history-"))
    try:
        # pyx12 off: every file comes from medbill's own 837 writer, which the test suite checks with pyx12, and
        # pyx12 would take about a second a file.
        config = SandboxConfig(
            root=root, clock=clock, remit_delay_seconds=REMIT_DELAY.total_seconds(), check_grammar=False
        )
        config.payers.update(SANDBOX_PAYERS)
        inbox = root / "history" / "inbox"
        inbox.mkdir(parents=True)
        gen = _Generator(db, storage, slug, specialty, rng, config, clock, inbox, report, end)
        gen.visits_per_month = visits_per_month
        gen.prepare()
        starts = _month_starts(end, months)
        for n, first in enumerate(starts):
            gen.month(first, statements_due=n >= len(starts) - statement_months, lose_some=n == len(starts) - 2)
        gen.finish(agency_id=agency_id, today=today)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.months = months
    report.seconds = round(time.monotonic() - started, 1)
    return report


class _Generator:
    def __init__(self, db, storage, slug, specialty, rng, config, clock, inbox, report, end) -> None:
        self.db, self.storage, self.slug, self.spec = db, storage, slug, specialty
        self.rng, self.config, self.clock, self.inbox, self.report, self.end = rng, config, clock, inbox, report, end
        self.pre_existing: set[int] = set()
        self.patients: list[int] = []
        self.habits: dict[int, str] = {}
        self.providers: list[int] = []
        self.refunded = False
        self.debtor: int | None = None
        self.month_index = 0
        self.visits_per_month = VISITS_PER_MONTH

    # --- setup ------------------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Remember claims that are not ours (the demo's recent ones) and give some patients a secondary coverage."""
        with self.db.tenant_session(self.slug) as session:
            access = system_access(session, self.slug, actor="demo history")
            self.pre_existing = set(session.scalars(select(Claim.id)))
            self.providers = list(session.scalars(select(Provider.id).order_by(Provider.id)))
            payer_codes = dict(session.execute(select(Payer.id, Payer.payer_id)).all())
            by_code = {code: pid for pid, code in payer_codes.items()}
            primaries = session.execute(
                select(Coverage.patient_id, Coverage.payer_id, Coverage.member_id, Coverage.effective_date)
                .where(Coverage.priority == 1)
                .order_by(Coverage.patient_id)
            ).all()
            has_secondary = set(session.scalars(select(Coverage.patient_id).where(Coverage.priority == 2)))
            for n, (patient_id, payer_id, member_id, effective) in enumerate(primaries):
                if member_id.upper().startswith("UNK"):
                    continue  # rejected by the payer anyway; no history for them beyond the rejection
                self.patients.append(patient_id)
                self.habits[patient_id] = PAYER_HABITS[(patient_id * 7 + n) % len(PAYER_HABITS)]
                secondary = SECONDARY_FOR.get(payer_codes.get(payer_id, ""))
                if self.debtor is None and payer_codes.get(payer_id) == "SUMMIT01" and patient_id not in has_secondary:
                    # One account that never pays: a deductible from the first months, statements, then the agency.
                    self.debtor = patient_id
                    self.habits[patient_id] = "never"
                    continue
                if n % 4 == 1 and secondary in by_code and patient_id not in has_secondary:
                    setup.add_coverage(
                        session,
                        access,
                        patient_id,
                        {"payer_id": by_code[secondary], "priority": 2, "member_id": f"SE{patient_id:08d}",
                         "relationship_code": "18", "effective_date": effective},
                    )  # fmt: skip
            session.commit()

    # --- one month --------------------------------------------------------------------------------------------------

    def month(self, first: date, *, statements_due: bool, lose_some: bool = False) -> None:
        """One month's work; with `lose_some`, two of its claims go in a file the clearinghouse never answers (they
        come up for follow-up a month later)."""
        last = min(first.replace(day=monthrange(first.year, first.month)[1]), self.end)
        remit_day = first + timedelta(days=REMIT_DAY - 1)
        if remit_day <= last:
            self._sandbox_pass(remit_day)  # last month's remittances arrive
        payment_day = first + timedelta(days=PAYMENT_DAY - 1)
        if payment_day <= last:
            self._patient_payments(payment_day)
        submit_day = min(first + timedelta(days=SUBMIT_DAY - 1), last)
        if (submit_day - first).days >= 2:
            self._visits(first, submit_day - timedelta(days=1))
            self._submit(submit_day, lose=2 if lose_some else 0)
            self._sandbox_pass(submit_day)  # 999 and 277CA the same day
        statement_day = first + timedelta(days=STATEMENT_DAY - 1)
        if statements_due and statement_day <= last:
            self._statement_run(statement_day)

    def _visits(self, first: date, last: date) -> None:
        rng, spec = self.rng, self.spec
        span = (last - first).days
        count = max(1, round(self.visits_per_month * rng.uniform(0.8, 1.2)))
        with self.db.tenant_session(self.slug) as session:
            access = system_access(session, self.slug, actor="demo history")
            made = []
            for n in range(count):
                patient_id = rng.choice(self.patients)
                if n == 0 and self.month_index < 2 and self.debtor is not None:
                    patient_id = self.debtor
                diagnoses = rng.sample(spec["diagnoses"], k=rng.choice((1, 2, 2, 3)))
                lines = rng.choice(spec["visits"])
                encounter = encounters.create_encounter(
                    session,
                    access,
                    {
                        "patient_id": patient_id,
                        "date_of_service": (first + timedelta(days=rng.randint(0, span))).isoformat(),
                        "place_of_service": "11",
                        "rendering_provider_id": rng.choice(self.providers),
                        "diagnoses": diagnoses,
                        "lines": [
                            {"procedure_code": code, "modifiers": list(mods), "units": 1,
                             "diagnosis_pointers": list(range(1, len(diagnoses) + 1))[:4]}
                            for code, mods in lines
                        ],
                    },
                )  # fmt: skip
                made.extend(claim_service.create_claims(session, access, encounter.id))
            self.month_index += 1
            scrub_claims(session, made, user_id=None, today=last)
            session.commit()
            self.report.encounters += count
            self.report.claims += len(made)

    def _submit(self, day: date, *, lose: int = 0) -> None:
        now = _at(day, 10)
        with self.db.tenant_session(self.slug) as session:
            ready = [
                cid
                for cid in session.scalars(select(Claim.id).where(Claim.status == "ready").order_by(Claim.id))
                if cid not in self.pre_existing
            ]
            session.commit()
        if lose and len(ready) > lose:
            self._send(ready[-lose:], now, day, deliver=False)
            ready = ready[:-lose]
        if ready:
            self._send(ready, now, day, deliver=True)

    def _send(self, ready: list[int], now: datetime, day: date, *, deliver: bool) -> None:
        with self.db.tenant_session(self.slug) as session:
            prepared = submissions.prepare_submission(
                session, practice_slug=self.slug, user_id=None, claim_ids=ready, now=now, today=day
            )
            if prepared is None:
                session.commit()
                return
            data = prepared.text.encode("ascii")
            key = practice_key(self.slug, "submissions", prepared.submission.filename)
            self.storage.put(key, data, content_type="application/edi-x12")
            prepared.submission.storage_key = key
            submissions.mark_transmitted(session, prepared.submission, user_id=None, now=now)
            session.commit()
            if deliver:
                (self.inbox / prepared.submission.filename).write_bytes(data)
            self.report.submissions += 1

    def _sandbox_pass(self, day: date) -> None:
        """The sandbox works at `day` (acknowledging what came in, remitting what is due); medbill fetches it all."""
        self.clock.now = _at(day, 14)
        written = process_inbox_once(self.config)
        order = {".999": 0, ".277ca": 1, ".835": 2}
        for path in sorted(written, key=lambda p: (order.get(p.suffix, 9), p.name)):
            if path.suffix not in order:
                path.unlink(missing_ok=True)
                continue
            data = path.read_bytes()
            key = practice_key(
                self.slug, "edi", "inbound", f"{hashlib.sha256(data).hexdigest()}-{path.name}"
            )  # as the real fetch stores it
            self.storage.put(key, data, content_type="application/edi-x12")
            intake(self.db, data, storage_key=key, slugs=[self.slug], kinds=ALL_KINDS)
            path.unlink()
            self.report.files += 1
        if any(p.suffix == ".835" for p in written):
            self._work_denials(day)

    # --- patients -----------------------------------------------------------------------------------------------------

    def _patient_payments(self, day: date) -> None:
        with self.db.tenant_session(self.slug) as session:
            owed = session.execute(
                select(LedgerEntry.patient_id, func.sum(LedgerEntry.patient_delta))
                .group_by(LedgerEntry.patient_id)
                .having(func.sum(LedgerEntry.patient_delta) > 0)
                .order_by(LedgerEntry.patient_id)
            ).all()
            for patient_id, due in owed:
                due = money(due)
                habit = self.habits.get(patient_id, "never")
                if habit == "never" or (habit == "late" and self.rng.random() < 0.6):
                    continue
                amount = due if habit in ("full", "late") else money(max(Decimal(10), (due / 2).quantize(Decimal(1))))
                amount = min(amount, due)
                overpay = not self.refunded and habit == "full"
                if overpay:
                    amount += Decimal("20.00")  # pays twice the co-pay; refunded below
                patient_payments.post_patient_payment(
                    session, patient_id, amount, method=self.rng.choice(("card", "card", "check", "cash")),
                    reference=f"H{day:%y%m%d}{patient_id:05d}", received_on=day, user_id=None,
                    posting_key=f"demo-history:{patient_id}:{day.isoformat()}",
                )  # fmt: skip
                self.report.patient_payments += 1
                if overpay:
                    patient_payments.refund(
                        session, patient_id, Decimal("20.00"), method="check", reference=f"R{day:%y%m%d}",
                        refunded_on=min(day + timedelta(days=3), self.end), user_id=None,
                        posting_key=f"demo-history-refund:{patient_id}:{day.isoformat()}",
                        note="overpayment returned",
                    )  # fmt: skip
                    self.refunded = True
            session.commit()

    def _statement_run(self, day: date) -> None:
        with self.db.tenant_session(self.slug) as session:
            run, created = statements.start_run(session, None, today=day, trigger="schedule")
            session.commit()
            if created:
                statements.execute_run(session, run.id, practice_slug=self.slug, storage=self.storage)
                session.commit()
                self.report.statements += run.statements_done

    # --- denials ------------------------------------------------------------------------------------------------------

    def _work_denials(self, day: date) -> None:
        """Bring the denial queue up to date; work one item a month (write-off or appeal), leave the others."""
        with self.db.tenant_session(self.slug) as session:
            denials.sync(session)
            item = session.scalar(
                select(DenialItem)
                .where(DenialItem.status == "open", DenialItem.kind == "denial")
                .order_by(DenialItem.id)
                .limit(1)
            )
            if item is None or self.rng.random() < 0.35:
                session.commit()
                return
            access = system_access(session, self.slug, actor="demo history")
            previous = ledger.set_accounting_date(session, day)
            try:
                if item.id % 2:
                    appeals.create_appeal(
                        session, access, item.id, storage=self.storage,
                        argument="The service was medically necessary; the visit note and the ordering "
                        "physician's documentation are attached.",
                    )  # fmt: skip
                else:
                    # Moving the denied amount to the patient (a non-covered service) or writing off what insurance
                    # still owes, whichever the line allows.
                    for action in ("bill_patient", "write_off"):
                        try:
                            with session.begin_nested():
                                denials.close(
                                    session, access, item.id, action, reason="worked by the demo biller",
                                    reason_code="45", confirm=True,
                                )  # fmt: skip
                            break
                        except DomainError:
                            continue
            finally:
                ledger.set_accounting_date(session, previous)
            session.commit()

    # --- the end ------------------------------------------------------------------------------------------------------

    def finish(self, *, agency_id: int | None, today: date) -> None:
        with self.db.tenant_session(self.slug) as session:
            denials.sync(session)
            followup.run(session, now=_at(today, 8))
            session.commit()
        if agency_id is None:
            return
        with self.db.tenant_session(self.slug) as session:
            access = system_access(session, self.slug, actor="demo history")
            found = collections.candidates(session, access, today=today)
            if not found:
                self.report.notes.append("no collection candidate to place")
                session.commit()
                return
            collections.approve(
                session, access, found[0].patient_id, agency_id, today=today, note="demo: oldest unpaid balance"
            )
            session.commit()
            collections.export_agency(session, self.storage, self.slug, agency_id, now=_at(today, 7))
            session.commit()
            self.report.placements += 1


def practice_is_billable(db: Database, slug: str) -> bool:
    with db.tenant_session(slug) as session:
        return session.get(BillingIdentity, 1) is not None and bool(
            session.scalar(select(func.count()).select_from(Patient))
        )
