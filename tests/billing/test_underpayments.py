"""Underpayments: the sandbox allows 62 % of billed; the practice's contract allows more for 99214 (those lines are
flagged with the expected and paid amounts) and less for 36415 (not flagged); codes without a rate are not compared,
denied lines neither; a retried check adds nothing; the tolerance comes from the enrolment or the default."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from billing import claims as claim_service
from billing import setup, submissions, underpayments
from billing.claim_status import transition
from billing.edi_intake import intake
from billing.models import Claim, Underpayment
from integrations.sandbox import SandboxConfig, process_inbox_once
from integrations.x12.remit835 import ServicePayment, parse_835
from medbill.errors import Conflict, NotFound
from tests.billing.factories import billing_practice, insured_patient, visit

VISIT = [
    {"procedure_code": "99214", "units": 1, "diagnosis_pointers": [1, 2]},
    {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
    {"procedure_code": "93000", "units": 1, "diagnosis_pointers": [2]},
]
# The contract in force from 2021 (the factory's is from 2020): 99214 above the sandbox's 62 % of 210.00 (130.20),
# 36415 below its 62 % of 25.00 (15.50), no rate and no percentage for anything else.
RATES = {"99214": Decimal("200.00"), "36415": Decimal("10.00")}


def submit_and_answer(services, bp, factory, root: Path, *, visits: int = 3, lines=VISIT) -> tuple[list[int], str]:
    """Claims of `visits` patients sent to a sandbox under `root`, its 999 and 277CA applied; (claim ids, 835 text)."""
    claim_ids = []
    with services.db.tenant_session(bp.slug) as s:
        for _ in range(visits):
            patient = insured_patient(services, bp, factory)
            for claim in claim_service.create_claims(s, bp.access, visit(services, bp, patient, lines=lines)):
                transition(s, claim, "ready", source="test")
                claim_ids.append(claim.id)
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
    inbox = root / "acct" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(SandboxConfig(root=root))
    outbox = root / "acct" / "outbox"
    for path in sorted(outbox.glob("*.999")) + sorted(outbox.glob("*.277ca")):
        intake(services.db, path.read_bytes(), storage_key=f"test/{path.name}", slugs=[bp.slug])
    (era,) = sorted(outbox.glob("*.835"))
    return claim_ids, era.read_text()


def _denied(svc: ServicePayment) -> bool:
    return svc.paid == 0 and any(a.group == "CO" and a.reason != "45" for a in svc.adjustments)


def _expected_flags(text: str) -> dict[int, tuple[Decimal, Decimal, Decimal]]:
    """line id -> (expected, paid, patient responsibility) for the lines that must be flagged."""
    out = {}
    for clp in parse_835(text)[0].claims:
        for svc in clp.lines:
            allowed = RATES.get(svc.procedure_code)
            if allowed is None or _denied(svc):
                continue
            pr = sum((a.amount for a in svc.adjustments if a.group == "PR"), Decimal(0))
            if allowed - (svc.paid + pr) > max(Decimal("1.00"), allowed / 100):
                out[int(svc.line_item_control_number)] = (allowed, svc.paid, pr)
    return out


@pytest.fixture(scope="module")
def posted(services, factory, tmp_path_factory):
    bp = billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        setup.create_contract(
            s,
            bp.access,
            {
                "payer_id": bp.payer_id,
                "name": "Acme 2021",
                "effective_from": date(2021, 1, 1),
                "rates": [{"procedure_code": code, "allowed": str(v)} for code, v in RATES.items()],
            },
        )
        s.commit()
    claim_ids, text = submit_and_answer(services, bp, factory, tmp_path_factory.mktemp("sandbox-under"))
    report = intake(services.db, text.encode(), storage_key="test/era", slugs=[bp.slug])
    (applied,) = report.applied
    return bp, claim_ids, text, applied


def test_lines_paid_short_of_the_contract_are_flagged(services, posted):
    bp, claim_ids, text, applied = posted
    expected = _expected_flags(text)
    # The sandbox pays 62 % of 210.00 on each 99214 it does not deny: at least one is short of 200.00.
    assert expected, "every 99214 line was denied by the sandbox"
    assert applied["underpayments"] == len(expected)
    with services.db.tenant_session(bp.slug) as s:
        rows = underpayments.list_open(s)
        assert {row.claim_line_id: (row.expected_allowed, row.paid, row.patient_responsibility) for row in rows} == (
            expected
        )
        for row in rows:
            assert row.procedure_code == "99214" and row.status == "open" and row.claim_id in claim_ids
            assert row.deposit_id == applied["deposit_id"] and row.remittance_claim_id is not None
            assert row.shortfall == row.expected_allowed - row.paid - row.patient_responsibility
            assert row.shortfall == Decimal("69.80")  # 200.00 - 62 % of 210.00
            assert row.tolerance == Decimal("2.00")  # 1 % of 200.00 beats the $1.00 floor
        # 36415 (contract below what was paid) and 93000 (no rate) were never flagged.
        assert not s.scalar(select(Underpayment.id).where(Underpayment.procedure_code != "99214").limit(1))


def test_checking_again_adds_nothing_and_the_tolerance_decides(services, posted):
    bp, _claim_ids, _text, applied = posted
    with services.db.tenant_session(bp.slug) as s:
        row = underpayments.list_open(s)[0]
        claim = s.get(Claim, row.claim_id)
        assert underpayments.check_claim(s, claim, applied["deposit_id"]) == []
        # With a tolerance wider than the shortfall the line is not flagged; with the default it is again.
        s.execute(delete(Underpayment).where(Underpayment.claim_id == claim.id))
        wide = underpayments.Tolerance(Decimal("70.00"), Decimal("0"))
        assert underpayments.check_claim(s, claim, applied["deposit_id"], tolerance=wide) == []
        assert len(underpayments.check_claim(s, claim, applied["deposit_id"])) >= 1
        s.rollback()


def test_tolerance_from_the_enrolment_or_the_default(services, posted):
    bp, *_ = posted
    default = underpayments.DEFAULT_TOLERANCE
    assert default.for_allowed(Decimal("50.00")) == Decimal("1.00")  # $1.00 beats 1 % of 50.00
    assert default.for_allowed(Decimal("250.00")) == Decimal("2.50")  # 1 % of 250.00 beats $1.00
    with services.db.tenant_session(bp.slug) as s:
        assert underpayments.tolerance_for(s, bp.payer_id) == default
        underpayments.set_tolerance(s, bp.payer_id, amount=Decimal("5"), percent=Decimal("0.5"))
        assert underpayments.tolerance_for(s, bp.payer_id).for_allowed(Decimal("200.00")) == Decimal("5.00")
        with pytest.raises(NotFound):
            underpayments.set_tolerance(s, 987654321, amount=Decimal("1"), percent=Decimal("1"))
        s.rollback()


def test_resolving_takes_a_line_off_the_queue(services, posted):
    bp, *_ = posted
    with services.db.tenant_session(bp.slug) as s:
        before = underpayments.list_open(s)
        resolved = underpayments.resolve(s, before[0].id, user_id=None, note="appealed")
        assert resolved.status == "resolved" and resolved.resolved_at is not None
        assert [r.id for r in underpayments.list_open(s)] == [r.id for r in before[1:]]
        with pytest.raises(Conflict):
            underpayments.resolve(s, before[0].id, user_id=None)
        s.rollback()
