"""Collections pages through a browser-like client: the biller reviews candidates (place, skip), sees placements
and export files, recalls; the agency sees only its placements and files, reports a payment and returns an account;
an agency user gets nothing of another agency, of unplaced patients or of a practice it does not serve."""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal
from html import unescape

from sqlalchemy import select

from billing import collections, ledger
from billing.models import AgencyExport, AgencyPaymentReport, AgencyPlacement, Patient
from billing.money import AMOUNT_RULE
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import owed_visit, statements
from tests.portal.test_portal import portal_login


def text(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def _client(app, email: str):
    client = app.test_client()
    portal_login(client, email)
    return client


def _csrf(client, url: str) -> str:
    page = client.get(url)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def _placeable(services, bp, factory, days_ago=150) -> int:
    pid = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        s.get(Patient, pid).last_name = f"Debtor{pid}x"  # names of their own, to look for on the pages
        s.commit()
    owed_visit(services, bp, pid, days_ago=days_ago)
    statements(services, bp, pid, 3)
    return pid


def test_biller_places_and_agency_reports_and_returns(app, services, factory):
    company = factory.company()
    bp = billing_practice(services, factory, company=company)
    other_practice = billing_practice(services, factory)
    agency, rival = factory.agency([bp.slug]), factory.agency([bp.slug])
    first, second, theirs = (_placeable(services, bp, factory) for _ in range(3))
    with services.db.tenant_session(bp.slug) as s:
        names = {pid: s.get(Patient, pid).last_name for pid in (first, second, theirs)}
        accounts = {pid: s.get(Patient, pid).account_number for pid in (first, second, theirs)}
        collections.set_terms(s, bp.access, agency.id, {"fee_percent": "40"})
        collections.approve(s, bp.access, theirs, rival.id)
        s.commit()
    page_url = f"/practices/{bp.slug}/collections"

    biller = _client(app, bp.biller_email)
    page = biller.get(page_url)
    assert page.status_code == 200
    body = text(page)
    assert "Candidates (2)" in body and accounts[first] in body and accounts[second] in body
    token = _csrf(biller, page_url)
    placed = biller.post(f"{page_url}/candidates/{first}/approve", data={"csrf_token": token, "agency_id": agency.id})
    assert placed.status_code == 302
    assert "Account placed" in text(biller.get(page_url))
    skipped = biller.post(f"{page_url}/candidates/{second}/skip", data={"csrf_token": token, "reason": ""})
    assert skipped.status_code == 422  # the page again, the error beside the reason field
    html = skipped.get_data(as_text=True)
    assert f'id="reason-{second}"' in html and f'aria-describedby="reason-{second}-error"' in html
    assert re.search(rf'<p class="field__error" id="reason-{second}-error">[^<]*required', html)
    biller.post(f"{page_url}/candidates/{second}/skip", data={"csrf_token": token, "reason": "disputes the bill"})
    body = text(biller.get(page_url))
    assert "Candidates (0)" in body and "With agencies (2)" in body
    # Without a CSRF token nothing happens.
    assert biller.post(f"{page_url}/candidates/{second}/approve", data={"agency_id": agency.id}).status_code == 400
    with services.db.tenant_session(bp.slug) as s:
        collections.export_agency(s, services.storage, bp.slug, agency.id)
        collections.export_agency(s, services.storage, bp.slug, rival.id)
        s.commit()
        mine_export = s.scalar(select(AgencyExport).where(AgencyExport.agency_id == agency.id))
        rival_export = s.scalar(select(AgencyExport).where(AgencyExport.agency_id == rival.id))
        placement_id = s.scalar(select(AgencyPlacement.id).where(AgencyPlacement.patient_id == first))
        rival_placement = s.scalar(select(AgencyPlacement.id).where(AgencyPlacement.patient_id == theirs))
    assert mine_export.filename in text(biller.get(page_url)) and rival_export.filename in text(biller.get(page_url))

    collector = _client(app, factory.user("agency", agency=agency))
    home = collector.get("/home").get_data(as_text=True)
    assert f'href="{page_url}"' in home
    page = collector.get(page_url)
    assert page.status_code == 200
    body = text(page)
    assert accounts[first] in body and mine_export.filename in body
    for hidden in (accounts[second], accounts[theirs], names[second], names[theirs], rival_export.filename):
        assert hidden not in body
    download = collector.get(f"{page_url}/exports/{mine_export.id}/download")
    assert download.status_code == 302 and mine_export.filename in download.headers["Location"]
    assert collector.get(f"{page_url}/exports/{rival_export.id}/download").status_code == 404
    token = _csrf(collector, page_url)
    today = date.today().isoformat()
    pay = {"csrf_token": token, "amount": "10.00", "received_on": today, "reference": "PORTAL-1"}
    assert collector.post(f"{page_url}/placements/{rival_placement}/payments", data=pay).status_code == 404
    assert collector.post(f"{page_url}/placements/{rival_placement}/recall",
                          data={"csrf_token": token, "reason": "x"}).status_code == 404  # fmt: skip
    # A bad amount: the page again, the error beside the amount, the reference typed kept, nothing posted.
    refused = collector.post(f"{page_url}/placements/{placement_id}/payments", data=pay | {"amount": "ten"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    amount_tag = re.search(rf'<input[^>]*id="amount-{placement_id}"[^>]*>', html).group(0)
    assert 'value="ten"' in amount_tag and f'aria-describedby="amount-{placement_id}-error"' in amount_tag
    assert f'<p class="field__error" id="amount-{placement_id}-error">{AMOUNT_RULE}</p>' in html
    assert 'value="PORTAL-1"' in re.search(rf'<input[^>]*id="reference-{placement_id}"[^>]*>', html).group(0)
    reported = collector.post(f"{page_url}/placements/{placement_id}/payments", data=pay)
    assert reported.status_code == 302
    assert "gross $10.00, fee $4.00, net $6.00" in text(collector.get(page_url))
    collector.post(f"{page_url}/placements/{placement_id}/payments", data=pay)
    assert "already reported" in text(collector.get(page_url))
    with services.db.tenant_session(bp.slug) as s:
        assert ledger.patient_balance(s, first).patient == Decimal("15.00")
        assert len(s.scalars(select(AgencyPaymentReport)).all()) == 1
    # A payment file in the default layout (CSV): one line for another agency's account refuses the whole file.
    header = "account_number,payment_date,payment_amount,payment_reference\n"
    good = f"{accounts[first]},{today},2.50,FILE-1\n"
    for content, status, expected in (
        (header + good + f"{accounts[theirs]},{today},1.00,FILE-2\n", 422, "is not placed with"),
        (header + good, 302, "Payment file posted: 1 payment(s), $2.50."),
    ):
        sent = collector.post(
            f"{page_url}/payment-files",
            data={"csrf_token": token, "file": (io.BytesIO(content.encode()), "pay.csv")},
            content_type="multipart/form-data",
        )
        assert sent.status_code == status
        assert expected in text(sent if status == 422 else collector.get(page_url))
    with services.db.tenant_session(bp.slug) as s:
        assert ledger.patient_balance(s, first).patient == Decimal("12.50")
    # The biller's page shows gross, fee and net.
    assert "$12.50 / $5.00 / $7.50" in text(biller.get(page_url))
    assert collector.get(f"/practices/{bp.slug}/collections/candidates/{second}/approve").status_code == 405
    assert collector.post(f"{page_url}/candidates/{second}/approve",
                          data={"csrf_token": token, "agency_id": agency.id}).status_code == 403  # fmt: skip
    returned = collector.post(f"{page_url}/placements/{placement_id}/recall",
                              data={"csrf_token": token, "reason": "cannot locate debtor"})  # fmt: skip
    assert returned.status_code == 302
    body = text(collector.get(page_url))
    assert "Account returned" in body and accounts[first] not in body
    assert "recalled" in text(biller.get(page_url)) and "cannot locate debtor" in text(biller.get(page_url))
    # A practice the agency does not serve: 404.
    assert collector.get(f"/practices/{other_practice.slug}/collections").status_code == 404


def test_rules_form_errors_beside_their_fields_and_values_kept(app, services, factory):
    bp = billing_practice(services, factory)
    page_url = f"/practices/{bp.slug}/collections"
    biller = _client(app, bp.biller_email)
    token = _csrf(biller, page_url)
    sent = biller.post(f"{page_url}/rules", data={"csrf_token": token, "min_age_days": "ninety",
                                                   "min_statements": "4", "min_balance": "12,5x"})  # fmt: skip
    assert sent.status_code == 422
    html = sent.get_data(as_text=True)
    # Each bad input is marked invalid and described by the message printed beside it; the typed values stay.
    for field, message in (("min_age_days", "a whole number"), ("min_balance", AMOUNT_RULE)):
        tag = re.search(rf'<input[^>]*id="{field}"[^>]*>', html).group(0)
        assert 'aria-invalid="true"' in tag and f'aria-describedby="{field}-error"' in tag
        assert re.search(rf'<p class="field__error" id="{field}-error">{message}</p>', html)
    assert 'value="ninety"' in re.search(r'<input[^>]*id="min_age_days"[^>]*>', html).group(0)
    assert 'value="12,5x"' in html and 'value="4"' in re.search(r'<input[^>]*id="min_statements"[^>]*>', html).group(0)
    assert "aria-invalid" not in re.search(r'<input[^>]*id="min_statements"[^>]*>', html).group(0)
    # A summary at the top links to each field.
    summary = re.search(r'<div class="alert alert--error error-summary".*?</div>', html, re.S).group(0)
    assert "Collection rules are not valid" in summary
    assert 'href="#min_age_days"' in summary and 'href="#min_balance"' in summary
    with services.db.tenant_session(bp.slug) as s:
        assert collections.get_rules(s)["min_statements"] != 4  # nothing was saved
    # A good form still redirects (post/redirect/get).
    saved = biller.post(f"{page_url}/rules", data={"csrf_token": token, "min_age_days": "100", "min_statements": "4",
                                                    "min_balance": "30.00", "skip_days": "60"})  # fmt: skip
    assert saved.status_code == 302
    with services.db.tenant_session(bp.slug) as s:
        assert collections.get_rules(s)["min_statements"] == 4


def test_biller_tables_sort_and_page(app, services, factory, monkeypatch):
    import portal.collections as portal_collections

    monkeypatch.setattr(portal_collections, "PLACEMENTS_PER_PAGE", 2)
    bp = billing_practice(services, factory)
    ages = {_placeable(services, bp, factory, days_ago=days): days for days in (130, 200, 160)}
    with services.db.tenant_session(bp.slug) as s:
        accounts = {pid: s.get(Patient, pid).account_number for pid in ages}
    by_age = sorted(ages, key=ages.get)  # youngest balance first
    page_url = f"/practices/{bp.slug}/collections"
    biller = _client(app, bp.biller_email)

    def shown(response) -> list[int]:
        html = response.get_data(as_text=True)
        return [int(m) for m in re.findall(r'<tr id="candidate-(\d+)">', html)]

    first = biller.get(page_url)
    html = first.get_data(as_text=True)
    assert shown(first) == [by_age[2], by_age[1]]  # oldest balance first by default, two a page
    assert 'aria-sort="descending"' in html and "Page 1 of 2" in html and "Showing 1–2 of 3" in text(first)
    assert f'href="{page_url}?candidates_page=2#candidates"' in html
    assert shown(biller.get(f"{page_url}?candidates_page=2")) == [by_age[0]]
    # The heading sorts the other way; the sort is kept in the page links.
    assert f'href="{page_url}?candidates_sort=age#candidates"' in html
    ascending = biller.get(f"{page_url}?candidates_sort=age")
    assert shown(ascending) == [by_age[0], by_age[1]]
    assert f'href="{page_url}?candidates_sort=age&amp;candidates_page=2#candidates"' in ascending.get_data(as_text=True)
    assert shown(biller.get(f"{page_url}?candidates_sort=age&candidates_page=2")) == [by_age[2]]
    assert accounts[by_age[0]] in text(ascending)
