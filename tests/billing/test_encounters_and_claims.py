"""Charge entry, pricing, claims from encounters (split, move lines, corrections) and the status history."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import claims as claim_service
from billing import encounters
from billing.claim_status import transition
from billing.models import Claim, ClaimStatusChange, Encounter
from billing.pricing import allowed_for
from medbill.errors import Conflict, Invalid
from tests.billing.factories import billing_practice, insured_patient, npi, visit


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


def test_charges_are_priced_from_the_fee_schedule(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    encounter_id = visit(
        services,
        bp,
        patient,
        lines=[
            {"procedure_code": "99213", "units": 1, "diagnosis_pointers": [1]},
            {"procedure_code": "36415", "units": 2, "diagnosis_pointers": [2]},
            {"procedure_code": "93000", "units": 1, "diagnosis_pointers": [1], "charge": "95.50"},
        ],
    )
    with services.db.tenant_session(bp.slug) as s:
        lines = s.get(Encounter, encounter_id).lines
        assert [line.charge for line in lines] == [Decimal("150.00"), Decimal("50.00"), Decimal("95.50")]
        assert all(isinstance(line.charge, Decimal) for line in lines)


def test_allowed_amount_from_contract_rate_or_percentage(services, bp):
    with services.db.tenant_session(bp.slug) as s:
        on = date.today()
        assert allowed_for(s, bp.payer_id, "99213", [], Decimal("150.00"), Decimal(1), on) == Decimal("95.00")
        assert allowed_for(s, bp.payer_id, "99213", [], Decimal("300.00"), Decimal(2), on) == Decimal("190.00")
        assert allowed_for(s, bp.payer_id, "36415", [], Decimal("25.00"), Decimal(1), on) == Decimal("15.00")
        assert allowed_for(s, bp.payer_id, "99213", [], Decimal("150.00"), Decimal(1), date(2019, 1, 1)) is None


def test_charge_entry_reports_every_problem_by_field(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(Invalid) as caught:
            encounters.create_encounter(
                s,
                bp.access,
                {
                    "patient_id": patient,
                    "date_of_service": "2026-02-30",
                    "place_of_service": "77",
                    "rendering_provider_id": bp.provider_id,
                    "diagnoses": ["E11", "ZZZ.9", "I10"],
                    "lines": [
                        {"procedure_code": "9921", "modifiers": ["2"], "units": 0, "diagnosis_pointers": [4]},
                        {"procedure_code": "99499", "units": 1, "diagnosis_pointers": [1, 1]},
                    ],
                },
            )
        errors = caught.value.errors
        assert "date_of_service" in errors and "place_of_service" in errors
        assert "category" in errors["diagnoses[0]"][0] and "not an ICD-10-CM code" in errors["diagnoses[1]"][0]
        for key in ("lines[0].procedure_code", "lines[0].modifiers", "lines[0].units", "lines[0].diagnosis_pointers"):
            assert key in errors, key
        assert "no fee schedule entry for 99499" in errors["lines[1].charge"][0]
        assert "lines[1].diagnosis_pointers" in errors
        s.rollback()
        assert s.scalar(select(Encounter).where(Encounter.patient_id == patient)) is None


def test_claim_from_encounter_and_split_by_provider(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        from billing import setup

        other = setup.create_provider(
            s, bp.access, {"npi": npi(), "first_name": "Li", "last_name": "Wu", "taxonomy_code": "207R00000X"}
        )
        s.commit()
        other_id = other.id
    encounter_id = visit(
        services,
        bp,
        patient,
        lines=[
            {"procedure_code": "99213", "units": 1, "diagnosis_pointers": [1]},
            {"procedure_code": "93000", "units": 1, "diagnosis_pointers": [2], "rendering_provider_id": other_id},
            {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
        ],
    )
    with services.db.tenant_session(bp.slug) as s:
        made = claim_service.create_claims(s, bp.access, encounter_id, split="rendering_provider")
        s.commit()
        assert len(made) == 2
        by_provider = {c.rendering_provider_id: c for c in made}
        assert [cl.service_line.procedure_code for cl in by_provider[bp.provider_id].lines] == ["99213", "36415"]
        assert by_provider[bp.provider_id].total_charge == Decimal("175.00")
        assert by_provider[other_id].total_charge == Decimal("80.00")
        assert all(c.status == "draft" and c.patient_control_number == str(c.id) for c in made)
        with pytest.raises(Conflict):
            claim_service.create_claims(s, bp.access, encounter_id)

        # Move 36415 to the other claim: numbers and totals follow, both claims need scrubbing again.
        line = by_provider[bp.provider_id].lines[1]
        source, target = claim_service.move_line(s, bp.access, line.id, by_provider[other_id].id)
        s.commit()
        assert source.total_charge == Decimal("150.00") and [cl.line_number for cl in source.lines] == [1]
        assert target.total_charge == Decimal("105.00") and [cl.line_number for cl in target.lines] == [1, 2]
        with pytest.raises(Conflict, match="without lines"):
            claim_service.move_line(s, bp.access, source.lines[0].id, target.id)


def test_no_coverage_on_the_date_is_refused(services, factory, bp):
    patient = insured_patient(services, bp, factory, effective_date=date.today() - timedelta(days=2))
    encounter_id = visit(services, bp, patient, days_ago=10)
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(Invalid, match="no primary coverage active"):
            claim_service.create_claims(s, bp.access, encounter_id)


def test_status_machine_records_every_transition(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    encounter_id = visit(services, bp, patient)
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, encounter_id)
        transition(s, claim, "ready", source="user", user_id=bp.access.user_id, reason="checked by hand")
        with pytest.raises(Conflict, match="cannot become paid"):
            transition(s, claim, "paid", source="user")
        transition(s, claim, "submitted", source="submission")
        s.commit()
        history = list(
            s.scalars(select(ClaimStatusChange).where(ClaimStatusChange.claim_id == claim.id).order_by("id"))
        )
        assert [(h.from_status, h.to_status, h.source) for h in history] == [
            (None, "draft", "user"),
            ("draft", "ready", "user"),
            ("ready", "submitted", "submission"),
        ]
        assert history[1].user_id == bp.access.user_id and history[1].reason == "checked by hand"


def test_corrections_need_the_payer_claim_number(services, factory, bp):
    patient = insured_patient(services, bp, factory)
    encounter_id = visit(services, bp, patient)
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, encounter_id)
        with pytest.raises(Conflict, match="no payer claim number"):
            claim_service.create_correction(s, bp.access, claim.id, "7", "wrong units")
        for status in ("ready", "submitted", "accepted"):
            transition(s, claim, status, source="test")
        claim.payer_claim_number = "PCN-998877"
        replacement = claim_service.create_correction(s, bp.access, claim.id, "7", "wrong units")
        void = claim_service.create_correction(s, bp.access, claim.id, "8", "billed in error")
        s.commit()
        assert replacement.frequency_code == "7" and replacement.payer_claim_number == "PCN-998877"
        assert replacement.original_claim_id == claim.id and replacement.total_charge == claim.total_charge
        assert void.frequency_code == "8"
        assert s.scalar(select(Claim).where(Claim.id == replacement.id)).status == "draft"
