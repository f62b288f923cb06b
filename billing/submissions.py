"""Submissions: gather the practice's ready claims, scrub them once more, build the 837P interchange with control
numbers that only ever increase, and track transmission. A claim is in at most one untransmitted submission, and
a failed transmission is retried with the same file, so no claim is ever sent twice."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing import ledger
from billing.claim_parties import address, ascii_text, patient_person, rendering_provider, subscriber_person
from billing.claim_status import transition
from billing.models import (
    BillingIdentity,
    Claim,
    ControlCounter,
    ScrubFinding,
    Submission,
    SubmissionClaim,
)
from billing.money import total
from billing.scrubber import ClaimContext, load_contexts, scrub_claims
from integrations.x12 import claim837 as x837
from medbill.errors import Invalid, NotFound

PENDING = ("created", "failed")
MAX_CLAIMS_PER_TRANSACTION = 5000


@dataclass(frozen=True)
class PreparedSubmission:
    submission: Submission
    text: str
    skipped: dict[int, str]  # claim id -> why it did not go out


def next_control_numbers(session: Session, name: str, count: int = 1) -> int:
    """Reserve `count` numbers from a per-practice counter; returns the first. Rolls back with the transaction."""
    value = session.scalar(
        insert(ControlCounter)
        .values(name=name, value=count)
        .on_conflict_do_update(index_elements=["name"], set_={"value": ControlCounter.value + count})
        .returning(ControlCounter.value)
    )
    if value > 999_999_999:
        raise Invalid(f"control number {name} is exhausted", errors={"control_numbers": [name]})
    return value - count + 1


def identity_for_submission(session: Session) -> BillingIdentity:
    identity = session.get(BillingIdentity, 1)
    if identity is None:
        raise NotFound("the practice has no billing identity yet")
    if not (identity.clearinghouse_name and identity.submitter_id and identity.receiver_id):
        raise Invalid(
            "the practice's clearinghouse is not configured",
            errors={"billing_identity": ["clearinghouse_name, submitter_id and receiver_id are required"]},
        )
    return identity


def _claim_837(ctx: ClaimContext) -> x837.Claim:
    claim, patient, coverage, payer, encounter = ctx.claim, ctx.patient, ctx.coverage, ctx.payer, ctx.encounter
    providers = ctx.providers
    dependent = None if coverage.relationship_code == "18" else patient_person(patient)
    claim_provider = providers[claim.rendering_provider_id]
    lines = []
    for claim_line in claim.lines:
        line = claim_line.service_line
        lines.append(
            x837.ServiceLine(
                line_item_control_number=str(claim_line.id),
                procedure_code=line.procedure_code,
                charge=claim_line.charge,
                units=line.units,
                date_of_service=line.date_of_service,
                diagnosis_pointers=tuple(line.diagnosis_pointers),
                modifiers=tuple(line.modifiers or ()),
                place_of_service=line.place_of_service if line.place_of_service != encounter.place_of_service else None,
                rendering_provider=(
                    rendering_provider(providers[line.rendering_provider_id])
                    if line.rendering_provider_id != claim.rendering_provider_id
                    else None
                ),
                adjudications=tuple(p.lines[line.id] for p in ctx.prior_payers if line.id in p.lines),
            )
        )
    payer_address = (
        address(payer.address_line1, payer.city, payer.state, payer.postal_code) if payer.address_line1 else None
    )
    return x837.Claim(
        patient_control_number=claim.patient_control_number,
        total_charge=claim.total_charge,
        place_of_service=encounter.place_of_service,
        diagnoses=tuple(encounter.diagnoses),
        subscriber=x837.Subscriber(
            person=subscriber_person(coverage, patient),
            member_id=coverage.member_id,
            group_number=coverage.group_number,
        ),
        payer=x837.Payer(
            name=ascii_text(payer.name),
            payer_id=payer.payer_id,
            claim_filing_indicator=payer.claim_filing_indicator,
            address=payer_address,
        ),
        lines=tuple(lines),
        relationship_code=coverage.relationship_code,
        patient=dependent,
        payer_responsibility={1: "P", 2: "S", 3: "T"}[coverage.priority],
        frequency_code=claim.frequency_code,
        payer_claim_number=claim.payer_claim_number,
        rendering_provider=rendering_provider(claim_provider),
        other_payers=tuple(p.other_payer for p in ctx.prior_payers),
    )


def billing_provider(identity: BillingIdentity) -> x837.BillingProvider:
    pay_to = None
    if identity.pay_to_address_line1:
        pay_to = address(
            identity.pay_to_address_line1, identity.pay_to_city, identity.pay_to_state, identity.pay_to_postal_code
        )
    return x837.BillingProvider(
        organization_name=ascii_text(identity.organization_name),
        npi=identity.group_npi,
        tax_id=identity.tax_id,
        address=address(
            identity.address_line1, identity.city, identity.state, identity.postal_code, identity.address_line2
        ),
        taxonomy_code=identity.taxonomy_code,
        pay_to_address=pay_to,
    )


def prepare_submission(
    session: Session,
    *,
    practice_slug: str,
    user_id: int | None,
    claim_ids: list[int] | None = None,
    now: datetime | None = None,
    today: date | None = None,
) -> PreparedSubmission | None:
    """Build the next submission from ready claims not already in a pending one; None when nothing is ready.
    Claims are locked (SKIP LOCKED) so two concurrent runs never take the same claim."""
    identity = identity_for_submission(session)
    now = now or datetime.now(UTC)
    pending = select(SubmissionClaim.claim_id).join(Submission).where(Submission.status.in_(PENDING))
    stmt = (
        select(Claim)
        .where(Claim.status == "ready", Claim.id.not_in(pending))
        .order_by(Claim.id)
        .with_for_update(skip_locked=True)
    )
    if claim_ids:
        stmt = stmt.where(Claim.id.in_(claim_ids))
    candidates = list(session.scalars(stmt))
    skipped: dict[int, str] = {}
    claims: list[Claim] = []
    # One batch: the scrubber loads patients, coverages, payers and encounters for all claims at once, and the
    # 837 builder below then finds them in the session's identity map.
    contexts = load_contexts(session, candidates, today or date.today())
    scrubbed = scrub_claims(session, candidates, user_id=user_id, contexts=contexts)
    for claim in candidates:
        findings = scrubbed[claim.id]
        if claim.status != "ready":
            errors = [f"{f.field}: {f.message}" for f in findings if f.severity == "error"]
            skipped[claim.id] = "; ".join(errors)
        else:
            claims.append(claim)
    ready = {claim.id for claim in claims}
    built: list[tuple[Claim, x837.Claim]] = []
    for ctx in contexts:
        if ctx.claim.id in ready:
            try:
                built.append((ctx.claim, _claim_837(ctx)))
            except (ValueError, KeyError, TypeError) as exc:
                # Only the exception's class: its text may carry a patient's data.
                skipped[ctx.claim.id] = _hold_back(
                    session, ctx.claim, "claim", f"the claim could not be built ({type(exc).__name__})", user_id
                )
    if not built:
        return None
    transactions = -(-len(built) // MAX_CLAIMS_PER_TRANSACTION)
    channel = identity.clearinghouse_name
    isa = next_control_numbers(session, f"isa:{channel}")
    # Unique across practices (one shared sequence), increasing within each: a 999 names only this number.
    gs = session.scalar(text("SELECT nextval('shared.group_control_numbers')"))
    st = next_control_numbers(session, f"st:{channel}", transactions)
    interchange = x837.Interchange837(
        submitter=x837.Submitter(
            name=identity.organization_name,
            identifier=identity.submitter_id,
            contact_name=identity.contact_name,
            contact_phone=identity.contact_phone,
            contact_email=identity.contact_email,
        ),
        receiver=x837.Receiver(name=identity.clearinghouse_name, identifier=identity.receiver_id),
        billing_provider=billing_provider(identity),
        claims=tuple(c for _, c in built),
        interchange_control_number=isa,
        group_control_number=gs,
        first_transaction_control_number=st,
        created_at=now,
        usage_indicator=identity.usage_indicator,
        max_claims_per_transaction=MAX_CLAIMS_PER_TRANSACTION,
    )
    try:
        x12_text = x837.write_837p(interchange)
    except ValueError:
        # One bad claim must not stop the practice's batch: the claims the writer refuses are held back with a
        # finding and the rest are written. Looked for only after a refusal, so a clean batch is written once.
        problems = {claim.id: p for claim, c in built if (p := x837.claim_problem(interchange, c)) is not None}
        if not problems:
            raise  # the envelope or the billing provider: the practice's identity, not one claim
        for claim, _ in built:
            if claim.id in problems:
                skipped[claim.id] = _hold_back(session, claim, *_where(problems[claim.id]), user_id)
        built = [(claim, c) for claim, c in built if claim.id not in problems]
        if not built:
            return None  # the numbers reserved above stay unused: they only have to increase
        interchange = replace(interchange, claims=tuple(c for _, c in built))
        x12_text = x837.write_837p(interchange)
    claims = [claim for claim, _ in built]
    filename = f"{practice_slug}-{isa:09d}.837"
    submission = Submission(
        clearinghouse_name=channel,
        interchange_control_number=isa,
        group_control_number=gs,
        filename=filename,
        storage_key="",  # set by the caller once the file is stored
        file_sha256=hashlib.sha256(x12_text.encode()).hexdigest(),
        claim_count=len(claims),
        total_charge=total(c.total_charge for c in claims),
        created_by_user_id=user_id,
        created_at=now,  # the file's own date (ISA/GS): its charges are billed on it
    )
    session.add(submission)
    session.flush()
    for index, claim in enumerate(claims):
        session.add(
            SubmissionClaim(
                submission_id=submission.id,
                claim_id=claim.id,
                transaction_control_number=f"{st + index // MAX_CLAIMS_PER_TRANSACTION:04d}",
            )
        )
    session.flush()
    return PreparedSubmission(submission, x12_text, skipped)


WRITER_HINT = "the claim file cannot carry it; check names and addresses for * ~ : ^ and the claim's amounts"


def _where(problem: str) -> tuple[str, str]:
    """(field, message) of a finding from the writer's refusal ("claim 'PCN1': NM103: the value contains ...")."""
    parts = problem.split(": ")
    field = parts[-2] if len(parts) >= 2 else "claim"
    return field[:100], f"{parts[-1]} ({WRITER_HINT})"


def _hold_back(session: Session, claim: Claim, field: str, message: str, user_id: int | None) -> str:
    """Keep `claim` out of this file: an error finding in its latest scrub run and back to scrubbed, where the
    biller sees why. Returns the reason for the submission's skipped list."""
    run = session.scalar(select(func.max(ScrubFinding.run)).where(ScrubFinding.claim_id == claim.id)) or 1
    session.add(
        ScrubFinding(claim_id=claim.id, run=run, rule="x12_writable", severity="error", field=field, message=message)
    )
    transition(session, claim, "scrubbed", source="submission", user_id=user_id, reason="refused by the 837P writer")
    session.flush()
    return f"{field}: {message}"


def pending_submissions(session: Session) -> list[Submission]:
    return list(
        session.scalars(
            select(Submission).where(Submission.status.in_(PENDING)).order_by(Submission.id).with_for_update()
        )
    )


def mark_transmitted(
    session: Session, submission: Submission, *, user_id: int | None, now: datetime | None = None
) -> list[int]:
    """The file reached the clearinghouse (at `now`, default the present): its claims are submitted."""
    submission.status = "transmitted"
    submission.transmitted_at = now or datetime.now(UTC)
    submission.attempts += 1
    submission.last_error = ""
    claim_ids = list(
        session.scalars(select(SubmissionClaim.claim_id).where(SubmissionClaim.submission_id == submission.id))
    )
    charges: list[dict] = []
    for claim in session.scalars(select(Claim).where(Claim.id.in_(claim_ids)).with_for_update()):
        if claim.status == "ready":
            transition(
                session,
                claim,
                "submitted",
                source="submission",
                user_id=user_id,
                reason=f"sent in interchange {submission.interchange_control_number} ({submission.filename})",
            )
            claim.submitted_at = submission.transmitted_at
            charges += _charge_rows(claim, submission)
    # A/R shows billed charges from the moment they are sent: one charge per service, whichever claim bills it first
    # (a secondary or a replacement claim finds the key taken and charges nothing again).
    ledger.post_rows(session, charges)
    return claim_ids


def _charge_rows(claim: Claim, submission: Submission) -> list[dict]:
    return [
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
            note=f"billed in interchange {submission.interchange_control_number}",
            posted_on=submission.created_at.date(),
        )  # fmt: skip
        for line in claim.lines
    ]


def mark_failed(session: Session, submission: Submission, error: str) -> None:
    """The claims stay ready and reserved for this submission's file, which is sent again on retry."""
    submission.status = "failed"
    submission.attempts += 1
    submission.last_error = error[:2000]
