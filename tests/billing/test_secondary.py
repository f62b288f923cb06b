"""Coordination of benefits: after the primary's 835 posts, a secondary claim is built for the patient's second
coverage, carries the primary's payment and adjustments line by line, scrubs clean and validates with pyx12."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from billing import claims as claim_service
from billing import setup, submissions
from billing.claim_status import transition
from billing.edi_intake import intake
from billing.models import Claim, Coverage
from billing.scrubber import scrub_claim
from billing.secondary import build_secondary_claims
from integrations.sandbox import SandboxConfig, process_inbox_once
from integrations.x12.reader import read_segments
from tests.billing.factories import billing_practice, insured_patient, shared_payer, visit
from tests.support.pyx12check import pyx12_errors


def test_secondary_claim_after_the_primary_pays(services, factory, tmp_path):
    bp = billing_practice(services, factory)
    secondary_payer = shared_payer(services, name="Second Health Plan")
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        setup.enroll_payer(s, bp.access, secondary_payer.id, {})
        setup.add_coverage(
            s, bp.access, patient,
            {"payer_id": secondary_payer.id, "priority": 2, "member_id": "SEC123456", "relationship_code": "18",
             "effective_date": date(2020, 1, 1)},
        )  # fmt: skip
        s.commit()
        (primary,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        transition(s, primary, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
        primary_id = primary.id
    inbox = tmp_path / "acct" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(SandboxConfig(root=tmp_path))
    outbox = tmp_path / "acct" / "outbox"
    for path in sorted(outbox.glob("*.999")) + sorted(outbox.glob("*.277ca")) + sorted(outbox.glob("*.835")):
        intake(services.db, path.read_bytes(), storage_key=f"test/{path.name}", slugs=[bp.slug])

    with services.db.tenant_session(bp.slug) as s:
        primary = s.get(Claim, primary_id)
        assert primary.status in ("paid", "partially_paid")
        # Posting the primary's payment built the secondary claim, scrubbed and ready; building again adds none.
        secondary = s.scalar(select(Claim).where(Claim.encounter_id == primary.encounter_id, Claim.id != primary_id))
        assert build_secondary_claims(s, [primary_id]) == []
        coverage = s.get(Coverage, secondary.coverage_id)
        assert coverage.priority == 2 and secondary.payer_id == secondary_payer.id
        assert secondary.status == "ready"
        assert not [f for f in scrub_claim(s, secondary, user_id=None) if f.severity == "error"]
        s.commit()
        cob = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        s.commit()
    assert cob is not None and cob.submission.claim_count == 1
    path = tmp_path / "secondary.837"
    path.write_text(cob.text)
    assert pyx12_errors(path) == []
    segments = [seg.id for seg in read_segments(cob.text)]
    assert "SVD" in segments and "OI" in segments and segments.count("NM1") >= 6
    sbr = [seg for seg in read_segments(cob.text) if seg.id == "SBR"]
    assert [seg.elements[1] for seg in sbr] == ["S", "P"]  # the claim's own payer, then the primary in 2320
