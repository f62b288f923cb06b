"""Practice reports, derived from the ledger so they agree with it to the cent: the monthly revenue summary (with
collection rates, days in A/R, denial and clean-claim rates), A/R aging by payer and for patients with the claims
behind each bucket, payments allocated to rendering providers, and deposits reconciled against what they posted.

Conventions, stated once:
- An entry counts in the month of its accounting date (`LedgerEntry.posted_on`: an 835's payment date, the day a
  claim was billed, the day a patient paid); a reversal counts in the category
  of the entry it reverses, in its own month, with its (negated) amount.
- Payments are insurance plus patient payments, net of refunds. Adjustments are contractual (CO) and other
  (other adjustments and write-offs).
- Net collection rate = payments / (charges - contractual adjustments); gross collection rate = payments / charges.
- Days in A/R = A/R at the end of the month / average daily charges of the 90 days ending then.
- A/R ages from the date of service. The insurance part of a line is owed by the payer of the claim whose entries
  left it there; the patient part is owed by the patient.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Date, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session, aliased

from billing import rules, work_queues
from billing.adjustment_codes import describe_adjustment
from billing.models import (
    Claim,
    ClaimLine,
    ClaimStatusChange,
    Deposit,
    LedgerEntry,
    Patient,
    Payer,
    Provider,
    ProviderAdjustmentEntry,
    RemittanceClaim,
    ServiceLine,
    Submission,
    SubmissionClaim,
)
from billing.money import ZERO, money
from integrations.storage import Storage, practice_key

AGING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30", 0, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-120", 91, 120),
    ("120+", 121, None),
)
DENIAL_GROUPS = rules.DENIAL_GROUPS  # the rule lives in billing.rules
# CLP02 statuses that mean the payer adjudicated the claim (a reversal, 22, is not an adjudication).
ADJUDICATED_STATUSES = ("1", "2", "3", "4", "19", "20", "21")
HUNDRED = Decimal(100)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def months_back(last: date, count: int) -> list[date]:
    """`count` month starts ending with the month of `last`, oldest first."""
    months = [month_start(last)]
    while len(months) < count:
        months.insert(0, month_start(months[0] - timedelta(days=1)))
    return months


def rate(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """A percentage with one decimal, or None when there is nothing to divide by."""
    if denominator <= 0:
        return None
    return (numerator * HUNDRED / denominator).quantize(Decimal("0.1"))


def _entry_date():
    return LedgerEntry.posted_on


def _category():
    """The kind an entry counts as: a reversal counts as the entry it reverses."""
    original = aliased(LedgerEntry)
    return original, func.coalesce(original.kind, LedgerEntry.kind)


# --- the monthly summary ---------------------------------------------------------------------------------------------


@dataclass
class MonthFigures:
    month: date
    charges: Decimal = ZERO
    insurance_payments: Decimal = ZERO
    patient_payments: Decimal = ZERO
    contractual_adjustments: Decimal = ZERO
    other_adjustments: Decimal = ZERO
    refunds: Decimal = ZERO
    ar_end: Decimal = ZERO
    days_in_ar: Decimal | None = None
    claims_adjudicated: int = 0
    claims_denied: int = 0
    claims_first_answered: int = 0
    claims_clean: int = 0

    @property
    def payments(self) -> Decimal:
        return self.insurance_payments + self.patient_payments - self.refunds

    @property
    def adjustments(self) -> Decimal:
        return self.contractual_adjustments + self.other_adjustments

    @property
    def net_collection_rate(self) -> Decimal | None:
        return rate(self.payments, self.charges - self.contractual_adjustments)

    @property
    def gross_collection_rate(self) -> Decimal | None:
        return rate(self.payments, self.charges)

    @property
    def denial_rate(self) -> Decimal | None:
        return rate(Decimal(self.claims_denied), Decimal(self.claims_adjudicated))

    @property
    def clean_claim_rate(self) -> Decimal | None:
        return rate(Decimal(self.claims_clean), Decimal(self.claims_first_answered))

    def as_dict(self) -> dict:
        return {
            "month": self.month.strftime("%Y-%m"),
            "charges": self.charges,
            "insurance_payments": self.insurance_payments,
            "patient_payments": self.patient_payments,
            "refunds": self.refunds,
            "payments": self.payments,
            "contractual_adjustments": self.contractual_adjustments,
            "other_adjustments": self.other_adjustments,
            "adjustments": self.adjustments,
            "net_collection_rate": self.net_collection_rate,
            "gross_collection_rate": self.gross_collection_rate,
            "ar_end": self.ar_end,
            "days_in_ar": self.days_in_ar,
            "claims_adjudicated": self.claims_adjudicated,
            "claims_denied": self.claims_denied,
            "denial_rate": self.denial_rate,
            "claims_first_answered": self.claims_first_answered,
            "claims_clean": self.claims_clean,
            "clean_claim_rate": self.clean_claim_rate,
        }


@dataclass
class DenialReason:
    group: str
    reason: str
    description: str
    count: int
    amount: Decimal


@dataclass
class MonthlySummary:
    months: list[MonthFigures]  # oldest first; the last one is the month asked for
    top_denial_reasons: list[DenialReason] = field(default_factory=list)

    @property
    def current(self) -> MonthFigures:
        return self.months[-1]

    @property
    def previous(self) -> MonthFigures | None:
        return self.months[-2] if len(self.months) > 1 else None


_CATEGORY_FIELDS = {
    "charge": "charges",
    "insurance_payment": "insurance_payments",
    "patient_payment": "patient_payments",
    "contractual_adjustment": "contractual_adjustments",
    "other_adjustment": "other_adjustments",
    "write_off": "other_adjustments",
    "refund": "refunds",
}


def monthly_summary(session: Session, month: date, *, months: int = 12) -> MonthlySummary:
    """The figures of `months` months ending with the month of `month`."""
    starts = months_back(month, months)
    first, end = starts[0], next_month(starts[-1])
    by_month = {m: MonthFigures(m) for m in starts}

    _add_category_sums(session, by_month, first, end)

    # A/R at each month's end and the charges of the 90 days before it, from two grouped queries (one query per
    # month and figure cost 24 statements per request): the A/R before the first month plus each month's change,
    # and the charges of every day of the window summed per month here.
    ar_end = ar_total(session, first - timedelta(days=1))
    changes = dict(_ar_changes_by_month(session, first, end))
    daily_charges = _charges_by_day(session, next_month(starts[0]) - timedelta(days=90), end)
    for m in starts:
        figures = by_month[m]
        ar_end += changes.get(m, ZERO)
        figures.ar_end = ar_end
        window_start, window_end = next_month(m) - timedelta(days=90), next_month(m)
        charges_90 = sum((amount for day, amount in daily_charges if window_start <= day < window_end), ZERO)
        if charges_90 > 0:
            figures.days_in_ar = (figures.ar_end / (charges_90 / 90)).quantize(Decimal("0.1"))

    for m, adjudicated, denied in _denials_by_month(session, first, end):
        by_month[m].claims_adjudicated, by_month[m].claims_denied = adjudicated, denied
    for m, answered, clean in _first_submissions_by_month(session, first, end):
        by_month[m].claims_first_answered, by_month[m].claims_clean = answered, clean

    return MonthlySummary(
        months=[by_month[m] for m in starts],
        top_denial_reasons=top_denial_reasons(session, starts[-1], end),
    )


def _add_category_sums(session: Session, by_month: dict[date, MonthFigures], first: date, end: date) -> None:
    """Add each month's charges, payments, adjustments and refunds (by the entries' category) to `by_month`."""
    original, category = _category()
    entry_month = func.date_trunc("month", _entry_date())
    rows = session.execute(
        select(cast(entry_month, Date), category, func.sum(LedgerEntry.amount))
        .select_from(LedgerEntry)
        .outerjoin(original, original.id == LedgerEntry.reverses_entry_id)
        .where(_entry_date() >= first, _entry_date() < end, category.in_(tuple(_CATEGORY_FIELDS)))
        .group_by(entry_month, category)
    )
    for m, kind, amount in rows:
        figures = by_month[m]
        name = _CATEGORY_FIELDS[kind]
        setattr(figures, name, getattr(figures, name) + money(amount))


def month_totals(session: Session, month: date) -> MonthFigures:
    """Only the sums of one month (charges, payments, adjustments, refunds): no A/R, no rates."""
    first = month_start(month)
    figures = MonthFigures(first)
    _add_category_sums(session, {first: figures}, first, next_month(first))
    return figures


def ar_total(session: Session, as_of: date) -> Decimal:
    """Everything still owed (insurance and patient parts) by the end of `as_of`."""
    value = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.insurance_delta + LedgerEntry.patient_delta), 0)).where(
            _entry_date() <= as_of
        )
    )
    return money(value)


def _ar_changes_by_month(session: Session, first: date, end: date) -> list[tuple[date, Decimal]]:
    """Each month's change of everything owed (insurance and patient parts), for the months in [first, end)."""
    entry_month = func.date_trunc("month", _entry_date())
    rows = session.execute(
        select(cast(entry_month, Date), func.sum(LedgerEntry.insurance_delta + LedgerEntry.patient_delta))
        .where(_entry_date() >= first, _entry_date() < end)
        .group_by(entry_month)
    )
    return [(m, money(amount)) for m, amount in rows]


def _charges_by_day(session: Session, start: date, end: date) -> list[tuple[date, Decimal]]:
    """The charges of each day in [start, end) (a reversed charge counts as a charge, as in the category sums)."""
    original, category = _category()
    rows = session.execute(
        select(_entry_date(), func.sum(LedgerEntry.amount))
        .select_from(LedgerEntry)
        .outerjoin(original, original.id == LedgerEntry.reverses_entry_id)
        .where(category == "charge", _entry_date() >= start, _entry_date() < end)
        .group_by(_entry_date())
    )
    return [(day, money(amount)) for day, amount in rows]


def _denied_condition():
    """A CLP the payer denied: status 4, or adjudicated with nothing paid and nothing left to the patient."""
    rc = RemittanceClaim
    return rules.claim_denied_sql(rc.status_code, rc.charge, rc.paid, rc.patient_responsibility)


def _denials_by_month(session: Session, first: date, end: date) -> list[tuple[date, int, int]]:
    paid_month = func.date_trunc("month", Deposit.payment_date)
    rows = session.execute(
        select(
            cast(paid_month, Date),
            func.count(RemittanceClaim.id),
            func.count(RemittanceClaim.id).filter(_denied_condition()),
        )
        .join(Deposit, Deposit.id == RemittanceClaim.deposit_id)
        .where(
            RemittanceClaim.outcome == "posted",
            RemittanceClaim.status_code.in_(ADJUDICATED_STATUSES),
            Deposit.payment_date >= first,
            Deposit.payment_date < end,
        )
        .group_by(paid_month)
    )
    return [(m, int(a), int(d)) for m, a, d in rows]


def _first_submissions_by_month(session: Session, first: date, end: date) -> list[tuple[date, int, int]]:
    """Claims first submitted in each month that have had an answer: how many, and how many were accepted (or
    paid) without ever being rejected — the clean-claim rate's parts."""
    first_submitted = (
        select(SubmissionClaim.claim_id, func.min(Submission.created_at).label("at"))
        .join(Submission, Submission.id == SubmissionClaim.submission_id)
        .group_by(SubmissionClaim.claim_id)
        .subquery()
    )
    rejected = (
        select(literal(1))
        .where(ClaimStatusChange.claim_id == first_submitted.c.claim_id, ClaimStatusChange.to_status == "rejected")
        .exists()
    )
    answered = (
        select(literal(1))
        .where(
            ClaimStatusChange.claim_id == first_submitted.c.claim_id,
            ClaimStatusChange.to_status.in_(("accepted", "rejected", "paid", "partially_paid", "denied")),
        )
        .exists()
    )
    sub_month = func.date_trunc("month", first_submitted.c.at)
    rows = session.execute(
        select(
            cast(sub_month, Date),
            func.count().filter(answered),
            func.count().filter(and_(answered, ~rejected)),
        )
        .select_from(first_submitted)
        .where(first_submitted.c.at >= first, first_submitted.c.at < end)
        .group_by(sub_month)
    )
    return [(m, int(a), int(c)) for m, a, c in rows]


def top_denial_reasons(session: Session, start: date, end: date, *, limit: int = 5) -> list[DenialReason]:
    """The CARC reasons of the denials adjudicated between start and end, by how many claims carried them."""
    rows = session.execute(
        select(
            LedgerEntry.group_code,
            LedgerEntry.reason_code,
            func.count(func.distinct(RemittanceClaim.id)),
            func.sum(LedgerEntry.amount),
        )
        .join(Deposit, Deposit.id == RemittanceClaim.deposit_id)
        .join(
            LedgerEntry,
            and_(
                LedgerEntry.claim_id == RemittanceClaim.claim_id,
                LedgerEntry.source_id == func.concat("deposit:", Deposit.id),
                LedgerEntry.group_code.in_(DENIAL_GROUPS),
                LedgerEntry.reason_code != "",
                LedgerEntry.reverses_entry_id.is_(None),
            ),
        )
        .where(
            RemittanceClaim.outcome == "posted",
            _denied_condition(),
            Deposit.payment_date >= start,
            Deposit.payment_date < end,
        )
        .group_by(LedgerEntry.group_code, LedgerEntry.reason_code)
        .order_by(func.count(func.distinct(RemittanceClaim.id)).desc(), LedgerEntry.reason_code)
        .limit(limit)
    )
    return [
        DenialReason(group, reason, describe_adjustment(group, reason), int(count), money(amount))
        for group, reason, count, amount in rows
    ]


# --- A/R aging -------------------------------------------------------------------------------------------------------


def bucket_of(age_days: int) -> str:
    for name, low, high in AGING_BUCKETS:
        if age_days >= low and (high is None or age_days <= high):
            return name
    return AGING_BUCKETS[0][0]  # a future date of service ages as new


@dataclass
class AgingRow:
    key: str  # "payer:<id>" or "patients"
    label: str
    buckets: dict[str, Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)


def _owed_by_claim(session: Session, as_of: date):
    """Per claim and date of service: the insurance and the patient part still owed at the end of `as_of`.

    The ledger's account is the service line, billed by one claim after another (primary, secondary, a replacement):
    what insurance still owes on a service is owed under the latest claim billing it (a void, frequency 8, bills
    nobody), so a balance pending with the secondary ages under the secondary payer."""
    responsible = (
        select(ClaimLine.service_line_id, func.max(ClaimLine.claim_id).label("claim_id"))
        .join(Claim, Claim.id == ClaimLine.claim_id)
        .where(Claim.frequency_code != "8")
        .group_by(ClaimLine.service_line_id)
        .subquery()
    )
    return (
        select(
            responsible.c.claim_id,
            ServiceLine.date_of_service,
            func.sum(LedgerEntry.insurance_delta).label("insurance"),
            func.sum(LedgerEntry.patient_delta).label("patient"),
        )
        .select_from(LedgerEntry)
        .join(ServiceLine, ServiceLine.id == LedgerEntry.service_line_id)
        .join(responsible, responsible.c.service_line_id == LedgerEntry.service_line_id)
        .where(_entry_date() <= as_of)
        .group_by(responsible.c.claim_id, ServiceLine.date_of_service)
        .subquery()
    )


def ar_aging(session: Session, as_of: date) -> list[AgingRow]:
    """One row per payer owing something, then one for patients; amounts by age bucket."""
    owed = _owed_by_claim(session, as_of)
    rows = session.execute(
        select(Claim.payer_id, owed.c.date_of_service, owed.c.insurance, owed.c.patient).join(
            Claim, Claim.id == owed.c.claim_id
        )
    ).all()
    payers: dict[int, dict[str, Decimal]] = defaultdict(lambda: {name: ZERO for name, _l, _h in AGING_BUCKETS})
    patients = {name: ZERO for name, _l, _h in AGING_BUCKETS}
    for payer_id, dos, insurance, patient in rows:
        bucket = bucket_of((as_of - dos).days)
        if insurance:
            payers[payer_id][bucket] += money(insurance)
        if patient:
            patients[bucket] += money(patient)
    names = _payer_names(session, list(payers))
    out = [
        AgingRow(f"payer:{pid}", names.get(pid, f"Payer {pid}"), buckets)
        for pid, buckets in payers.items()
        if any(buckets.values())
    ]
    out.sort(key=lambda row: row.label)
    out.append(AgingRow("patients", "Patients", patients))
    return out


def _payer_names(session: Session, payer_ids: list[int]) -> dict[int, str]:
    if not payer_ids:
        return {}
    return dict(session.execute(select(Payer.id, Payer.name).where(Payer.id.in_(payer_ids))).all())


def aging_claims(session: Session, as_of: date, *, key: str, bucket: str) -> list[dict]:
    """The claims behind one cell of the aging table (drill-down)."""
    bounds = {name: (low, high) for name, low, high in AGING_BUCKETS}
    if bucket not in bounds:
        raise ValueError(f"unknown aging bucket {bucket!r}")
    low, high = bounds[bucket]
    owed = _owed_by_claim(session, as_of)
    part = owed.c.patient if key == "patients" else owed.c.insurance
    age = as_of - owed.c.date_of_service
    query = (
        select(
            Claim.id,
            Claim.status,
            Claim.payer_id,
            Patient.first_name,
            Patient.last_name,
            owed.c.date_of_service,
            part.label("owed"),
        )  # fmt: skip
        .join(Claim, Claim.id == owed.c.claim_id)
        .join(Patient, Patient.id == Claim.patient_id)
        .where(part != 0, age >= low)
        .order_by(owed.c.date_of_service, Claim.id)
    )
    if high is not None:
        query = query.where(age <= high)
    if key.startswith("payer:"):
        query = query.where(Claim.payer_id == int(key.split(":", 1)[1]))
    elif key != "patients":
        raise ValueError(f"unknown aging row {key!r}")
    rows = session.execute(query).all()
    names = _payer_names(session, list({r.payer_id for r in rows}))
    merged: dict[int, dict] = {}
    for r in rows:
        item = merged.setdefault(
            r.id,
            {
                "claim_id": r.id,
                "status": r.status,
                "payer": names.get(r.payer_id, ""),
                "patient": f"{r.last_name}, {r.first_name}",
                "date_of_service": r.date_of_service,
                "owed": ZERO,
                "age_days": (as_of - r.date_of_service).days,
            },
        )
        item["owed"] += money(r.owed)
    return list(merged.values())


# --- provider allocation and deposits ---------------------------------------------------------------------------------


@dataclass
class Allocation:
    month: date
    provider_id: int
    provider: str
    payer: str  # "Patients" for patient payments
    amount: Decimal


def provider_allocation(session: Session, first: date, end: date) -> list[Allocation]:
    """Payments (net of refunds) from `first` up to `end`, by month, rendering provider and payer."""
    original, category = _category()
    signed = case((category == "refund", -LedgerEntry.amount), else_=LedgerEntry.amount)
    source = case((category == "insurance_payment", Claim.payer_id), else_=literal(None))
    is_patient = case((category == "patient_payment", True), (category == "refund", LedgerEntry.patient_delta > 0))
    entry_month = func.date_trunc("month", _entry_date())
    rows = session.execute(
        select(
            cast(entry_month, Date),
            ServiceLine.rendering_provider_id,
            func.coalesce(source, literal(0)),
            func.coalesce(is_patient, False),
            func.sum(signed),
        )
        .select_from(LedgerEntry)
        .outerjoin(original, original.id == LedgerEntry.reverses_entry_id)
        .join(ClaimLine, ClaimLine.id == LedgerEntry.claim_line_id)
        .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
        .join(Claim, Claim.id == LedgerEntry.claim_id)
        .where(
            category.in_(("insurance_payment", "patient_payment", "refund")),
            _entry_date() >= first,
            _entry_date() < end,
        )
        .group_by(entry_month, ServiceLine.rendering_provider_id, source, is_patient)
    ).all()
    providers = {
        p.id: f"{p.last_name}, {p.first_name}".strip(", ")
        for p in session.scalars(select(Provider).where(Provider.id.in_({r[1] for r in rows})))
    }
    payer_names = _payer_names(session, [r[2] for r in rows if r[2]])
    out = []
    for m, provider_id, payer_id, patient, amount in rows:
        payer = "Patients" if patient else payer_names.get(payer_id, "Insurance refunds" if not payer_id else "")
        out.append(Allocation(m, provider_id, providers.get(provider_id, str(provider_id)), payer, money(amount)))
    out.sort(key=lambda a: (a.month, a.provider, a.payer))
    return out


@dataclass
class DepositReconciliation:
    deposit_id: int
    payment_date: date | None
    trace_number: str
    payer_name: str
    amount: Decimal
    posted_payments: Decimal
    provider_adjustments: Decimal

    @property
    def difference(self) -> Decimal:
        """What the deposit's amount does not explain: zero when every claim payment posted."""
        return self.amount - (self.posted_payments - self.provider_adjustments)


def deposit_reconciliation(session: Session, first: date, end: date) -> list[DepositReconciliation]:
    original, category = _category()
    posted = (
        select(LedgerEntry.source_id, func.sum(LedgerEntry.amount).label("paid"))
        .select_from(LedgerEntry)
        .outerjoin(original, original.id == LedgerEntry.reverses_entry_id)
        .where(category == "insurance_payment", LedgerEntry.source_id.like("deposit:%"))
        .group_by(LedgerEntry.source_id)
        .subquery()
    )
    plb = (
        select(ProviderAdjustmentEntry.deposit_id, func.sum(ProviderAdjustmentEntry.amount).label("plb"))
        .group_by(ProviderAdjustmentEntry.deposit_id)
        .subquery()
    )
    rows = session.execute(
        select(Deposit, func.coalesce(posted.c.paid, 0), func.coalesce(plb.c.plb, 0))
        .outerjoin(posted, posted.c.source_id == func.concat("deposit:", Deposit.id))
        .outerjoin(plb, plb.c.deposit_id == Deposit.id)
        .where(Deposit.payment_date >= first, Deposit.payment_date < end)
        .order_by(Deposit.payment_date, Deposit.id)
    ).all()
    return [
        DepositReconciliation(
            d.id, d.payment_date, d.trace_number, d.payer_name, money(d.amount), money(paid), money(plb_total)
        )
        for d, paid, plb_total in rows
    ]


# --- the billing company's overview across its practices -------------------------------------------------------------


# The practice-level queues of the one registry (billing.work_queues), in its order: the overview counts what the
# biller's home shows.
WORK_QUEUES = work_queues.practice_queues()


@dataclass
class PracticeOverview:
    slug: str
    name: str
    ar_total: Decimal
    charges: Decimal
    payments: Decimal
    queues: dict[str, int]


def practice_overview(session: Session, slug: str, name: str, month: date, *, as_of: date) -> PracticeOverview:
    """One practice's line of the overview: A/R at `as_of`, the month's charges and payments, the queue sizes."""
    totals = month_totals(session, month)
    return PracticeOverview(
        slug=slug,
        name=name,
        ar_total=ar_total(session, as_of),
        charges=totals.charges,
        payments=totals.payments,
        queues={name: queue.count(session) for name, queue in WORK_QUEUES.items()},
    )


def overview_totals(rows: list[PracticeOverview]) -> PracticeOverview:
    return PracticeOverview(
        slug="",
        name="Total",
        ar_total=sum((r.ar_total for r in rows), ZERO),
        charges=sum((r.charges for r in rows), ZERO),
        payments=sum((r.payments for r in rows), ZERO),
        queues={name: sum(r.queues.get(name, 0) for r in rows) for name in WORK_QUEUES},
    )


# --- the monthly summary PDF ------------------------------------------------------------------------------------------


def monthly_summary_key(practice_slug: str, month: date) -> str:
    """Where a month's summary PDF is kept: reports/monthly/YYYY-MM.pdf under the practice's prefix."""
    return practice_key(practice_slug, "reports", "monthly", f"{month_start(month):%Y-%m}.pdf")


def store_monthly_summary(
    session: Session, storage: Storage, practice_slug: str, month: date, *, practice_name: str,
    company_name: str = "", today: date | None = None,
) -> str:  # fmt: skip
    """Render the month's summary PDF (figures of `monthly_summary`, aging at the month's end or today if earlier,
    the month's provider allocation) and store it at `monthly_summary_key`, replacing an earlier rendering."""
    from integrations.pdf.monthly_summary import render_monthly_summary  # matplotlib loads only where PDFs are made

    first = month_start(month)
    end = next_month(first)
    as_of = min(today or date.today(), end - timedelta(days=1))
    pdf = render_monthly_summary(
        practice_name=practice_name,
        company_name=company_name,
        summary=monthly_summary(session, first),
        aging=ar_aging(session, as_of),
        aging_as_of=as_of,
        allocations=provider_allocation(session, first, end),
    )
    key = monthly_summary_key(practice_slug, first)
    storage.put(key, pdf, content_type="application/pdf")
    return key
