"""Remittances over HTTP: deposits list and detail (payment, PLB, each claim with what it posted, the audited download
of its own 835), posting exceptions, the denial queue (reasons and remarks in words, filters, sorting), a claim's ledger
equal to the ledger to the cent, flat query counts, audit, and tenant isolation. The data is real: claims go through
the sandbox clearinghouse, whose 835 (edited to force a claim denial, a line denial and an unknown claim) is taken in
by billing.edi_intake.intake."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from billing import claims as claim_service
from billing import ledger, submissions, underpayments
from billing.claim_status import transition
from billing.edi_intake import ALL_KINDS, intake
from billing.models import ClaimLine, Deposit, LedgerEntry, RemittanceClaim, Underpayment
from integrations.sandbox import SandboxConfig, process_inbox_once
from integrations.storage import practice_key
from integrations.x12.remit835 import parse_835
from tenants.models import AuditEntry, Practice
from tenants.registry import get_practice
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.billing.test_posting import _build, _set_element, _split
from tests.conftest import login

BIG_VISIT = [
    {"procedure_code": "99214", "units": 1, "diagnosis_pointers": [1, 2]},
    {"procedure_code": "93000", "units": 1, "diagnosis_pointers": [2]},
    {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
    {"procedure_code": "99213", "modifiers": ["25"], "units": 1, "diagnosis_pointers": [1]},
]
UNKNOWN_PCN = "999999999"


# --- building posted data -------------------------------------------------------------------------------------------


def sandbox_era(services, factory, tmp_path_factory, *, claims: int = 4, bp=None):
    """A practice whose claims went to the sandbox, were acknowledged (999 + 277CA applied) and remitted: the 835
    text (not posted yet)."""
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
    root = tmp_path_factory.mktemp("sandbox-remit")
    inbox = root / "acct" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(SandboxConfig(root=root))
    outbox = root / "acct" / "outbox"
    for path in sorted(outbox.glob("*.999")) + sorted(outbox.glob("*.277ca")):
        intake(services.db, path.read_bytes(), storage_key=f"test/{path.name}", slugs=[bp.slug])
    (era,) = sorted(outbox.glob("*.835"))
    return bp, era.read_text()


def _cas_total(seg: str, group: str | None = None) -> Decimal:
    parts = seg.split("*")
    if group is not None and parts[1] != group:
        return Decimal(0)
    return sum((Decimal(parts[k]) for k in range(3, len(parts), 3) if parts[k]), Decimal(0))


def deny_lines(block: list[str], which: list[int], *, group: str, reason: str, remark: str, status=None) -> list[str]:
    """The claim block with the given service lines (0-based) paid nothing and adjusted whole as group-reason, with a
    remark; CLP04/CLP05 follow so that the claim still balances."""
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
    paid_removed = Decimal(0)
    pr_removed = Decimal(0)
    out_loops = []
    for n, loop in enumerate(loops):
        if n not in which:
            out_loops.append(loop)
            continue
        svc = loop[0].split("*")
        charge, paid = Decimal(svc[2]), Decimal(svc[3])
        paid_removed += paid
        pr_removed += sum((_cas_total(seg, "PR") for seg in loop if seg.startswith("CAS*")), Decimal(0))
        svc[3] = "0"
        new = ["*".join(svc)]
        new += [seg for seg in loop if seg.startswith("DTM*")]
        new.append(f"CAS*{group}*{reason}*{charge:.2f}")
        new += [seg for seg in loop if seg.startswith("REF*")]
        new.append(f"LQ*HE*{remark}")
        out_loops.append(new)
    parts = clp.split("*")
    parts[4] = f"{Decimal(parts[4]) - paid_removed:.2f}"
    parts[5] = f"{Decimal(parts[5] or '0') - pr_removed:.2f}"
    if status:
        parts[2] = status
    return ["*".join(parts), *head, *(seg for loop in out_loops for seg in loop)]


def line_count(block: list[str]) -> int:
    return sum(1 for seg in block if seg.startswith("SVC*"))


def post_835(services, bp, text: str, name: str) -> dict:
    """Store the file (as intake's callers do) and take it in; the applied report of its one set."""
    key = practice_key(bp.slug, "remittances", name)
    services.storage.put(key, text.encode(), content_type="application/edi-x12")
    report = intake(services.db, text.encode(), storage_key=key, slugs=[bp.slug], kinds=ALL_KINDS)
    (applied,) = report.applied
    return applied


@dataclass
class Posted:
    bp: object
    text: str
    deposit_id: int
    denied_claim_id: int  # CLP02 4, every line CO-50 with N115
    line_denied_claim_id: int  # paid claim with its second line PI-204 with N130
    line_denied_line_id: int
    paid_claim_id: int


def posted_practice(services, factory, tmp_path_factory) -> Posted:
    bp, era = sandbox_era(services, factory, tmp_path_factory)
    _head, _header, blocks, _plb, _tail = _split(era)
    # Blocks 0 and 2 have two lines, 1 and 3 four (BIG_VISIT); the 835 keeps the claims' order.
    denied = deny_lines(blocks[0], list(range(line_count(blocks[0]))), group="CO", reason="50", remark="N115",
                        status="4")  # fmt: skip
    line_denied = deny_lines(blocks[1], [1], group="PI", reason="204", remark="N130")
    unknown = [_set_element(blocks[2][0], 1, UNKNOWN_PCN), *blocks[2][1:]]
    text = _build(era, [denied, line_denied, blocks[2], blocks[3], unknown], st02="8001", trace="REMITAPI01")
    applied = post_835(services, bp, text, "era-8001.835")
    assert len(applied["exceptions"]) == 1, applied
    line_denied_claim = int(blocks[1][0].split("*")[1])
    svc_refs = [seg.split("*")[2] for seg in line_denied if seg.startswith("REF*6R")]
    return Posted(
        bp, text, applied["deposit_id"], int(blocks[0][0].split("*")[1]), line_denied_claim, int(svc_refs[1]),
        int(blocks[3][0].split("*")[1]),
    )  # fmt: skip


@pytest.fixture(scope="module")
def posted(services, factory, tmp_path_factory) -> Posted:
    return posted_practice(services, factory, tmp_path_factory)


@pytest.fixture()
def headers(client, posted):
    return login(client, posted.bp.biller_email)


def _base(bp) -> str:
    return f"/api/v1/practices/{bp.slug}"


def _money(value) -> str:
    return f"{Decimal(value):.2f}"


def _audit_actions(services, slug: str) -> set[tuple[str, str | None, str]]:
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == slug))
        rows = s.execute(
            select(AuditEntry.object_type, AuditEntry.object_id, AuditEntry.action).where(
                AuditEntry.practice_id == practice_id
            )
        )
        return {tuple(r) for r in rows}


# --- tests ----------------------------------------------------------------------------------------------------------


def test_remittance_download_url_is_the_audited_835_of_the_deposit(client, services, posted, headers):
    body = client.get(f"{_base(posted.bp)}/remittances/{posted.deposit_id}", headers=headers).get_json()
    response = client.get(body["download_url"], headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)
    with urllib.request.urlopen(response.headers["Location"], timeout=10) as fetched:  # noqa: S310 - the test's S3
        (remittance,) = parse_835(fetched.read())
    assert remittance.trace_number == "REMITAPI01" and remittance.content_key == parse_835(posted.text)[0].content_key
    assert ("document", f"835-{posted.deposit_id}", "download") in _audit_actions(services, posted.bp.slug)


def test_remittance_list_shows_the_payment_and_counts(client, services, posted, headers):
    response = client.get(f"{_base(posted.bp)}/remittances", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    (remittance,) = parse_835(posted.text)
    item = next(i for i in body["items"] if i["id"] == posted.deposit_id)
    assert item["amount"] == _money(remittance.total_payment)
    assert item["trace_number"] == "REMITAPI01" and item["payment_method"] == remittance.payment_method
    assert item["payer_name"] == remittance.payer_name
    assert item["payment_date"] == (remittance.payment_date.isoformat() if remittance.payment_date else None)
    assert item["claims_count"] == 5 and item["exceptions_count"] == 1
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 1}
    assert ("remittance", None, "list") in _audit_actions(services, posted.bp.slug)


def test_remittance_detail_is_what_the_ledger_holds(client, services, posted, headers):
    response = client.get(f"{_base(posted.bp)}/remittances/{posted.deposit_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    (remittance,) = parse_835(posted.text)
    assert body["amount"] == _money(remittance.total_payment)
    # The deposit's own 835 through the audited documents route, not a direct link to the whole stored file.
    download = f"{_base(posted.bp)}/documents/835-{posted.deposit_id}/download"
    assert body["download_url"] == download
    assert [c["outcome"] for c in body["claims"]] == ["posted", "posted", "posted", "posted", "exception"]
    unknown = body["claims"][-1]
    assert unknown["claim_id"] is None and UNKNOWN_PCN in unknown["exception_reason"] and unknown["posted"] == []
    with services.db.tenant_session(posted.bp.slug) as s:
        for out, clp in zip(body["claims"][:4], remittance.claims[:4], strict=True):
            claim_id = int(clp.patient_control_number)
            assert out["claim_id"] == claim_id and out["ledger_url"].endswith(f"/claims/{claim_id}/ledger")
            assert (out["charge"], out["paid"], out["patient_responsibility"]) == (
                _money(clp.total_charge), _money(clp.paid), _money(clp.patient_responsibility)
            )  # fmt: skip
            entries = s.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.claim_id == claim_id, LedgerEntry.source_id == f"deposit:{posted.deposit_id}")
                .order_by(LedgerEntry.id)
            ).all()
            assert [e["id"] for e in out["posted"]] == [e.id for e in entries]
            paid = sum((Decimal(e["amount"]) for e in out["posted"] if e["kind"] == "insurance_payment"), Decimal(0))
            assert paid == clp.paid == ledger.claim_balance(s, claim_id).payments
            for e in out["posted"]:
                if e["reason_code"]:
                    assert e["reason"].startswith(f"{e['group_code']}-{e['reason_code']}: ") and len(e["reason"]) > 12
    denied = next(c for c in body["claims"] if c["claim_id"] == posted.denied_claim_id)
    assert denied["status_code"] == "4" and denied["status_text"] == "Denied" and denied["paid"] == "0.00"
    assert {e["reason"].split(":")[0] for e in denied["posted"]} == {"CO-50"}
    assert "N115" in {r["code"] for r in denied["remark_codes"]}
    assert ("remittance", str(posted.deposit_id), "read") in _audit_actions(services, posted.bp.slug)
    assert client.get(f"{_base(posted.bp)}/remittances/999999999", headers=headers).status_code == 404


def test_plb_entries_show_in_words(client, services, factory, tmp_path_factory):
    bp, era = sandbox_era(services, factory, tmp_path_factory, claims=1)
    _head, _header, blocks, _plb, _tail = _split(era)
    payer_claim_number = blocks[0][0].split("*")[7]
    plb = [f"PLB*1234567893*20261231*L6:{payer_claim_number}*-4.25", "PLB*1234567893*20261231*WO:NOTOURS*10.00"]
    applied = post_835(services, bp, _build(era, blocks, st02="8101", trace="PLBAPI0001", plb=plb), "plb.835")
    headers = login(client, bp.biller_email)
    body = client.get(f"{_base(bp)}/remittances/{applied['deposit_id']}", headers=headers).get_json()
    assert [(p["reason_code"], p["reason"], p["reference"], p["amount"]) for p in body["provider_adjustments"]] == [
        ("L6", "Interest owed", payer_claim_number, "-4.25"),
        ("WO", "Overpayment recovery", "NOTOURS", "10.00"),
    ]
    assert body["provider_adjustments"][0]["claim_id"] == int(blocks[0][0].split("*")[1])
    assert Decimal(body["amount"]) == Decimal(blocks[0][0].split("*")[4]) - Decimal("5.75")


def test_claim_ledger_equals_the_ledger_to_the_cent(client, services, posted, headers):
    for claim_id in (posted.denied_claim_id, posted.line_denied_claim_id, posted.paid_claim_id):
        response = client.get(f"{_base(posted.bp)}/claims/{claim_id}/ledger", headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        with services.db.tenant_session(posted.bp.slug) as s:
            entries = ledger.entries_for_claim(s, claim_id)
            assert [(e["id"], e["kind"], e["amount"]) for e in body["entries"]] == [
                (e.id, e.kind, _money(e.amount)) for e in entries
            ]
            balance = ledger.claim_balance(s, claim_id)
            assert body["balance"] == {
                "charges": _money(balance.charges),
                "payments": _money(balance.payments),
                "adjustments": _money(balance.adjustments),
                "insurance_balance": _money(balance.insurance),
                "patient_balance": _money(balance.patient),
                "total_balance": _money(balance.total),
            }
            line_ids = s.scalars(select(ClaimLine.id).where(ClaimLine.claim_id == claim_id)).all()
            assert sorted(ln["claim_line_id"] for ln in body["lines"]) == sorted(line_ids)
            for ln in body["lines"]:
                lb = ledger.line_balance(s, ln["claim_line_id"])
                assert (ln["balance"]["charges"], ln["balance"]["payments"], ln["balance"]["insurance_balance"],
                        ln["balance"]["patient_balance"]) == (
                    _money(lb.charges), _money(lb.payments), _money(lb.insurance), _money(lb.patient)
                )  # fmt: skip
    charge = next(e for e in body["entries"] if e["kind"] == "charge")
    assert charge["kind_label"] == "Charge" and charge["reason"] == "" and charge["source_type"] == "claim"
    paid = [e for e in body["entries"] if e["kind"] == "insurance_payment"]
    assert paid and all(e["deposit_id"] == posted.deposit_id for e in paid)
    assert ("claim", str(posted.paid_claim_id), "read") in _audit_actions(services, posted.bp.slug)
    assert client.get(f"{_base(posted.bp)}/claims/999999999/ledger", headers=headers).status_code == 404


def test_posting_exceptions_are_listed_oldest_first(client, services, posted, headers):
    body = client.get(f"{_base(posted.bp)}/posting-exceptions", headers=headers).get_json()
    (item,) = body["items"]
    assert item["patient_control_number"] == UNKNOWN_PCN and "no claim" in item["reason"]
    assert item["deposit_id"] == posted.deposit_id
    assert item["remittance_url"].endswith(f"/remittances/{posted.deposit_id}")
    assert item["trace_number"] == "REMITAPI01" and item["claim_id"] is None
    with services.db.tenant_session(posted.bp.slug) as s:
        rc = s.scalar(select(RemittanceClaim).where(RemittanceClaim.outcome == "exception"))
        assert (item["charge"], item["paid"]) == (_money(rc.charge), _money(rc.paid))
    assert body["meta"]["total"] == 1


def _sandbox_denied_lines(text: str) -> set[int]:
    """Claim lines the 835 paid nothing with no PR (the sandbox denies some lines on its own)."""
    (remittance,) = parse_835(text)
    out = set()
    for clp in remittance.claims:
        if clp.patient_control_number == UNKNOWN_PCN:
            continue
        for svc in clp.lines:
            groups = {a.group for a in svc.adjustments}
            if clp.is_denied or (not svc.paid and groups & {"CO", "PI", "OA"} and "PR" not in groups):
                out.add(int(svc.line_item_control_number))
    return out


def test_denials_list_reasons_and_remarks_in_words(client, services, posted, headers):
    body = client.get(f"{_base(posted.bp)}/denials?per_page=200", headers=headers).get_json()
    listed = {i["claim_line_id"]: i for i in body["items"]}
    assert set(listed) == _sandbox_denied_lines(posted.text)
    assert body["meta"]["total"] == len(listed)
    with posted_session(services, posted) as s:
        denied_lines = s.scalars(select(ClaimLine.id).where(ClaimLine.claim_id == posted.denied_claim_id)).all()
    for line_id in denied_lines:
        item = listed[line_id]
        assert item["claim_status"] == "denied" and item["paid"] == "0.00" and item["denied_amount"] == item["charge"]
        assert [r["code"] for r in item["reasons"]] == ["CO-50"]
        assert item["reasons"][0]["description"].startswith("CO-50: These are non-covered services")
        assert [r["code"] for r in item["remarks"]] == ["N115"]
        assert item["remarks"][0]["description"].startswith("N115: ")
        assert item["age_days"] >= 0 and item["deposit_id"] == posted.deposit_id
    line = listed[posted.line_denied_line_id]
    assert line["claim_id"] == posted.line_denied_claim_id and line["claim_status"] in ("paid", "partially_paid")
    assert [r["code"] for r in line["reasons"]] == ["PI-204"] and [r["code"] for r in line["remarks"]] == ["N130"]
    # The paid lines of that claim are not denials.
    with posted_session(services, posted) as s:
        others = s.scalars(
            select(ClaimLine.id).where(
                ClaimLine.claim_id == posted.line_denied_claim_id, ClaimLine.id != posted.line_denied_line_id
            )
        ).all()
    assert not (set(others) & set(listed) - _sandbox_denied_lines(posted.text))
    by_reason = {r["code"]: r for r in body["reasons"]}
    assert by_reason["CO-50"]["count"] == len(denied_lines) and by_reason["PI-204"]["count"] >= 1
    assert "not covered" in by_reason["PI-204"]["description"]
    assert body["payers"][0]["payer_id"] == posted.bp.payer_id and body["payers"][0]["count"] == len(listed)
    assert ("claim", None, "list") in _audit_actions(services, posted.bp.slug)


def posted_session(services, posted):
    return services.db.tenant_session(posted.bp.slug)


def test_denials_filter_and_sort(client, services, posted, headers):
    base = f"{_base(posted.bp)}/denials"
    only = client.get(f"{base}?reason=CO-50", headers=headers).get_json()
    assert only["items"] and all([r["code"] for r in i["reasons"]] == ["CO-50"] for i in only["items"])
    assert {i["claim_id"] for i in only["items"]} == {posted.denied_claim_id}
    lower = client.get(f"{base}?reason=co-50", headers=headers).get_json()
    assert lower["meta"]["total"] == only["meta"]["total"]
    assert client.get(f"{base}?payer_id=999999", headers=headers).get_json()["items"] == []
    assert client.get(f"{base}?payer_id={posted.bp.payer_id}", headers=headers).get_json()["items"]
    assert client.get(f"{base}?min_age=100000", headers=headers).get_json()["items"] == []
    amounts = [Decimal(i["charge"]) for i in client.get(f"{base}?sort=-amount", headers=headers).get_json()["items"]]
    assert amounts == sorted(amounts, reverse=True) and len(amounts) >= 3
    rising = [Decimal(i["charge"]) for i in client.get(f"{base}?sort=amount", headers=headers).get_json()["items"]]
    assert rising == sorted(rising)
    cheap = client.get(f"{base}?max_amount=30", headers=headers).get_json()["items"]
    assert all(Decimal(i["charge"]) <= 30 for i in cheap)
    assert client.get(f"{base}?sort=nonsense", headers=headers).status_code == 422
    assert client.get(f"{base}?reason=fifty", headers=headers).status_code == 422
    paged = client.get(f"{base}?per_page=1&page=2", headers=headers).get_json()
    assert len(paged["items"]) == 1 and paged["meta"]["total"] == only["meta"]["total"] + len(
        [i for i in client.get(f"{base}?per_page=200", headers=headers).get_json()["items"]
         if i["claim_id"] != posted.denied_claim_id]
    )  # fmt: skip


def _measure(client, services, url: str, headers) -> tuple[int, int]:
    engine = services.db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(url, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.get_json()
    return len(statements), len(response.get_json()["items"])


def test_remittances_and_denials_do_not_query_per_row(client, services, factory, tmp_path_factory):
    bp, era = sandbox_era(services, factory, tmp_path_factory, claims=4)
    _head, _header, blocks, _plb, _tail = _split(era)

    def deny_all(block):
        return deny_lines(block, list(range(line_count(block))), group="CO", reason="50", remark="N115", status="4")

    post_835(services, bp, _build(era, [deny_all(blocks[0])], st02="8201", trace="FLAT000001"), "flat1.835")
    headers = login(client, bp.biller_email)
    remittances, denials = f"{_base(bp)}/remittances?per_page=200", f"{_base(bp)}/denials?per_page=200"
    client.get(remittances, headers=headers)  # warm-up
    client.get(denials, headers=headers)
    few = _measure(client, services, remittances, headers), _measure(client, services, denials, headers)
    for n, block in enumerate(blocks[1:], start=2):
        post_835(services, bp, _build(era, [deny_all(block)], st02=f"820{n}", trace=f"FLAT00000{n}"), f"flat{n}.835")
    many = _measure(client, services, remittances, headers), _measure(client, services, denials, headers)
    assert (few[0][1], many[0][1]) == (1, 4)
    assert many[1][1] > few[1][1] >= 2
    assert few[0][0] == many[0][0] and few[1][0] == many[1][0], (few, many)


def _endpoints(base: str, deposit_id: int, claim_id: int) -> list[str]:
    return [
        f"{base}/remittances",
        f"{base}/remittances/{deposit_id}",
        f"{base}/posting-exceptions",
        f"{base}/denials",
        f"{base}/denials?reason=CO-50",
        f"{base}/claims/{claim_id}/ledger",
        f"{base}/underpayments",
    ]


def test_other_tenants_get_404_and_doctors_403(client, services, factory, world, posted):
    urls = _endpoints(_base(posted.bp), posted.deposit_id, posted.paid_claim_id)
    for role in ("biller_y", "admin_x", "agency"):
        headers = login(client, world.users[role])
        for url in urls:
            response = client.get(url, headers=headers)
            assert response.status_code == 404, (role, url, response.status_code)
            assert response.get_json()["code"] == "not_found"
    with services.db.shared_session() as s:
        practice = get_practice(s, posted.bp.slug)
    doctor = login(client, factory.user("doctor", practice=practice))
    for url in urls:
        response = client.get(url, headers=doctor)
        assert response.status_code == 403, (url, response.status_code)
        assert "REMITAPI01" not in response.get_data(as_text=True)


def test_the_endpoints_are_documented(client):
    spec = client.get("/api/openapi.json").get_json()
    for path in ("/remittances", "/remittances/{deposit_id}", "/posting-exceptions", "/denials",
                 "/claims/{claim_id}/ledger"):  # fmt: skip
        assert f"/api/v1/practices/{{slug}}{path}" in spec["paths"], path
    denials = spec["paths"]["/api/v1/practices/{slug}/denials"]["get"]
    assert {p["name"] for p in denials["parameters"]} >= {"reason", "payer_id", "sort", "min_age", "max_amount"}


def test_deposit_rows_match_the_database(services, posted):
    with services.db.tenant_session(posted.bp.slug) as s:
        deposit = s.get(Deposit, posted.deposit_id)
        assert deposit.storage_key.endswith("era-8001.835")


def test_underpayment_queue(client, services, posted, headers):
    with services.db.tenant_session(posted.bp.slug) as s:
        line = s.scalars(select(ClaimLine).where(ClaimLine.claim_id == posted.paid_claim_id)).first()
        row = Underpayment(
            claim_id=posted.paid_claim_id, claim_line_id=line.id, deposit_id=posted.deposit_id,
            payer_id=posted.bp.payer_id, procedure_code="99213", expected_allowed=Decimal("95.00"),
            paid=Decimal("50.00"), patient_responsibility=Decimal("20.00"), shortfall=Decimal("25.00"),
            tolerance=Decimal("1.00"),
        )  # fmt: skip
        s.add(row)
        s.commit()
        row_id = row.id
    body = client.get(f"{_base(posted.bp)}/underpayments?per_page=200", headers=headers).get_json()
    item = next(i for i in body["items"] if i["id"] == row_id)
    assert (item["expected_allowed"], item["paid"], item["patient_responsibility"], item["shortfall"]) == (
        "95.00", "50.00", "20.00", "25.00"
    )  # fmt: skip
    assert item["payer_name"] == "Acme Health Plan" and item["remittance_url"].endswith(f"/{posted.deposit_id}")
    assert body["meta"]["total"] == len(body["items"])
    other = client.get(f"{_base(posted.bp)}/underpayments?payer_id=999999", headers=headers).get_json()
    assert other["items"] == [] and other["meta"]["total"] == 0


def test_resolve_an_underpayment(client, services, posted, headers, world):
    with services.db.tenant_session(posted.bp.slug) as s:
        line = s.scalars(select(ClaimLine).where(ClaimLine.claim_id == posted.line_denied_claim_id)).first()
        row = Underpayment(
            claim_id=posted.line_denied_claim_id, claim_line_id=line.id, deposit_id=posted.deposit_id,
            payer_id=posted.bp.payer_id, procedure_code="99214", expected_allowed=Decimal("120.00"),
            paid=Decimal("80.00"), patient_responsibility=Decimal("20.00"), shortfall=Decimal("20.00"),
            tolerance=Decimal("1.20"),
        )  # fmt: skip
        s.add(row)
        s.commit()
        row_id = row.id
    url = f"{_base(posted.bp)}/underpayments/{row_id}/resolve"
    missing = client.post(url, headers=headers, json={})
    assert missing.status_code == 422 and "note" in missing.get_json()["errors"]
    assert client.post(url, headers=headers, json={"note": "   "}).status_code == 422
    done = client.post(url, headers=headers, json={"note": "Payer repaid on appeal"})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["status"] == "resolved" and body["note"] == "Payer repaid on appeal" and body["resolved_by_user_id"]
    assert client.post(url, headers=headers, json={"note": "again"}).status_code == 409
    listed = client.get(f"{_base(posted.bp)}/underpayments?per_page=200", headers=headers).get_json()
    assert row_id not in {i["id"] for i in listed["items"]}
    assert ("claim", str(posted.line_denied_claim_id), "resolve") in _audit_actions(services, posted.bp.slug)
    assert client.post(f"{_base(posted.bp)}/underpayments/999999999/resolve", headers=headers,
                       json={"note": "x"}).status_code == 404  # fmt: skip
    foreign = login(client, world.users["biller_y"])
    assert client.post(url, headers=foreign, json={"note": "x"}).status_code == 404


def test_underpayment_tolerance_per_payer(client, services, factory, posted, headers, world):
    url = f"{_base(posted.bp)}/payers/{posted.bp.payer_id}/underpayment-tolerance"
    first = client.get(url, headers=headers)
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {
        "payer_id": posted.bp.payer_id, "payer_name": "Acme Health Plan", "amount": "1.00", "percent": "1.000",
        "is_default": True,
    }  # fmt: skip
    put = client.put(url, headers=headers, json={"amount": "2.50", "percent": "1.5"})
    assert put.status_code == 200, put.get_json()
    assert (put.get_json()["amount"], put.get_json()["percent"], put.get_json()["is_default"]) == (
        "2.50",
        "1.500",
        False,
    )
    assert client.get(url, headers=headers).get_json()["amount"] == "2.50"
    with services.db.tenant_session(posted.bp.slug) as s:
        tolerance = underpayments.tolerance_for(s, posted.bp.payer_id)
    assert (tolerance.amount, tolerance.percent) == (Decimal("2.50"), Decimal("1.5"))
    assert ("payer_enrolment", str(posted.bp.payer_id), "update") in _audit_actions(services, posted.bp.slug)

    bad = client.put(url, headers=headers, json={"amount": "-1", "percent": "101"})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"amount", "percent"}
    assert set(client.put(url, headers=headers, json={}).get_json()["errors"]) == {"amount", "percent"}
    assert client.put(url, headers=headers, json={"amount": "abc", "percent": "1"}).get_json()["errors"].keys() == {
        "amount"
    }
    assert client.get(url, headers=headers).get_json()["amount"] == "2.50"  # nothing half-written

    not_enrolled = f"{_base(posted.bp)}/payers/999999999/underpayment-tolerance"
    assert client.get(not_enrolled, headers=headers).status_code == 404
    assert client.put(not_enrolled, headers=headers, json={"amount": "1", "percent": "1"}).status_code == 404
    with services.db.shared_session() as s:
        practice = get_practice(s, posted.bp.slug)
    doctor = login(client, factory.user("doctor", practice=practice))
    assert client.put(url, headers=doctor, json={"amount": "9", "percent": "9"}).status_code == 403
    foreign = login(client, world.users["biller_y"])
    assert client.get(url, headers=foreign).status_code == 404
    assert client.put(url, headers=foreign, json={"amount": "9", "percent": "9"}).status_code == 404
    assert client.get(url, headers=headers).get_json()["amount"] == "2.50"
