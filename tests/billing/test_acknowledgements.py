"""999 and 277CA intake: files answered by the sandbox for two practices of one company sharing a mailbox are
routed to the right practice, applied once, and a malformed file is refused whole, naming the segment."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing import claims as claim_service
from billing import submissions
from billing.claim_status import transition
from billing.edi_intake import intake
from billing.models import Claim, ClaimAcknowledgement, InboundFile, Submission
from integrations.sandbox import SandboxConfig, process_inbox_once
from medbill.errors import Invalid
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import X12_FIXTURES


def _submit(services, bp, patients) -> list[int]:
    with services.db.tenant_session(bp.slug) as s:
        ids = []
        for patient in patients:
            for claim in claim_service.create_claims(s, bp.access, visit(services, bp, patient)):
                transition(s, claim, "ready", source="test")
                ids.append(claim.id)
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
        return ids, prepared


@pytest.fixture(scope="module")
def answered(services, factory, tmp_path_factory):
    """Two practices of one company, each with a submitted batch; the sandbox's answers on disk."""
    first = billing_practice(services, factory)
    company = type("C", (), {"slug": first.company_slug})
    from tenants.models import BillingCompany

    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == first.company_slug))
    second = billing_practice(services, factory, company=company)
    root = tmp_path_factory.mktemp("sandbox")
    config = SandboxConfig(root=root)
    inbox = root / "shared" / "inbox"
    inbox.mkdir(parents=True)
    claims = {}
    for bp in (first, second):
        good = insured_patient(services, bp, factory)
        unknown = insured_patient(services, bp, factory, member_id="UNK0001")
        ids, prepared = _submit(services, bp, [good, unknown])
        claims[bp.slug] = ids
        (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(config)
    outbox = root / "shared" / "outbox"
    return first, second, claims, outbox, company


def test_answers_route_to_their_practice_and_apply_once(services, answered):
    first, second, claims, outbox, company = answered
    slugs = [first.slug, second.slug]
    files = sorted(outbox.glob("*.999")) + sorted(outbox.glob("*.277ca"))
    assert len(files) == 4
    for path in files:
        report = intake(services.db, path.read_bytes(), storage_key=f"test/{path.name}", slugs=slugs)
        assert report.unmatched == [] and report.duplicates == []
        assert len({entry["practice"] for entry in report.applied}) == 1
    for bp in (first, second):
        good, unknown = claims[bp.slug]
        with services.db.tenant_session(bp.slug) as s:
            assert s.get(Claim, good).status == "accepted" and s.get(Claim, good).payer_claim_number
            assert s.get(Claim, unknown).status == "rejected"
            assert s.scalar(select(Submission)).status == "accepted"
            reasons = s.scalar(select(ClaimAcknowledgement.reasons).where(ClaimAcknowledgement.claim_id == unknown))
            assert any("A7" in r for r in reasons), reasons
    # The same files again: recognised, nothing applied twice.
    for path in files:
        report = intake(services.db, path.read_bytes(), storage_key=f"test/{path.name}", slugs=slugs)
        assert report.applied == [] and len(report.duplicates) >= 1
    with services.db.tenant_session(first.slug) as s:
        assert s.query(ClaimAcknowledgement).count() == 2


def test_a_practice_never_takes_another_practices_answer(services, answered):
    first, second, _claims, outbox, _company = answered
    for path in sorted(outbox.glob("*.277ca")):
        report = intake(services.db, path.read_bytes(), storage_key="x", slugs=[first.slug])
        if report.applied:
            assert {entry["practice"] for entry in report.applied} == {first.slug}
        else:
            assert report.unmatched or report.duplicates


@pytest.mark.parametrize(
    "damage, expect",
    [
        (lambda t: t[: len(t) // 2], "SE"),  # truncated
        (lambda t: t.replace("SE*", "SE*99", 1), "SE"),  # wrong segment count
        (lambda t: t.replace("TRN*2*", "TRX*2*", 1), "segment"),  # a claim without its TRN
    ],
)
def test_malformed_files_are_refused_whole(services, answered, damage, expect):
    first, second, _claims, outbox, _company = answered
    before = {}
    for bp in (first, second):
        with services.db.tenant_session(bp.slug) as s:
            before[bp.slug] = (s.query(InboundFile).count(), s.query(ClaimAcknowledgement).count())
    text = next(outbox.glob("*.277ca")).read_text()
    with pytest.raises(Invalid) as caught:
        intake(services.db, damage(text).encode(), storage_key="bad", slugs=[first.slug, second.slug])
    assert expect in caught.value.message and "segment" in caught.value.message
    for bp in (first, second):
        with services.db.tenant_session(bp.slug) as s:
            assert (s.query(InboundFile).count(), s.query(ClaimAcknowledgement).count()) == before[bp.slug]


def test_unsupported_and_unreadable_files(services, answered):
    first, *_ = answered
    with pytest.raises(Invalid, match="not a readable X12 file"):
        intake(services.db, b"hello, not edi", storage_key="x", slugs=[first.slug])
    claim_file = X12_FIXTURES / "837p" / "badX12__X222-commercial-health-insurance.edi"
    with pytest.raises(Invalid, match="unsupported transaction set"):
        intake(services.db, claim_file.read_bytes(), storage_key="x", slugs=[first.slug])
