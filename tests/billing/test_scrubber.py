"""Every scrubber rule has a passing case (the clean claim) and a failing case naming the field at fault;
per-payer overrides switch a rule off or make it a warning."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from billing import claims as claim_service
from billing.models import (
    BillingIdentity,
    Claim,
    ClaimLine,
    Coverage,
    Encounter,
    Patient,
    PracticePayer,
    Provider,
    ServiceLine,
)
from billing.scrubber import RULES, latest_findings, scrub_claim
from tests.billing.factories import bad_npi, billing_practice, insured_patient, visit


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


def _claim(services, factory, bp, **visit_args) -> int:
    patient = insured_patient(services, bp, factory)
    encounter_id = visit(services, bp, patient, **visit_args)
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, encounter_id)
        s.commit()
        return claim.id


def _scrub(services, bp, claim_id, today=None):
    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, claim_id)
        findings = scrub_claim(s, claim, user_id=bp.access.user_id, today=today)
        s.commit()
        return claim.status, findings


def _first_line(s, claim_id) -> ServiceLine:
    claim = s.get(Claim, claim_id)
    return claim.lines[0].service_line


def _set(model, where, **values):
    def mutate(s, claim_id):
        s.execute(update(model).where(where(s, claim_id)).values(**values))

    return mutate


def _line_where(s, claim_id):
    return ServiceLine.id == _first_line(s, claim_id).id


def _claim_where(_s, claim_id):
    return Claim.id == claim_id


def _encounter_where(s, claim_id):
    return Encounter.id == s.get(Claim, claim_id).encounter_id


def _patient_where(s, claim_id):
    return Patient.id == s.get(Claim, claim_id).patient_id


def _coverage_where(s, claim_id):
    return Coverage.id == s.get(Claim, claim_id).coverage_id


def _provider_where(s, claim_id):
    return Provider.id == _first_line(s, claim_id).rendering_provider_id


def _drop_enrolment(s, claim_id):
    s.execute(
        update(PracticePayer).where(PracticePayer.payer_id == s.get(Claim, claim_id).payer_id).values(active=False)
    )


def _restore_enrolment(s, claim_id):
    s.execute(
        update(PracticePayer).where(PracticePayer.payer_id == s.get(Claim, claim_id).payer_id).values(active=True)
    )


def _duplicate(s, claim_id):
    """Another claim for the same patient, date, code and provider that was already submitted."""
    claim = s.get(Claim, claim_id)
    twin = Claim(
        encounter_id=claim.encounter_id,
        patient_id=claim.patient_id,
        coverage_id=claim.coverage_id,
        payer_id=claim.payer_id,
        rendering_provider_id=claim.rendering_provider_id,
        status="submitted",
        total_charge=claim.total_charge,
    )
    s.add(twin)
    s.flush()
    for cl in claim.lines:
        s.add(
            ClaimLine(
                claim_id=twin.id, service_line_id=cl.service_line_id, line_number=cl.line_number, charge=cl.charge
            )
        )


FAILURES = {
    "billing_identity": (
        _set(BillingIdentity, lambda s, c: BillingIdentity.id == 1, postal_code="78701"),
        "postal_code",
    ),
    "npi_check_digit": (_set(Provider, _provider_where, npi=bad_npi()), "rendering_provider.npi"),
    "billable_diagnoses": (_set(Encounter, _encounter_where, diagnoses=["E11", "I10"]), "diagnoses[1]"),
    "diagnosis_pointers": (_set(ServiceLine, _line_where, diagnosis_pointers=[1, 7]), "lines[1].diagnosis_pointers"),
    "demographics": (_set(Coverage, _coverage_where, member_id=" "), "coverage.member_id"),
    "coverage_active": (
        _set(Coverage, _coverage_where, effective_date=date.today() - timedelta(days=1)),
        "lines[1].date_of_service",
    ),
    "no_future_dates": (
        _set(ServiceLine, _line_where, date_of_service=date.today() + timedelta(days=3)),
        "lines[1].date_of_service",
    ),
    "positive_amounts": (_set(ServiceLine, _line_where, units=Decimal(0)), "lines[1].units"),
    "code_formats": (_set(ServiceLine, _line_where, modifiers=["2X", "x1"]), "lines[1].modifiers"),
    "total_matches_lines": (_set(Claim, _claim_where, total_charge=Decimal("1.00")), "total_charge"),
    "timely_filing": (
        _set(ServiceLine, _line_where, date_of_service=date.today() - timedelta(days=400)),
        "date_of_service",
    ),
    "duplicate_claim": (_duplicate, "lines[1]"),
    "correction_reference": (_set(Claim, _claim_where, frequency_code="7"), "payer_claim_number"),
    "payer_enrolled": (_drop_enrolment, "payer"),
    # A claim to a secondary coverage with no claim to the primary behind it.
    "prior_payer_adjudication": (_set(Coverage, _coverage_where, priority=2), "coverage.priority"),
}


def test_every_rule_has_a_failing_case():
    assert set(FAILURES) == set(RULES)


def test_clean_claim_passes_every_rule(services, factory, bp):
    claim_id = _claim(services, factory, bp)
    status, findings = _scrub(services, bp, claim_id)
    assert findings == [] and status == "ready"


@pytest.mark.parametrize("rule_name", sorted(FAILURES))
def test_rule_fails_and_names_the_field(services, factory, bp, rule_name):
    claim_id = _claim(services, factory, bp)
    mutate, field = FAILURES[rule_name]
    with services.db.tenant_session(bp.slug) as s:
        mutate(s, claim_id)
        s.commit()
    try:
        status, findings = _scrub(services, bp, claim_id)
        mine = [f for f in findings if f.rule == rule_name]
        assert mine, (rule_name, findings)
        assert any(f.field == field or f.field.endswith(field) for f in mine), mine
        assert all(f.message for f in mine)
        assert status == "scrubbed"
        with services.db.tenant_session(bp.slug) as s:
            stored = latest_findings(s, claim_id)
            assert {(f.rule, f.field) for f in stored} >= {(f.rule, f.field) for f in mine}
    finally:
        with services.db.tenant_session(bp.slug) as s:
            if rule_name == "payer_enrolled":
                _restore_enrolment(s, claim_id)
            if rule_name == "npi_check_digit":
                s.execute(update(Provider).where(Provider.id == bp.provider_id).values(npi=bp.provider_npi))
            if rule_name == "billing_identity":
                s.execute(update(BillingIdentity).values(postal_code="787011234"))
            s.commit()


def test_per_payer_override_turns_a_rule_off_or_into_a_warning(services, factory, bp):
    claim_id = _claim(services, factory, bp)
    with services.db.tenant_session(bp.slug) as s:
        _set(ServiceLine, _line_where, date_of_service=date.today() - timedelta(days=400))(s, claim_id)
        s.execute(update(PracticePayer).values(scrub_overrides={"timely_filing": "warning"}))
        s.commit()
    try:
        status, findings = _scrub(services, bp, claim_id)
        assert [(f.rule, f.severity) for f in findings] == [("timely_filing", "warning")], findings
        assert status == "ready"
        with services.db.tenant_session(bp.slug) as s:
            s.execute(update(PracticePayer).values(scrub_overrides={"timely_filing": "off"}))
            s.commit()
        status, findings = _scrub(services, bp, claim_id)
        assert status == "ready" and findings == []
    finally:
        with services.db.tenant_session(bp.slug) as s:
            s.execute(update(PracticePayer).values(scrub_overrides={}))
            s.commit()


def test_timely_filing_warns_near_the_deadline(services, factory, bp):
    claim_id = _claim(services, factory, bp, days_ago=360)
    status, findings = _scrub(services, bp, claim_id)
    assert status == "ready"
    assert [(f.rule, f.severity) for f in findings] == [("timely_filing", "warning")]
