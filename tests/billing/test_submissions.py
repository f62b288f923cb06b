"""837P from the database: every scenario the practice produces validates with pyx12; control numbers only grow;
a claim pending in one submission is never put in another; transmission marks claims submitted."""

from __future__ import annotations

from sqlalchemy import select

from billing import claims as claim_service
from billing import submissions
from billing.claim_status import transition
from billing.models import Claim, ClaimStatusChange, Submission, SubmissionClaim
from integrations.x12.reader import parse_envelopes, read_segments
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.support.pyx12check import pyx12_errors


def _ready_claims(services, bp, encounter_ids):
    with services.db.tenant_session(bp.slug) as s:
        made = []
        for encounter_id in encounter_ids:
            for claim in claim_service.create_claims(s, bp.access, encounter_id):
                transition(s, claim, "ready", source="test")
                made.append(claim.id)
        s.commit()
        return made


def _prepare(services, bp, **kw):
    with services.db.tenant_session(bp.slug) as s:
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None, **kw)
        s.commit()
        return prepared


def test_every_scenario_validates_with_pyx12(services, factory, tmp_path):
    bp = billing_practice(services, factory)
    self_patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        from billing.models import Patient

        s.get(Patient, self_patient).last_name = "Müller-Øster"  # X12 is ASCII: written as Muller-Oster
        s.commit()
    child = insured_patient(services, bp, factory, relationship_code="19")
    encounters = [
        visit(services, bp, self_patient),
        visit(
            services,
            bp,
            child,
            diagnoses=[
                "J06.9",
                "R50.9",
                "E11.9",
                "I10",
                "Z00.129",
                "R05.9",
                "J02.9",
                "H66.90",
                "R11.10",
                "K59.00",
                "L30.9",
                "M54.50",
            ],
            lines=[
                {
                    "procedure_code": "99214",
                    "modifiers": ["25", "GT", "59", "XS"],
                    "units": 1,
                    "diagnosis_pointers": [1, 2, 3, 4],
                },
                {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [12]},
                {"procedure_code": "93000", "units": 2, "diagnosis_pointers": [5, 6], "place_of_service": "22"},
            ],
        ),  # fmt: skip
    ]
    claim_ids = _ready_claims(services, bp, encounters)
    prepared = _prepare(services, bp)
    assert prepared is not None and prepared.skipped == {}
    path = tmp_path / "batch.837"
    path.write_text(prepared.text)
    assert pyx12_errors(path) == []
    (interchange,) = parse_envelopes(read_segments(prepared.text))
    transaction = interchange.groups[0].transactions[0]
    clm = [seg for seg in transaction.segments if seg.id == "CLM"]
    assert [seg.elements[1] for seg in clm] == [str(c) for c in claim_ids]
    assert len([seg for seg in transaction.segments if seg.id == "PAT"]) == 1  # the dependent's patient loop
    assert "NM1*IL*1*Muller-Oster*" in prepared.text

    # Corrections of a claim the payer accepted: replacement (7) and void (8) with REF*F8.
    with services.db.tenant_session(bp.slug) as s:
        for claim_id in claim_ids:
            claim = s.get(Claim, claim_id)
            transition(s, claim, "submitted", source="test")
            transition(s, claim, "accepted", source="test")
            claim.payer_claim_number = f"PAYER{claim_id}"
        s.query(Submission).filter_by(id=prepared.submission.id).update({"status": "accepted"})
        replacement = claim_service.create_correction(s, bp.access, claim_ids[0], "7", "units")
        void = claim_service.create_correction(s, bp.access, claim_ids[1], "8", "wrong patient")
        for claim in (replacement, void):
            transition(s, claim, "ready", source="test")
        s.commit()
    corrections = _prepare(services, bp)
    assert corrections is not None
    path = tmp_path / "corrections.837"
    path.write_text(corrections.text)
    assert pyx12_errors(path) == []
    assert "REF*F8*PAYER" in corrections.text
    assert corrections.submission.interchange_control_number > prepared.submission.interchange_control_number
    assert corrections.submission.group_control_number > prepared.submission.group_control_number


def test_pending_claims_are_not_taken_twice_and_transmission_marks_them(services, factory):
    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    claim_ids = _ready_claims(services, bp, [visit(services, bp, patient), visit(services, bp, patient, days_ago=9)])
    first = _prepare(services, bp)
    assert first.submission.claim_count == 2
    assert _prepare(services, bp) is None  # both claims are reserved by the pending submission
    with services.db.tenant_session(bp.slug) as s:
        submission = s.get(Submission, first.submission.id)
        submissions.mark_failed(s, submission, "connection refused")
        s.commit()
    assert _prepare(services, bp) is None  # still reserved: a failed file is retried, not rebuilt
    with services.db.tenant_session(bp.slug) as s:
        submission = s.get(Submission, first.submission.id)
        assert submissions.mark_transmitted(s, submission, user_id=None) == claim_ids
        s.commit()
        assert {s.get(Claim, c).status for c in claim_ids} == {"submitted"}
        assert submission.attempts == 2 and submission.status == "transmitted"
        reasons = s.scalars(
            select(ClaimStatusChange.reason).where(
                ClaimStatusChange.claim_id == claim_ids[0], ClaimStatusChange.to_status == "submitted"
            )
        ).all()
        assert reasons == [f"sent in interchange {submission.interchange_control_number} ({submission.filename})"]
        links = s.scalars(select(SubmissionClaim).where(SubmissionClaim.submission_id == submission.id)).all()
        assert {link.claim_id for link in links} == set(claim_ids)


def test_claims_failing_the_scrubber_stay_behind(services, factory):
    bp = billing_practice(services, factory, timely_filing_days=30)
    patient = insured_patient(services, bp, factory)
    fresh, stale = visit(services, bp, patient), visit(services, bp, patient, days_ago=90)
    claim_ids = _ready_claims(services, bp, [fresh, stale])
    prepared = _prepare(services, bp)
    assert prepared.submission.claim_count == 1
    assert list(prepared.skipped) == [claim_ids[1]] and "filing limit" in prepared.skipped[claim_ids[1]]
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(Claim, claim_ids[1]).status == "scrubbed"
