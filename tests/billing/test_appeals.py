"""Appeals end to end on real posted data: a denied claim (CO-50) gets an appeal letter (PDF in S3, its text read back
with pypdf: claim number, the denial reason in words, the biller's argument, the deadline from the payer's appeal
window), the outcome overturned takes back the denial adjustments, and the payer's new 835 paying the claim posts as
usual: the claim goes from denied to paid and its items are settled. Also: upheld puts items back in the queue,
underpayment letters carry the contract rate, templates are per practice, checked when saved, and sandboxed."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing import appeals, denials, ledger
from billing.models import Appeal, Claim, ClaimStatusChange, DenialItem, LedgerEntry, PracticePayer
from medbill.errors import Conflict, Invalid
from tests.billing.test_denials import denied_practice, items_of, post_835
from tests.billing.test_posting import _build

ARGUMENT = "The patient's HbA1c of 9.4 on the day of the visit required the ECG and the extended visit."


@pytest.fixture(scope="module")
def denied(services, factory, tmp_path_factory):
    d = denied_practice(services, factory, tmp_path_factory, st02="7101")
    with services.db.tenant_session(d.bp.slug) as s:
        s.execute(
            PracticePayer.__table__.update()
            .where(PracticePayer.payer_id == d.bp.payer_id)
            .values(appeal_window_days=90)
        )
        denials.sync(s)
        s.commit()
    return d


def pdf_text(data: bytes) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return re.sub(r"\s+", " ", text)


def test_denial_appeal_overturned_then_the_payment_posts(services, denied):
    slug, claim_id = denied.bp.slug, denied.medical_necessity_claim
    with services.db.tenant_session(slug) as s:
        first, second = items_of(s, claim_id)
        appeal = appeals.create_appeal(s, denied.bp.access, first.id, argument=ARGUMENT, storage=services.storage)
        s.commit()
        assert appeal.family == "medical_necessity" and appeal.template_source == "default"
        assert appeal.deadline == appeal.denial_date + timedelta(days=90)
        assert (first.status, second.status) == ("appealed", "appealed") and second.appeal_id == appeal.id
        payer_claim_number = s.get(Claim, claim_id).payer_claim_number
        with pytest.raises(Conflict):
            appeals.create_appeal(s, denied.bp.access, second.id, argument=ARGUMENT, storage=services.storage)
    text = pdf_text(services.storage.get(appeal.storage_key))
    assert f"Our claim number: {claim_id}" in text and payer_claim_number in text
    assert (
        "CO-50 (Contractual obligation): These are non-covered services because this is not deemed a 'medical" in text
    )
    assert ARGUMENT in text
    assert "Sunrise Family Practice" in text and "Acme Health Plan" in text
    assert appeal.deadline.strftime("%m/%d/%Y") in text
    assert appeal.storage_key.startswith(f"practices/{slug}/appeals/claim-{claim_id}/")

    with services.db.tenant_session(slug) as s:
        appeals.record_outcome(s, denied.bp.access, appeal.id, "overturned", "Reprocessing per the appeal desk")
        s.commit()
        with pytest.raises(Conflict):
            appeals.record_outcome(s, denied.bp.access, appeal.id, "upheld")
        claim = s.get(Claim, claim_id)
        assert claim.status == "denied"  # until the payer pays
        # The denial adjustments are taken back: insurance owes the claim again, awaiting the payment.
        assert ledger.claim_balance(s, claim_id).insurance == claim.total_charge
        assert {i.action for i in items_of(s, claim_id)} == {"appeal_overturned"}

    # The payer's new 835: the claim as the sandbox first paid it.
    paying = _build(denied.era, [denied.blocks[0]], st02="7102", trace="APPEALPAID")
    applied = post_835(services, denied.bp, paying, "era-7102.835")
    assert applied["claims_posted"] == 1
    with services.db.tenant_session(slug) as s:
        claim = s.get(Claim, claim_id)
        assert claim.status == "paid"
        last = s.scalar(
            select(ClaimStatusChange)
            .where(ClaimStatusChange.claim_id == claim_id)
            .order_by(ClaimStatusChange.id.desc())
        )
        assert (last.from_status, last.to_status, last.source) == ("denied", "paid", "835")
        balance = ledger.claim_balance(s, claim_id)
        clp = denied.blocks[0][0].split("*")
        assert balance.insurance == Decimal("0.00")
        assert (balance.payments, balance.patient) == (Decimal(clp[4]), Decimal(clp[5] or "0"))
        denials.sync(s)
        # The overturned items stay closed; a line the new 835 itself denies (the sandbox's own CO-29 on the second
        # line) is new work from the new remittance.
        by_status = {(i.remittance_claim_id == first.remittance_claim_id, i.status) for i in items_of(s, claim_id)}
        assert (True, "closed") in by_status and not {st for same, st in by_status if same} - {"closed"}
        assert all("CO-50" not in i.reason_codes for i in items_of(s, claim_id) if i.status == "open")
        saved = s.get(Appeal, appeal.id)
        assert saved.outcome == "overturned" and saved.outcome_by_user_id == denied.bp.access.user_id


def test_upheld_puts_the_items_back_in_the_queue(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        item = items_of(s, denied.line_denied_claim)[0]
        appeal = appeals.create_appeal(
            s, denied.bp.access, item.id, family="coding", argument="Billed as documented.", storage=services.storage
        )
        appeals.record_outcome(s, denied.bp.access, appeal.id, "upheld", "Payer stands by its decision")
        s.commit()
        s.refresh(item)
        assert item.status == "open" and appeal.outcome == "upheld"
        reversals = s.scalars(select(LedgerEntry).where(LedgerEntry.claim_line_id == item.claim_line_id,
                                                        LedgerEntry.kind == "reversal")).all()  # fmt: skip
        assert reversals == []
        assert "RE: Request for reconsideration - coding" in appeal.letter_text


def test_underpayment_letter_quotes_the_contract_rate(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        item = s.scalars(
            select(DenialItem).where(DenialItem.kind == "underpayment", DenialItem.status == "open")
        ).first()
        appeal = appeals.create_appeal(
            s, denied.bp.access, item.id, argument="Our 2026 contract sets this rate.", storage=services.storage
        )
        s.commit()
        assert appeal.family == "underpayment"
    text = pdf_text(services.storage.get(appeal.storage_key))
    assert f"contract rate ${item.expected_allowed:,.2f}" in text and f"short by ${item.amount:,.2f}" in text


def test_practice_template_is_used_checked_and_sandboxed(services, denied):
    access = denied.bp.access
    with services.db.tenant_session(denied.bp.slug) as s:
        body, source = appeals.get_template(s, "timely_filing")
        assert source == "default" and "{{ argument }}" in body
        with pytest.raises(Invalid) as unknown:
            appeals.put_template(s, access, "timely_filing", "Dear {{ payer.nmae }}")
        assert "nmae" in unknown.value.message
        with pytest.raises(Invalid):
            appeals.put_template(s, access, "timely_filing", "{% for x in %}")
        with pytest.raises(Invalid):
            appeals.put_template(s, access, "timely_filing", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
        with pytest.raises(Invalid):
            appeals.put_template(s, access, "no_such_family", "text")
        appeals.put_template(s, access, "timely_filing", "Claim {{ claim.number }} was filed on time. {{ argument }}")
        s.commit()
        assert appeals.get_template(s, "timely_filing")[1] == "practice"
        item = items_of(s, denied.line_co50_claim)[0]
        appeal = appeals.create_appeal(
            s, access, item.id, family="timely_filing", argument="Proof attached.", storage=services.storage
        )
        s.commit()
        assert appeal.template_source == "practice"
        assert appeal.letter_text.strip() == f"Claim {item.claim_id} was filed on time. Proof attached."
        appeals.reset_template(s, access, "timely_filing")
        s.commit()
        assert appeals.get_template(s, "timely_filing")[1] == "default"
