"""The claim scrubber: a registry of named rules that catch what a payer would reject, each reporting the field at
fault. Rules can be switched off or downgraded to warnings per payer (practice_payers.scrub_overrides)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import codes
from billing.claim_status import transition
from billing.models import (
    BillingIdentity,
    Claim,
    ClaimLine,
    Coverage,
    Encounter,
    Patient,
    Payer,
    PracticePayer,
    Provider,
    ScrubFinding,
    ServiceLine,
)
from billing.money import total

BILLED_STATUSES = ("submitted", "acknowledged", "accepted", "paid", "partially_paid", "denied", "closed")


@dataclass(frozen=True)
class Finding:
    rule: str
    field: str
    message: str
    severity: str = "error"


@dataclass
class ClaimContext:
    """Everything the rules look at, loaded once per claim."""

    claim: Claim
    lines: list[tuple[ClaimLine, ServiceLine]]
    encounter: Encounter
    patient: Patient
    coverage: Coverage
    payer: Payer | None
    practice_payer: PracticePayer | None
    identity: BillingIdentity | None
    providers: dict[int, Provider]
    today: date
    # (patient, payer, date, code, provider, modifiers) -> ids of claims that already billed it
    billed: dict[tuple, set[int]] = field(default_factory=dict, repr=False)
    # For a secondary/tertiary claim: what the earlier payers paid and adjusted (billing.secondary.PriorPayer).
    prior_payers: list = field(default_factory=list, repr=False)


Rule = Callable[[ClaimContext], Iterator[Finding]]


@dataclass(frozen=True)
class RuleInfo:
    name: str
    description: str
    check: Rule


RULES: dict[str, RuleInfo] = {}


def rule(name: str, description: str):
    def register(fn: Rule) -> Rule:
        RULES[name] = RuleInfo(name, description, fn)
        return fn

    return register


@rule("billing_identity", "The practice's billing NPI, tax id and ZIP+4 address are complete")
def _billing_identity(ctx: ClaimContext):
    identity = ctx.identity
    if identity is None:
        yield Finding(
            "billing_identity", "billing_identity", "the practice has no billing identity (group NPI, tax id)"
        )
        return
    if not codes.tax_id_is_valid(identity.tax_id):
        yield Finding("billing_identity", "billing_identity.tax_id", f"not a 9-digit tax id: {identity.tax_id!r}")
    if len(identity.postal_code or "") != 9:
        yield Finding(
            "billing_identity", "billing_identity.postal_code", "the billing provider needs a ZIP+4 (9 digits)"
        )


@rule("npi_check_digit", "Billing and rendering NPIs pass the Luhn check digit")
def _npi(ctx: ClaimContext):
    if ctx.identity is not None and not codes.npi_is_valid(ctx.identity.group_npi):
        yield Finding("npi_check_digit", "billing_identity.group_npi", f"invalid NPI {ctx.identity.group_npi!r}")
    seen = set()
    for n, (_, line) in enumerate(ctx.lines, start=1):
        provider = ctx.providers.get(line.rendering_provider_id)
        if provider is None:
            yield Finding("npi_check_digit", f"lines[{n}].rendering_provider", "rendering provider not found")
        elif provider.id not in seen and not codes.npi_is_valid(provider.npi):
            seen.add(provider.id)
            yield Finding(
                "npi_check_digit",
                f"lines[{n}].rendering_provider.npi",
                f"invalid NPI {provider.npi!r} for {provider.first_name} {provider.last_name}",
            )


@rule("billable_diagnoses", "1-12 diagnoses, each a billable ICD-10-CM code")
def _diagnoses(ctx: ClaimContext):
    dx = ctx.encounter.diagnoses or []
    if not dx:
        yield Finding("billable_diagnoses", "diagnoses", "no diagnosis")
    if len(dx) > 12:
        yield Finding("billable_diagnoses", "diagnoses", f"{len(dx)} diagnoses; a claim carries at most 12")
    for i, code in enumerate(dx, start=1):
        problem = codes.icd10_problem(code)
        if problem:
            yield Finding("billable_diagnoses", f"diagnoses[{i}]", problem)


@rule("diagnosis_pointers", "Every line points to 1-4 distinct diagnoses of the claim")
def _pointers(ctx: ClaimContext):
    count = len(ctx.encounter.diagnoses or [])
    for n, (_, line) in enumerate(ctx.lines, start=1):
        pointers = list(line.diagnosis_pointers or [])
        where = f"lines[{n}].diagnosis_pointers"
        if not pointers:
            yield Finding("diagnosis_pointers", where, "the line points to no diagnosis")
        elif len(pointers) > 4:
            yield Finding("diagnosis_pointers", where, "at most 4 pointers per line")
        bad = [p for p in pointers if p < 1 or p > count]
        if bad:
            yield Finding("diagnosis_pointers", where, f"pointer(s) {bad} point to no diagnosis (claim has {count})")
        if len(set(pointers)) != len(pointers):
            yield Finding("diagnosis_pointers", where, "a pointer is repeated")


@rule("demographics", "Patient and subscriber name, birth date, sex and address; member id")
def _demographics(ctx: ClaimContext):
    p = ctx.patient
    for attr in ("first_name", "last_name", "date_of_birth", "sex", "address_line1", "city", "state", "postal_code"):
        if not getattr(p, attr):
            yield Finding("demographics", f"patient.{attr}", "missing")
    c = ctx.coverage
    if not (c.member_id or "").strip():
        yield Finding("demographics", "coverage.member_id", "missing")
    if c.relationship_code not in codes.RELATIONSHIPS:
        yield Finding("demographics", "coverage.relationship_code", f"unknown relationship {c.relationship_code!r}")
    if c.relationship_code != "18":
        for attr in (
            "subscriber_first_name",
            "subscriber_last_name",
            "subscriber_date_of_birth",
            "subscriber_sex",
            "subscriber_address_line1",
            "subscriber_city",
            "subscriber_state",
            "subscriber_postal_code",
        ):
            if not getattr(c, attr):
                yield Finding("demographics", f"coverage.{attr}", "missing (the subscriber is not the patient)")
    if ctx.payer is None or not ctx.payer.payer_id:
        yield Finding("demographics", "coverage.payer", "the payer has no clearinghouse payer id")


@rule("coverage_active", "The coverage is active on every date of service")
def _coverage_active(ctx: ClaimContext):
    c = ctx.coverage
    for n, (_, line) in enumerate(ctx.lines, start=1):
        dos = line.date_of_service
        if dos < c.effective_date or (c.end_date is not None and dos > c.end_date):
            period = f"{c.effective_date.isoformat()} to {c.end_date.isoformat() if c.end_date else 'open'}"
            yield Finding(
                "coverage_active",
                f"lines[{n}].date_of_service",
                f"{dos.isoformat()} is outside the coverage ({period})",
            )


@rule("no_future_dates", "No date of service in the future; the patient was born before the visit")
def _future(ctx: ClaimContext):
    for n, (_, line) in enumerate(ctx.lines, start=1):
        if line.date_of_service > ctx.today:
            yield Finding("no_future_dates", f"lines[{n}].date_of_service", f"{line.date_of_service} is in the future")
        if ctx.patient.date_of_birth and line.date_of_service < ctx.patient.date_of_birth:
            yield Finding("no_future_dates", f"lines[{n}].date_of_service", "before the patient's date of birth")


@rule("positive_amounts", "Units and charges are positive")
def _amounts(ctx: ClaimContext):
    for n, (claim_line, line) in enumerate(ctx.lines, start=1):
        if Decimal(line.units) <= 0:
            yield Finding("positive_amounts", f"lines[{n}].units", f"units must be positive, not {line.units}")
        if Decimal(claim_line.charge) <= 0:
            yield Finding("positive_amounts", f"lines[{n}].charge", f"charge must be positive, not {claim_line.charge}")


@rule("code_formats", "Procedure codes, modifiers and places of service are well formed")
def _formats(ctx: ClaimContext):
    if not codes.place_of_service_is_valid(ctx.encounter.place_of_service):
        yield Finding(
            "code_formats", "place_of_service", f"unknown place of service {ctx.encounter.place_of_service!r}"
        )
    for n, (_, line) in enumerate(ctx.lines, start=1):
        if not codes.procedure_code_is_valid(line.procedure_code):
            yield Finding(
                "code_formats", f"lines[{n}].procedure_code", f"not a CPT/HCPCS code: {line.procedure_code!r}"
            )
        mods = list(line.modifiers or [])
        if len(mods) > 4:
            yield Finding("code_formats", f"lines[{n}].modifiers", "at most 4 modifiers")
        for m in mods:
            if not codes.modifier_is_valid(m):
                yield Finding("code_formats", f"lines[{n}].modifiers", f"not a modifier: {m!r}")
        if not codes.place_of_service_is_valid(line.place_of_service):
            yield Finding(
                "code_formats", f"lines[{n}].place_of_service", f"unknown place of service {line.place_of_service!r}"
            )


@rule("total_matches_lines", "The claim total equals the sum of its lines")
def _total(ctx: ClaimContext):
    lines_total = total(cl.charge for cl, _ in ctx.lines)
    if Decimal(ctx.claim.total_charge) != lines_total:
        yield Finding(
            "total_matches_lines",
            "total_charge",
            f"total {ctx.claim.total_charge} but the lines add up to {lines_total}",
        )
    if not ctx.lines:
        yield Finding("total_matches_lines", "lines", "the claim has no lines")
    if len(ctx.lines) > 50:
        yield Finding("total_matches_lines", "lines", f"{len(ctx.lines)} lines; an 837P claim carries at most 50")


@rule("timely_filing", "Submitted within the payer's timely filing limit")
def _timely(ctx: ClaimContext):
    days = ctx.practice_payer.timely_filing_days if ctx.practice_payer else 365
    earliest = min((line.date_of_service for _, line in ctx.lines), default=ctx.today)
    deadline = earliest + timedelta(days=days)
    if ctx.today > deadline:
        yield Finding(
            "timely_filing",
            "date_of_service",
            f"service on {earliest} is past the payer's {days}-day filing limit (deadline {deadline})",
        )
    elif ctx.today > deadline - timedelta(days=14):
        yield Finding(
            "timely_filing", "date_of_service", f"the filing deadline is {deadline}: submit now", severity="warning"
        )


@rule("duplicate_claim", "No other claim already billed the same patient, date, code and provider")
def _duplicate(ctx: ClaimContext):
    if ctx.claim.frequency_code != "1":
        return
    for n, (_, line) in enumerate(ctx.lines, start=1):
        others = ctx.billed.get(_billed_key(ctx.claim.patient_id, ctx.claim.payer_id, line), set()) - {ctx.claim.id}
        if others:
            yield Finding(
                "duplicate_claim",
                f"lines[{n}]",
                f"{line.procedure_code} on {line.date_of_service} by this provider is already billed on claim "
                f"{min(others)}",
            )


def _billed_key(patient_id: int, payer_id: int, line: ServiceLine) -> tuple:
    return (
        patient_id,
        payer_id,
        line.date_of_service,
        line.procedure_code,
        line.rendering_provider_id,
        tuple(line.modifiers or ()),
    )


@rule("correction_reference", "Replacement and void claims carry the payer's claim number")
def _correction(ctx: ClaimContext):
    if ctx.claim.frequency_code in ("7", "8") and not ctx.claim.payer_claim_number:
        yield Finding("correction_reference", "payer_claim_number", "required for a replacement or void claim")


@rule("prior_payer_adjudication", "A secondary or tertiary claim carries the earlier payers' complete adjudication")
def _prior_payers(ctx: ClaimContext):
    if ctx.coverage.priority == 1:
        return
    if not ctx.prior_payers:
        yield Finding(
            "prior_payer_adjudication", "coverage.priority", "no claim to the earlier payer(s): bill the primary first"
        )
    for prior in ctx.prior_payers:
        for problem in prior.problems:
            yield Finding("prior_payer_adjudication", "other_payers", problem)


@rule("payer_enrolled", "The practice bills this payer")
def _payer_enrolled(ctx: ClaimContext):
    if ctx.practice_payer is None or not ctx.practice_payer.active:
        name = ctx.payer.name if ctx.payer else f"payer {ctx.claim.payer_id}"
        yield Finding("payer_enrolled", "payer", f"the practice is not set up to bill {name}")


def load_contexts(session: Session, claims: list[Claim], today: date) -> list[ClaimContext]:
    """Contexts for a batch of claims in a fixed number of queries, whatever the batch size."""
    if not claims:
        return []

    def by_id(model, ids):
        return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}

    patient_ids = {c.patient_id for c in claims}
    payer_ids = {c.payer_id for c in claims}
    encounters = by_id(Encounter, {c.encounter_id for c in claims})
    patients = by_id(Patient, patient_ids)
    coverages = by_id(Coverage, {c.coverage_id for c in claims})
    payers = by_id(Payer, payer_ids)
    provider_ids = {c.rendering_provider_id for c in claims} | {
        cl.service_line.rendering_provider_id for c in claims for cl in c.lines
    }
    providers = by_id(Provider, provider_ids)
    enrolments = {
        pp.payer_id: pp for pp in session.scalars(select(PracticePayer).where(PracticePayer.payer_id.in_(payer_ids)))
    }
    identity = session.get(BillingIdentity, 1)
    billed: dict[tuple, set[int]] = {}
    rows = session.execute(
        select(Claim.id, Claim.patient_id, Claim.payer_id, ServiceLine)
        .join(ClaimLine, ClaimLine.claim_id == Claim.id)
        .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
        .where(
            Claim.patient_id.in_(patient_ids),
            Claim.frequency_code == "1",
            Claim.status.in_(BILLED_STATUSES),
        )
    )
    for claim_id, patient_id, payer_id, line in rows:
        billed.setdefault(_billed_key(patient_id, payer_id, line), set()).add(claim_id)
    from billing.secondary import prior_payers  # secondary builds on posting, which builds on this module's peers

    return [
        ClaimContext(
            claim=claim,
            lines=[(cl, cl.service_line) for cl in claim.lines],
            encounter=encounters[claim.encounter_id],
            patient=patients[claim.patient_id],
            coverage=coverages[claim.coverage_id],
            payer=payers.get(claim.payer_id),
            practice_payer=enrolments.get(claim.payer_id),
            identity=identity,
            providers=providers,
            today=today,
            billed=billed,
            prior_payers=prior_payers(session, claim) if coverages[claim.coverage_id].priority > 1 else [],
        )
        for claim in claims
    ]


def run_rules(ctx: ClaimContext) -> list[Finding]:
    overrides = ctx.practice_payer.scrub_overrides if ctx.practice_payer else {}
    findings = []
    for info in RULES.values():
        setting = overrides.get(info.name)
        if setting == "off":
            continue
        for finding in info.check(ctx):
            if setting == "warning" and finding.severity == "error":
                finding = Finding(finding.rule, finding.field, finding.message, "warning")
            findings.append(finding)
    return findings


def scrub_claims(
    session: Session,
    claims: list[Claim],
    *,
    user_id: int | None,
    today: date | None = None,
    contexts: list[ClaimContext] | None = None,
) -> dict[int, list[Finding]]:
    """Run every rule on each claim, store the findings as a new run per claim, and move each claim to ready (no
    errors) or scrubbed. Callers that go on using the loaded rows pass their own `contexts`."""
    if contexts is None:
        contexts = load_contexts(session, claims, today or date.today())
    runs = dict(
        session.execute(
            select(ScrubFinding.claim_id, func.max(ScrubFinding.run))
            .where(ScrubFinding.claim_id.in_([c.id for c in claims]))
            .group_by(ScrubFinding.claim_id)
        ).all()
    )
    results: dict[int, list[Finding]] = {}
    for ctx in contexts:
        claim = ctx.claim
        findings = run_rules(ctx)
        run = runs.get(claim.id, 0) + 1
        for f in findings:
            session.add(
                ScrubFinding(
                    claim_id=claim.id, run=run, rule=f.rule, severity=f.severity, field=f.field, message=f.message
                )
            )
        errors = [f for f in findings if f.severity == "error"]
        target = "scrubbed" if errors else "ready"
        reason = f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s)" if findings else "clean"
        transition(session, claim, target, source="scrubber", user_id=user_id, reason=reason)
        results[claim.id] = findings
    session.flush()
    return results


def scrub_claim(session: Session, claim: Claim, *, user_id: int | None, today: date | None = None) -> list[Finding]:
    return scrub_claims(session, [claim], user_id=user_id, today=today)[claim.id]


def latest_findings(session: Session, claim_id: int) -> list[ScrubFinding]:
    run = session.scalar(select(func.max(ScrubFinding.run)).where(ScrubFinding.claim_id == claim_id))
    if run is None:
        return []
    return list(
        session.scalars(
            select(ScrubFinding)
            .where(ScrubFinding.claim_id == claim_id, ScrubFinding.run == run)
            .order_by(ScrubFinding.id)
        )
    )
