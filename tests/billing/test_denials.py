"""The denial work queue over real posted data: claims go through the sandbox clearinghouse, whose 835 is edited to
deny a whole claim (CO-50), one line of a paid claim (PI-204), a whole claim for missing information (CO-16) and one
line for medical necessity (CO-50), then posted by billing.edi_intake. Items are derived once (sync is idempotent),
grouped by reason and payer, filtered by age and amount, assigned, noted and closed: correct and resubmit (a
frequency-7 claim with the payer's claim number), void (confirmed), write off (only with ledger:write_off, confirmed,
a CARC reason; the ledger holds the write-off and insurance owes nothing), bill the patient."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import claims as claim_service
from billing import denials, ledger, submissions, underpayments
from billing.claim_status import transition
from billing.edi_intake import ALL_KINDS, intake
from billing.models import Claim, ClaimLine, DenialItem, DenialNote, LedgerEntry
from integrations.sandbox import SandboxConfig, process_inbox_once
from integrations.storage import practice_key
from medbill.errors import Conflict, Forbidden, Invalid
from tenants.models import AuditEntry, BillingCompany, Practice
from tests.billing.factories import access_for, billing_practice, insured_patient, visit
from tests.billing.test_posting import _build, _reversal_of, _split

BIG_VISIT = [
    {"procedure_code": "99214", "units": 1, "diagnosis_pointers": [1, 2]},
    {"procedure_code": "93000", "units": 1, "diagnosis_pointers": [2]},
    {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
    {"procedure_code": "99213", "modifiers": ["25"], "units": 1, "diagnosis_pointers": [1]},
]


# --- building denied claims (shared with the appeal, API and portal tests) -------------------------------------------


def sandbox_era(services, factory, tmp_path_factory, *, claims: int = 4, bp=None):
    """A practice whose claims went to the sandbox and were acknowledged (999 + 277CA applied): (bp, 835 text)."""
    bp = bp or billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        for n in range(claims):
            patient = insured_patient(services, bp, factory)
            for claim in claim_service.create_claims(
                s, bp.access, visit(services, bp, patient, lines=BIG_VISIT if n % 2 else None)
            ):
                transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
    root = tmp_path_factory.mktemp("sandbox-denials")
    inbox = root / "acct" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(SandboxConfig(root=root))
    outbox = root / "acct" / "outbox"
    for path in sorted(outbox.glob("*.999")) + sorted(outbox.glob("*.277ca")):
        intake(services.db, path.read_bytes(), storage_key=f"test/{path.name}", slugs=[bp.slug])
    (era,) = sorted(outbox.glob("*.835"))
    return bp, era.read_text()


def _cas_total(seg: str, group: str) -> Decimal:
    parts = seg.split("*")
    if parts[1] != group:
        return Decimal(0)
    return sum((Decimal(parts[k]) for k in range(3, len(parts), 3) if parts[k]), Decimal(0))


def deny_lines(block: list[str], which: list[int] | None, *, group: str, reason: str, status=None) -> list[str]:
    """The claim block with the given service lines (0-based; None: all) paid nothing and adjusted whole as
    group-reason; CLP04/CLP05 follow so the claim still balances."""
    clp, rest = block[0], block[1:]
    loops: list[list[str]] = []
    head: list[str] = []
    for seg in rest:
        if seg.startswith("SVC*"):
            loops.append([seg])
        elif loops:
            loops[-1].append(seg)
        else:
            head.append(seg)
    which = list(range(len(loops))) if which is None else which
    paid_removed = pr_removed = Decimal(0)
    out = []
    for n, loop in enumerate(loops):
        if n not in which:
            out.append(loop)
            continue
        svc = loop[0].split("*")
        charge, paid = Decimal(svc[2]), Decimal(svc[3])
        paid_removed += paid
        pr_removed += sum((_cas_total(seg, "PR") for seg in loop if seg.startswith("CAS*")), Decimal(0))
        svc[3] = "0"
        new = ["*".join(svc), *(seg for seg in loop if seg.startswith("DTM*"))]
        new.append(f"CAS*{group}*{reason}*{charge:.2f}")
        new += [seg for seg in loop if seg.startswith("REF*")]
        out.append(new)
    parts = clp.split("*")
    parts[4] = f"{Decimal(parts[4]) - paid_removed:.2f}"
    parts[5] = f"{Decimal(parts[5] or '0') - pr_removed:.2f}"
    if status:
        parts[2] = status
    return ["*".join(parts), *head, *(seg for loop in out for seg in loop)]


def line_ids(block: list[str]) -> list[int]:
    return [int(seg.split("*")[2]) for seg in block if seg.startswith("REF*6R")]


def post_835(services, bp, text: str, name: str) -> dict:
    key = practice_key(bp.slug, "remittances", name)
    services.storage.put(key, text.encode(), content_type="application/edi-x12")
    report = intake(services.db, text.encode(), storage_key=key, slugs=[bp.slug], kinds=ALL_KINDS)
    (applied,) = report.applied
    assert applied["exceptions"] == [], applied
    return applied


@dataclass
class Denied:
    bp: object
    era: str  # the sandbox's original 835 (every claim paid)
    blocks: list[list[str]]  # its claim blocks, in claim order
    claim_ids: list[int]
    deposit_id: int
    admin_email: str

    @property
    def medical_necessity_claim(self) -> int:  # block 0: the whole claim CO-50, CLP02 4
        return self.claim_ids[0]

    @property
    def line_denied_claim(self) -> int:  # block 1: line 2 PI-204, the rest paid
        return self.claim_ids[1]

    @property
    def missing_info_claim(self) -> int:  # block 2: the whole claim CO-16, CLP02 4
        return self.claim_ids[2]

    @property
    def line_co50_claim(self) -> int:  # block 3: line 1 CO-50, the rest paid
        return self.claim_ids[3]


def denied_practice(services, factory, tmp_path_factory, st02: str = "7001", *, spare: bool = False) -> Denied:
    """Four denied claims (see the properties of Denied); with `spare`, two more denied the same way as the first
    and the fourth (blocks 4 and 5), for tests that need claims of their own."""
    bp, era = sandbox_era(services, factory, tmp_path_factory, claims=6 if spare else 4)
    _head, _header, blocks, _plb, _tail = _split(era)
    edited = [
        deny_lines(blocks[0], None, group="CO", reason="50", status="4"),
        deny_lines(blocks[1], [1], group="PI", reason="204"),
        deny_lines(blocks[2], None, group="CO", reason="16", status="4"),
        deny_lines(blocks[3], [0], group="CO", reason="50"),
    ]
    if spare:
        edited += [
            deny_lines(blocks[4], None, group="CO", reason="50", status="4"),
            deny_lines(blocks[5], [0], group="CO", reason="50"),
        ]
    applied = post_835(services, bp, _build(era, edited, st02=st02, trace=f"DENY{st02}"), f"era-{st02}.835")
    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == bp.company_slug))
    admin = factory.user("company_admin", company=company)
    claim_ids = [int(block[0].split("*")[1]) for block in blocks]
    return Denied(bp, era, blocks, claim_ids, applied["deposit_id"], admin)


@pytest.fixture(scope="module")
def denied(services, factory, tmp_path_factory) -> Denied:
    d = denied_practice(services, factory, tmp_path_factory, spare=True)
    with services.db.tenant_session(d.bp.slug) as s:
        denials.sync(s)
        s.commit()
    return d


def items_of(s, claim_id: int) -> list[DenialItem]:
    return list(
        s.scalars(
            select(DenialItem)
            .where(DenialItem.claim_id == claim_id, DenialItem.kind == "denial")
            .order_by(DenialItem.claim_line_id)
        )
    )


# --- tests ------------------------------------------------------------------------------------------------------------


def test_sync_derives_one_item_per_denied_line_once(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        assert denials.sync(s) == {"added": 0, "settled": 0}
        whole = items_of(s, denied.medical_necessity_claim)
        assert [i.claim_line_id for i in whole] == line_ids(denied.blocks[0])
        assert all(i.reason_codes == ["CO-50"] and i.amount == i.charge and i.status == "open" for i in whole)
        (line_item,) = items_of(s, denied.line_denied_claim)
        assert line_item.claim_line_id == line_ids(denied.blocks[1])[1] and line_item.reason_codes == ["PI-204"]
        assert [i.reason_codes for i in items_of(s, denied.missing_info_claim)] == [["CO-16"]] * 2
        (co50,) = items_of(s, denied.line_co50_claim)
        assert co50.claim_line_id == line_ids(denied.blocks[3])[0]
        # The sandbox pays 62 % of billed; the factory's contract allows 95.00 for 99213: underpaid lines come too.
        under = s.scalars(select(DenialItem).where(DenialItem.kind == "underpayment")).all()
        assert under and all(u.amount > 0 and u.expected_allowed > 0 and u.underpayment_id for u in under)


def test_queue_groups_by_reason_and_payer_and_filters(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        found = denials.list_items(s, denials.QueueFilters(kind="denial"), per_page=100)
        by_code = {r["code"]: r for r in found["reasons"]}
        assert by_code["CO-50"]["count"] == 6 and by_code["CO-16"]["count"] == 2 and by_code["PI-204"]["count"] == 1
        assert "medical necessity" in by_code["CO-50"]["description"]
        (payer,) = found["payers"]
        assert (payer["payer_id"], payer["name"], payer["count"]) == (
            denied.bp.payer_id,
            "Acme Health Plan",
            found["total"],
        )
        assert payer["amount"] == sum((i["amount"] for i in found["items"]), Decimal(0))
        co16 = denials.list_items(s, denials.QueueFilters(kind="denial", reason="co-16"))
        assert {i["claim_id"] for i in co16["items"]} == {denied.missing_info_claim} and co16["total"] == 2
        assert co16["items"][0]["reasons"][0]["description"].startswith("CO-16: Claim/service lacks information")
        big = denials.list_items(s, denials.QueueFilters(kind="denial", min_amount=Decimal("100.00")))
        assert big["total"] >= 1 and all(i["amount"] >= Decimal("100.00") for i in big["items"])
        assert denials.list_items(s, denials.QueueFilters(kind="denial", min_age=10_000))["total"] == 0
        assert denials.list_items(s, denials.QueueFilters(kind="denial", max_age=10_000))["total"] == found["total"]
        by_amount = denials.list_items(s, denials.QueueFilters(kind="denial", sort="-amount"))["items"]
        assert [i["amount"] for i in by_amount] == sorted((i["amount"] for i in by_amount), reverse=True)


def test_assign_to_a_company_biller_and_note(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        access = denied.bp.access
        item = items_of(s, denied.line_co50_claim)[0]
        people = dict(denials.billers(s, access))
        assert access.user_id in people
        denials.assign(s, access, item.id, access.user_id)
        with pytest.raises(Invalid):
            denials.assign(s, access, item.id, 10**12)
        denials.add_note(s, access, item.id, "Called the payer: needs the office notes.")
        with pytest.raises(Invalid):
            denials.add_note(s, access, item.id, "  ")
        s.commit()
        detail = denials.item_detail(s, item.id)
        assert detail["assigned_user_id"] == access.user_id
        assert [n["body"] for n in detail["notes"]] == ["Called the payer: needs the office notes."]
        assert s.scalar(select(DenialNote.user_id).where(DenialNote.item_id == item.id)) == access.user_id


def test_write_off_needs_the_permission_and_zeroes_what_insurance_owes(services, denied):
    slug = denied.bp.slug
    with services.db.tenant_session(slug) as s:
        (item,) = items_of(s, denied.line_denied_claim)
        with pytest.raises(Forbidden):
            denials.close(s, denied.bp.access, item.id, "write_off", reason_code="204", confirm=True)
    admin = access_for(services, slug, denied.admin_email, "denials:write")
    with services.db.tenant_session(slug) as s:
        with pytest.raises(Invalid) as unconfirmed:
            denials.close(s, admin, item.id, "write_off", reason_code="204")
        assert "confirm" in unconfirmed.value.errors
        with pytest.raises(Invalid) as bad_code:
            denials.close(s, admin, item.id, "write_off", reason_code="ZZ9", confirm=True)
        assert "reason_code" in bad_code.value.errors
        denials.close(s, admin, item.id, "write_off", reason_code="204", reason="Not covered; no waiver", confirm=True)
        s.commit()
    with services.db.tenant_session(slug) as s:
        item = s.get(DenialItem, item.id)
        assert item.status == "closed" and item.action == "written_off" and item.closed_by_user_id == admin.user_id
        line = s.get(ClaimLine, item.claim_line_id)
        (entry,) = s.scalars(
            select(LedgerEntry).where(LedgerEntry.claim_line_id == line.id, LedgerEntry.kind == "write_off")
        ).all()
        assert entry.amount == line.charge and entry.reason_code == "204" and entry.insurance_delta == -line.charge
        assert entry.source_type == "user" and entry.user_id == admin.user_id
        balance = ledger.line_balance(s, line.id)
        assert balance.insurance == Decimal("0.00") and balance.patient == Decimal("0.00")
        assert balance.adjustments == line.charge  # the payer's PI-204, reversed, then the write-off
        with pytest.raises(Conflict):
            denials.close(s, admin, item.id, "write_off", reason_code="204", confirm=True)
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == slug))
        actions = s.execute(
            select(AuditEntry.action, AuditEntry.user_id).where(
                AuditEntry.practice_id == practice_id,
                AuditEntry.object_type == "denial_item",
                AuditEntry.object_id == str(item.id),
            )
        ).all()
        assert ("close", admin.user_id) in actions


def test_correct_and_resubmit_builds_a_replacement_with_the_payer_claim_number(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        first, second = items_of(s, denied.missing_info_claim)
        denials.close(s, denied.bp.access, first.id, "resubmit", reason="Added the missing referring provider")
        s.commit()
        original = s.get(Claim, denied.missing_info_claim)
        correction = s.get(Claim, first.action_detail["correction_claim_id"])
        assert correction.frequency_code == "7" and correction.original_claim_id == original.id
        assert original.payer_claim_number and correction.payer_claim_number == original.payer_claim_number
        assert correction.status == "draft"
        assert [cl.service_line_id for cl in correction.lines] == [cl.service_line_id for cl in original.lines]
        # The replacement speaks for the whole claim: both items are closed by it.
        s.refresh(second)
        assert (first.action, second.action) == ("corrected", "corrected") and second.status == "closed"


def test_bill_the_patient_moves_the_denied_amount(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        (item,) = items_of(s, denied.line_co50_claim)
        before = ledger.line_balance(s, item.claim_line_id)
        assert before.insurance == before.patient == Decimal("0.00")
        denials.close(s, denied.bp.access, item.id, "bill_patient", reason="ABN on file")
        s.commit()
        after = ledger.line_balance(s, item.claim_line_id)
        assert after.insurance == Decimal("0.00") and after.patient == item.charge
        entry = s.scalar(
            select(LedgerEntry).where(
                LedgerEntry.claim_line_id == item.claim_line_id, LedgerEntry.kind == "patient_responsibility",
                LedgerEntry.source_type == "user",
            )
        )  # fmt: skip
        assert entry.amount == item.charge and item.action == "billed_patient"


def test_void_needs_confirmation(services, denied):
    with services.db.tenant_session(denied.bp.slug) as s:
        item = items_of(s, denied.claim_ids[4])[0]
        with pytest.raises(Invalid):
            denials.close(s, denied.bp.access, item.id, "void")
        with pytest.raises(Invalid):
            denials.close(s, denied.bp.access, item.id, "appeal")
        denials.close(s, denied.bp.access, item.id, "void", reason="billed in error", confirm=True)
        s.commit()
        void = s.get(Claim, item.action_detail["correction_claim_id"])
        assert void.frequency_code == "8" and void.payer_claim_number == s.get(Claim, item.claim_id).payer_claim_number


def test_later_payment_and_resolved_underpayments_settle_items(services, denied):
    # The payer reverses the claim whose first line it had denied and pays it anew: the item is settled.
    was = deny_lines(denied.blocks[5], [0], group="CO", reason="50")
    again = _build(denied.era, [_reversal_of(was), denied.blocks[5]], st02="7003", trace="REPAID7003")
    post_835(services, denied.bp, again, "era-7003")
    with services.db.tenant_session(denied.bp.slug) as s:
        item = items_of(s, denied.claim_ids[5])[0]  # its first line, the one edited to CO-50
        assert item.status == "open" and item.reason_codes == ["CO-50"]
        under = s.scalars(
            select(DenialItem).where(DenialItem.kind == "underpayment", DenialItem.status == "open")
        ).first()
        underpayments.resolve(s, under.underpayment_id, user_id=denied.bp.access.user_id, note="accepted")
        assert denials.sync(s)["settled"] >= 2
        s.commit()
        s.refresh(item)
        s.refresh(under)
        assert (item.status, item.action) == ("closed", "paid")
        assert (under.status, under.action) == ("closed", "resolved")
        # A line the new remittance denies again (the sandbox's own denials) is one open item, the newer one.
        for line_id in {i.claim_line_id for i in items_of(s, denied.claim_ids[5])}:
            line_items = [i for i in items_of(s, denied.claim_ids[5]) if i.claim_line_id == line_id]
            assert sum(1 for i in line_items if i.status == "open") <= 1
            assert all(i.action in ("paid", "superseded") for i in line_items if i.status == "closed")
