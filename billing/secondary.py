"""Coordination of benefits: once the primary payer has paid, the claim goes to the secondary (then tertiary)
coverage with what the earlier payers paid and adjusted, line by line, taken from the ledger.

Billing the next payer moves the earlier payer's patient responsibility on each service back from the patient to
insurance (a `transfer_to_secondary` entry on the service's account, caused by the new claim), so the patient is not
billed what the secondary may pay; the secondary's own 835 then pays, adjusts, and moves the final share to the
patient. The transfer follows the earlier payer's postings: a reversal or a replacement claim that changes its
patient responsibility brings the transfer up to date (`transfer_rows_for`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, lazyload

from billing import ledger
from billing.claim_parties import ascii_text, subscriber_person
from billing.claim_status import record_creation
from billing.claims import coverage_on, new_claim
from billing.encounters import get_encounter
from billing.ledger import REMITTANCE_SOURCE
from billing.models import Claim, ClaimLine, Coverage, Deposit, LedgerEntry, Patient, Payer
from billing.money import ZERO, total
from integrations.x12 import claim837 as x837
from tenants import audit

PAID = ("paid", "partially_paid")
ADJUSTMENT_KINDS = ("contractual_adjustment", "other_adjustment", "patient_responsibility")
TRANSFER_SOURCE = "cob"  # not a remittance's: reversing a payer's posting never reverses the transfer itself
CHUNK = 5000


@dataclass
class PriorPayer:
    """What one earlier payer did with a claim: the 837 loops 2320/2330 and each line's 2430."""

    other_payer: x837.OtherPayer
    lines: dict[int, x837.LineAdjudication] = field(default_factory=dict)  # service line id -> adjudication
    problems: list[str] = field(default_factory=list)


def build_secondary_claims(session: Session, claim_ids: list[int], *, practice_id: int | None = None) -> list[Claim]:
    """For each paid claim whose patient has a next-priority coverage on the date of service, the claim to that
    coverage (once). Returns the new claims, in draft, for the scrubber and the next submission."""
    created = []
    claims = []
    for start in range(0, len(claim_ids), CHUNK):
        chunk = claim_ids[start : start + CHUNK]
        claims += session.scalars(
            select(Claim).where(Claim.id.in_(chunk), Claim.status.in_(PAID)).options(lazyload(Claim.lines))
        ).all()
    # Most patients have one coverage: ask once which of them have another, instead of once per claim.
    patients = sorted({claim.patient_id for claim in claims})
    with_more: set[int] = set()
    for start in range(0, len(patients), CHUNK):
        chunk = patients[start : start + CHUNK]
        with_more.update(
            session.scalars(select(Coverage.patient_id).where(Coverage.patient_id.in_(chunk), Coverage.priority > 1))
        )
    for prior in claims:
        if prior.patient_id not in with_more:
            continue
        coverage = session.get(Coverage, prior.coverage_id)
        encounter = get_encounter(session, prior.encounter_id)
        following = coverage_on(session, prior.patient_id, encounter.date_of_service, priority=coverage.priority + 1)
        if following is None or prior.frequency_code != "1":
            continue
        exists = session.scalar(
            select(Claim.id).where(
                Claim.encounter_id == prior.encounter_id, Claim.coverage_id == following.id, Claim.frequency_code == "1"
            )
        )
        if exists is not None:
            continue
        lines = [cl.service_line for cl in prior.lines]
        claim = new_claim(session, encounter, following, lines, user_id=None)
        order = {2: "secondary", 3: "tertiary"}.get(following.priority, "next")
        record_creation(session, claim, source="remittance", user_id=None, reason=f"{order} to claim {prior.id}")
        audit.record(
            session, user_id=None, practice_id=practice_id, object_type="claim", object_id=claim.id,
            action="create", detail={"coordination_of_benefits": prior.id},
        )  # fmt: skip
        ledger.post_rows(session, transfer_rows_for(session, claim, following.priority))
        created.append(claim)
    return created


def transfer_rows_for(session: Session, claim: Claim, priority: int) -> list[dict]:
    """Ledger rows bringing the transfer to `claim` (billed to the coverage of `priority`) in line with the patient
    responsibility that the claims of the previous priority have in force on its services; [] when it already is."""
    services = {line.service_line_id: line for line in claim.lines}
    if not services or priority < 2:
        return []
    original = aliased(LedgerEntry)
    kind = func.coalesce(original.kind, LedgerEntry.kind)
    earlier = aliased(Claim)
    earlier_coverage = aliased(Coverage)
    target = dict(
        session.execute(
            select(LedgerEntry.service_line_id, func.sum(LedgerEntry.patient_delta))
            .outerjoin(original, original.id == LedgerEntry.reverses_entry_id)
            .join(earlier, earlier.id == LedgerEntry.claim_id)
            .join(earlier_coverage, earlier_coverage.id == earlier.coverage_id)
            .where(
                LedgerEntry.service_line_id.in_(services),
                earlier.encounter_id == claim.encounter_id,
                earlier_coverage.priority == priority - 1,
                kind == "patient_responsibility",
            )
            .group_by(LedgerEntry.service_line_id)
        ).all()
    )
    done = {
        service_line_id: (amount, count)
        for service_line_id, amount, count in session.execute(
            select(LedgerEntry.service_line_id, func.sum(LedgerEntry.amount), func.count())
            .where(LedgerEntry.claim_id == claim.id, LedgerEntry.kind == "transfer_to_secondary")
            .group_by(LedgerEntry.service_line_id)
        ).all()
    }
    rows = []
    order = {2: "secondary", 3: "tertiary"}.get(priority, "next")
    for service_line_id, line in services.items():
        transferred, count = done.get(service_line_id, (ZERO, 0))
        amount = (target.get(service_line_id) or ZERO) - transferred
        if not amount:
            continue
        rows.append(
            ledger.entry_row(
                service_line_id=service_line_id,
                claim_line_id=line.id,
                claim_id=claim.id,
                patient_id=claim.patient_id,
                kind="transfer_to_secondary",
                amount=amount,
                source_type=TRANSFER_SOURCE,
                source_id=f"claim:{claim.id}",
                posting_key=f"transfer:{line.id}:{count}",
                note=f"the earlier payer's patient responsibility is billed to the {order} payer (claim {claim.id})",
            )  # fmt: skip
        )
    return rows


def prior_payers(session: Session, claim: Claim) -> list[PriorPayer]:
    """The earlier payers of a secondary/tertiary claim, from the ledger postings of their claims."""
    coverage = session.get(Coverage, claim.coverage_id)
    if coverage.priority == 1:
        return []
    earlier = session.execute(
        select(Claim, Coverage)
        .join(Coverage, Coverage.id == Claim.coverage_id)
        .where(
            Claim.encounter_id == claim.encounter_id,
            Claim.frequency_code == "1",
            Coverage.priority < coverage.priority,
        )
        .order_by(Coverage.priority, Claim.id.desc())
    ).all()
    seen: set[int] = set()
    result = []
    for prior, prior_coverage in earlier:
        if prior_coverage.priority in seen:
            continue  # the latest claim to that payer
        seen.add(prior_coverage.priority)
        result.append(_prior_payer(session, claim, prior, prior_coverage))
    return result


def _net_entries(session: Session, claim_id: int) -> list[LedgerEntry]:
    reversed_ids = select(LedgerEntry.reverses_entry_id).where(LedgerEntry.reverses_entry_id.is_not(None))
    return list(
        session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.claim_id == claim_id,
                LedgerEntry.source_type == REMITTANCE_SOURCE,
                LedgerEntry.kind != "reversal",
                LedgerEntry.id.not_in(reversed_ids),
            )
        )
    )


def _prior_payer(session: Session, claim: Claim, prior: Claim, coverage: Coverage) -> PriorPayer:
    payer = session.get(Payer, prior.payer_id)
    patient = session.get(Patient, prior.patient_id)
    entries = _net_entries(session, prior.id)
    by_line: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_line[entry.claim_line_id].append(entry)
    deposit_ids = {int(e.source_id.split(":")[1]) for e in entries if e.source_id.startswith("deposit:")}
    dates = [
        d for d in session.scalars(select(Deposit.payment_date).where(Deposit.id.in_(deposit_ids))) if d is not None
    ]
    adjudicated: date | None = max(dates) if dates else None
    prior_lines = {
        cl.service_line_id: cl for cl in session.scalars(select(ClaimLine).where(ClaimLine.claim_id == prior.id))
    }
    problems: list[str] = []
    lines: dict[int, x837.LineAdjudication] = {}
    patient_liability = ZERO
    for claim_line in claim.lines:
        prior_line = prior_lines.get(claim_line.service_line_id)
        if prior_line is None:
            problems.append(f"line {claim_line.line_number} was not on claim {prior.id} to {payer.name}")
            continue
        posted = by_line.get(prior_line.id, [])
        paid = total(e.amount for e in posted if e.kind == "insurance_payment")
        sums: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for e in posted:
            if e.kind in ADJUSTMENT_KINDS:
                group = e.group_code or ("PR" if e.kind == "patient_responsibility" else "OA")
                sums[(group, e.reason_code or "45")] += e.amount
            elif e.kind == "transfer_to_secondary" and e.group_code:
                sums[(e.group_code, e.reason_code)] -= e.amount  # a later payer's denial (billing.posting)
        if coverage.priority > 1 and posted:
            # A later payer's own adjudication repeats its prior payers' (OA-23, a repeated CO-45): posting keeps only
            # what it took off the account, so the rest of the charge is reported as the prior payers' impact.
            gap = claim_line.charge - paid - total(sums.values())
            if gap > 0:
                sums[("OA", "23")] += gap
        adjustments = tuple((g, r, amount) for (g, r), amount in sums.items() if amount)
        patient_liability += total(a for (g, _r), a in sums.items() if g == "PR")
        if not posted:
            problems.append(f"{payer.name} has posted nothing for line {claim_line.line_number} of claim {prior.id}")
            continue
        if paid + total(a for _g, _r, a in adjustments) != claim_line.charge:
            problems.append(
                f"line {claim_line.line_number}: {payer.name} paid {paid} and adjusted "
                f"{total(a for _g, _r, a in adjustments)}, which does not account for the charge {claim_line.charge}"
            )
        service = claim_line.service_line
        lines[claim_line.service_line_id] = x837.LineAdjudication(
            payer_id=payer.payer_id,
            paid=paid,
            procedure_code=service.procedure_code,
            modifiers=tuple(service.modifiers or ()),
            units=service.units,
            adjustments=adjustments,
            adjudication_date=adjudicated,
        )
    if adjudicated is None:
        problems.append(f"no payment date from {payer.name} for claim {prior.id}")
    other = x837.OtherPayer(
        payer=x837.Payer(name=ascii_text(payer.name), payer_id=payer.payer_id,
                         claim_filing_indicator=payer.claim_filing_indicator),
        subscriber=x837.Subscriber(
            person=subscriber_person(coverage, patient),
            member_id=coverage.member_id,
            group_number=coverage.group_number,
        ),
        relationship_code=coverage.relationship_code,
        responsibility={1: "P", 2: "S", 3: "T"}[coverage.priority],
        paid=total(line.paid for line in lines.values()),
        adjudication_date=adjudicated,
        remaining_patient_liability=patient_liability,
    )  # fmt: skip
    return PriorPayer(other_payer=other, lines=lines, problems=problems)
