"""Denial work pages through a browser-like client, on real posted denials: the queue with its filters and groups,
an item's page with its actions, notes and assignment, an appeal letter written and downloaded (a real PDF), the
outcome recorded, a void and a write-off that ask for confirmation first (and the write-off refused to billers),
the follow-up page, the home page link, and a foreign practice answering 404."""

from __future__ import annotations

import io
import re
from html import unescape

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing.models import Claim, DenialItem, LedgerEntry
from tests.billing.test_denials import denied_practice
from tests.portal.test_portal import csrf_from, portal_login


def text(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.fixture(scope="module")
def denied(services, factory, tmp_path_factory):
    return denied_practice(services, factory, tmp_path_factory, st02="7301")


def _client(app, email: str, slug: str):
    client = app.test_client()
    portal_login(client, email)
    page = client.get("/home")
    client.post("/practice", data={"practice": slug, "csrf_token": csrf_from(page)})
    return client


@pytest.fixture()
def biller(app, denied):
    return _client(app, denied.bp.biller_email, denied.bp.slug)


@pytest.fixture()
def admin(app, denied):
    return _client(app, denied.admin_email, denied.bp.slug)


def _item_ids(services, denied, claim_id: int) -> list[int]:
    with services.db.tenant_session(denied.bp.slug) as s:
        return list(
            s.scalars(
                select(DenialItem.id)
                .where(DenialItem.claim_id == claim_id, DenialItem.kind == "denial")
                .order_by(DenialItem.claim_line_id)
            )
        )


def test_queue_page_with_groups_and_filters(denied, biller):
    base = f"/practices/{denied.bp.slug}/denial-work"
    page = biller.get(base)
    assert page.status_code == 200
    words = text(page)
    assert "Denial work" in words and "By reason" in words
    assert "CO-50: These are non-covered services because this is not deemed a 'medical necessity'" in words
    assert "Acme Health Plan" in words and "<caption" in page.get_data(as_text=True)
    only = text(biller.get(f"{base}?reason=CO-16&kind=denial"))
    assert f"{denied.missing_info_claim} · line 1" in only and f"{denied.line_co50_claim} · line" not in only
    home = biller.get("/home").get_data(as_text=True)
    assert f'href="/practices/{denied.bp.slug}/denial-work"' in home


def test_item_page_note_assign_and_appeal_letter(services, denied, biller):
    item_id = _item_ids(services, denied, denied.medical_necessity_claim)[0]
    url = f"/practices/{denied.bp.slug}/denial-work/{item_id}"
    page = biller.get(url)
    assert page.status_code == 200
    words = text(page)
    assert "Correct and resubmit" in words and "Write the appeal letter" in words
    assert "Write off" not in words  # a biller may not write off: the action is not offered
    token = csrf_from(page)
    assert biller.post(f"{url}/note", data={"csrf_token": token, "body": "Records requested"}).status_code == 302
    empty = biller.post(f"{url}/note", data={"csrf_token": token, "body": ""})
    assert empty.status_code == 422 and "Write the note." in text(empty)
    me = denied.bp.access.user_id
    assert biller.post(f"{url}/assign", data={"csrf_token": token, "user_id": str(me)}).status_code == 302
    response = biller.post(
        f"{url}/appeal",
        data={"csrf_token": token, "family": "medical_necessity", "argument": "Chest pain documented at the visit."},
        follow_redirects=True,
    )
    words = text(response)
    assert response.status_code == 200 and "Appeal letter" in words and "Records requested" in words
    link = re.search(r'href="(/practices/[^"]+/appeals/(\d+)/letter\.pdf)"', response.get_data(as_text=True))
    pdf = biller.get(link.group(1))
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    letter = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    assert f"Our claim number: {denied.medical_necessity_claim}" in letter and "Chest pain documented" in letter
    outcome = biller.post(
        f"/practices/{denied.bp.slug}/appeals/{link.group(2)}/outcome",
        data={"csrf_token": token, "item_id": str(item_id), "outcome": "upheld", "note": "stands"},
        follow_redirects=True,
    )
    assert "Appeal upheld" in text(outcome) and "Outcome: Upheld" in text(outcome)


def test_void_asks_for_confirmation(services, denied, biller):
    item_id = _item_ids(services, denied, denied.missing_info_claim)[0]
    url = f"/practices/{denied.bp.slug}/denial-work/{item_id}"
    token = csrf_from(biller.get(url))
    ask = biller.post(f"{url}/close", data={"csrf_token": token, "action": "void", "reason": "billed in error"})
    assert ask.status_code == 200 and "cannot be undone" in text(ask)
    with services.db.tenant_session(denied.bp.slug) as s:
        assert s.get(DenialItem, item_id).status == "open"  # nothing happened yet
    done = biller.post(
        f"{url}/close",
        data={"csrf_token": csrf_from(ask), "action": "void", "reason": "billed in error", "confirm": "y"},
        follow_redirects=True,
    )
    assert "Voided" in text(done)
    with services.db.tenant_session(denied.bp.slug) as s:
        item = s.get(DenialItem, item_id)
        assert item.action == "voided"
        assert s.get(Claim, item.action_detail["correction_claim_id"]).frequency_code == "8"


def test_write_off_is_refused_to_billers_and_confirmed_by_admins(services, denied, biller, admin):
    (item_id,) = _item_ids(services, denied, denied.line_denied_claim)
    url = f"/practices/{denied.bp.slug}/denial-work/{item_id}"
    token = csrf_from(biller.get(url))
    form = {"csrf_token": token, "action": "write_off", "reason_code": "204", "confirm": "y"}
    assert biller.post(f"{url}/close", data=form).status_code == 403
    page = admin.get(url)
    assert "Write off" in text(page)
    ask = admin.post(f"{url}/close", data={"csrf_token": csrf_from(page), "action": "write_off", "reason_code": "204"})
    assert "cannot be undone" in text(ask) and "not covered under the patient's current benefit plan" in text(ask)
    done = admin.post(
        f"{url}/close",
        data={"csrf_token": csrf_from(ask), "action": "write_off", "reason_code": "204", "confirm": "y"},
        follow_redirects=True,
    )
    assert "Written off" in text(done)
    with services.db.tenant_session(denied.bp.slug) as s:
        line_id = s.get(DenialItem, item_id).claim_line_id
        assert s.scalar(select(LedgerEntry.reason_code).where(LedgerEntry.claim_line_id == line_id,
                                                             LedgerEntry.kind == "write_off")) == "204"  # fmt: skip


def test_follow_up_page_and_isolation(app, factory, denied, biller):
    page = biller.get(f"/practices/{denied.bp.slug}/follow-ups")
    assert page.status_code == 200 and "No claims to follow up" in text(page)
    stranger = app.test_client()
    portal_login(stranger, factory.user("biller", company=factory.company()))
    for path in ("denial-work", "follow-ups", "denial-work/1"):
        assert stranger.get(f"/practices/{denied.bp.slug}/{path}").status_code == 404


def test_appeal_templates_are_edited_per_practice(denied, biller):
    base = f"/practices/{denied.bp.slug}/appeal-templates"
    listing = biller.get(base)
    assert listing.status_code == 200 and "Timely filing" in text(listing)
    page = biller.get(f"{base}/timely_filing")
    assert "medbill's wording" in text(page) and "claim.payer_claim_number" in text(page)
    token = csrf_from(page)
    bad = biller.post(f"{base}/timely_filing", data={"csrf_token": token, "body": "{{ claim.nmber }}"})
    assert bad.status_code == 422 and "nmber" in text(bad)
    saved = biller.post(
        f"{base}/timely_filing",
        data={"csrf_token": token, "body": "Claim {{ claim.number }} was on time. {{ argument }}"},
        follow_redirects=True,
    )
    assert "the practice's own wording" in text(saved)
    reset = biller.post(f"{base}/timely_filing/reset", data={"csrf_token": token}, follow_redirects=True)
    assert "medbill's wording" in text(reset)
    assert biller.get(f"{base}/no_such").status_code == 404
