"""Collections over HTTP: rules and agency terms (validated formats), candidates approved into placements, the
export file read back with the agency's parser (CSV), the agency's payment report (balance reduced by the gross, fee
recorded, same reference once) and recall; and agency isolation: an agency user sees nothing it was not sent, in any
practice, and may not do a biller's work."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from billing import agency_formats, collections, ledger
from billing.models import AgencyPlacement, Patient
from tenants.models import AuditEntry
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import owed_visit, statements
from tests.conftest import login

D = Decimal
CSV = {
    "type": "csv",
    "rows": "account",
    "date_format": "%m/%d/%Y",
    "columns": [
        {"field": "account_number", "heading": "Account"},
        {"field": "guarantor_last_name", "heading": "Guarantor Last"},
        {"field": "guarantor_first_name", "heading": "Guarantor First"},
        {"field": "patient_last_name", "heading": "Patient Last"},
        {"field": "patient_date_of_birth", "heading": "DOB"},
        {"field": "balances_by_dos", "heading": "Balances"},
        {"field": "total_placed", "heading": "Placed"},
        {"field": "last_payment_date", "heading": "Last Paid"},
        {"field": "last_payment_amount", "heading": "Last Amount"},
        {"field": "insurance_payer_name", "heading": "Insurance"},
    ],
}


@pytest.fixture()
def scene(services, factory):
    """Practice P (billing-ready) and Q of one company, R of another. Agency 1 serves P and Q; agency 2 serves P.
    In P: patients placed with agency 1 and agency 2, one unplaced candidate; in Q: one placed with agency 2."""
    company = factory.company()
    bp = billing_practice(services, factory, company=company)
    bq = billing_practice(services, factory, company=company)
    other = factory.company()
    # Another company's practice: only its slug and a biller of it are needed.
    br = SimpleNamespace(slug=factory.practice(other.slug).slug, biller_email=factory.user("biller", company=other))
    a1 = factory.agency([bp.slug, bq.slug])
    a2 = factory.agency([bp.slug, bq.slug])
    factory.agency([br.slug])

    def placeable(b, days_ago=150):
        pid = insured_patient(services, b, factory)
        owed_visit(services, b, pid, days_ago=days_ago)
        statements(services, b, pid, 3)
        return pid

    mine, theirs, unplaced = placeable(bp, 170), placeable(bp), placeable(bp)
    in_q = placeable(bq)
    with services.db.tenant_session(bp.slug) as s:
        collections.approve(s, bp.access, theirs, a2.id)
        s.commit()
    with services.db.tenant_session(bq.slug) as s:
        collections.approve(s, bq.access, in_q, a2.id)
        s.commit()
        collections.export_agency(s, services.storage, bq.slug, a2.id)
        s.commit()
    return {
        "p": bp, "q": bq, "r": br, "a1": a1, "a2": a2, "mine": mine, "theirs": theirs, "unplaced": unplaced,
        "in_q": in_q, "agency_user": factory.user("agency", agency=a1), "biller": bp.biller_email,
    }  # fmt: skip


def _url(slug: str, path: str) -> str:
    return f"/api/v1/practices/{slug}/collections{path}"


def test_placement_export_payment_and_recall_over_the_api(client, services, scene):
    p, a1 = scene["p"], scene["a1"]
    biller = login(client, scene["biller"])
    agency = login(client, scene["agency_user"])

    broken = {"type": "fixed", "fields": [{"field": "account_number", "start": 0}]}
    bad = client.put(_url(p.slug, f"/agencies/{a1.id}"), headers=biller, json={"file_format": broken})
    assert bad.status_code == 422
    assert {"fields[0].start", "fields[0].length"} <= set(bad.get_json()["errors"])
    ok = client.put(_url(p.slug, f"/agencies/{a1.id}"), headers=biller, json={"file_format": CSV, "fee_percent": "25"})
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["format_source"] == "practice" and ok.get_json()["fee_percent"] == "25.00"

    candidates = client.get(_url(p.slug, "/candidates"), headers=biller).get_json()
    assert [c["patient_id"] for c in candidates["items"]] == [scene["mine"], scene["unplaced"]]
    assert candidates["items"][0]["patient_balance"] == "25.00" and candidates["items"][0]["age_days"] == 170

    placed = client.post(_url(p.slug, f"/candidates/{scene['mine']}/approve"), headers=biller,
                         json={"agency_id": a1.id, "note": "three statements, no answer"})  # fmt: skip
    assert placed.status_code == 201, placed.get_json()
    placement = placed.get_json()
    assert placement["balance_placed"] == "25.00" and placement["agency_id"] == a1.id
    skipped = client.post(_url(p.slug, f"/candidates/{scene['unplaced']}/skip"), headers=biller,
                          json={"reason": "hardship application pending"})  # fmt: skip
    assert skipped.status_code == 201 and skipped.get_json()["decision"] == "skipped"
    assert client.get(_url(p.slug, "/candidates"), headers=biller).get_json()["items"] == []

    with services.db.tenant_session(p.slug) as s:
        collections.export_agency(s, services.storage, p.slug, a1.id)
        s.commit()
        account_number = s.get(Patient, scene["mine"]).account_number
    exports = client.get(_url(p.slug, "/exports"), headers=agency).get_json()["items"]
    assert len(exports) == 1 and exports[0]["agency_id"] == a1.id and exports[0]["account_count"] == 1
    export = client.get(_url(p.slug, f"/exports/{exports[0]['id']}"), headers=agency).get_json()
    assert export["download_url"]
    with services.db.tenant_session(p.slug) as s:
        from billing.models import AgencyExport

        key = s.get(AgencyExport, export["id"]).storage_key
    fmt = agency_formats.validate_format(CSV)
    (row,) = agency_formats.accounts_from_records(fmt, agency_formats.parse(fmt, services.storage.get(key)))
    assert row["account_number"] == account_number and row["total_placed"] == D("25.00")
    assert row["services"] == [{"service_date": date.fromordinal(date.today().toordinal() - 170),
                                "service_balance": D("25.00")}]  # fmt: skip
    assert row["insurance_payer_name"] == "Acme Health Plan" and row["guarantor_last_name"] == "Lee"

    pay = {"amount": "20.00", "received_on": date.today().isoformat(), "reference": "KR-1001"}
    reported = client.post(_url(p.slug, f"/placements/{placement['id']}/payments"), headers=agency, json=pay)
    assert reported.status_code == 201, reported.get_json()
    body = reported.get_json()
    assert (body["gross"], body["fee"], body["net"], body["duplicate"]) == ("20.00", "5.00", "15.00", False)
    again = client.post(_url(p.slug, f"/placements/{placement['id']}/payments"), headers=agency, json=pay)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True and again.get_json()["id"] == body["id"]
    with services.db.tenant_session(p.slug) as s:
        assert ledger.patient_balance(s, scene["mine"]).patient == D("5.00")
    view = client.get(_url(p.slug, f"/placements/{placement['id']}"), headers=biller).get_json()
    assert (view["collected_gross"], view["collected_fee"], view["collected_net"]) == ("20.00", "5.00", "15.00")
    assert view["patient_balance"] == "5.00" and view["exported_in"] == export["id"]
    # Billers may not report for the agency; agencies may not approve or read candidates.
    assert client.post(_url(p.slug, f"/placements/{placement['id']}/payments"), headers=biller,
                       json=pay | {"reference": "B-1"}).status_code == 403  # fmt: skip
    assert client.get(_url(p.slug, "/candidates"), headers=agency).status_code == 403
    assert client.post(_url(p.slug, f"/candidates/{scene['unplaced']}/approve"), headers=agency,
                       json={"agency_id": a1.id}).status_code == 403  # fmt: skip
    assert client.put(_url(p.slug, "/rules"), headers=agency, json={"min_age_days": 1}).status_code == 403

    recalled = client.post(_url(p.slug, f"/placements/{placement['id']}/recall"), headers=agency,
                           json={"reason": "debtor deceased"})  # fmt: skip
    assert recalled.status_code == 200, recalled.get_json()
    assert recalled.get_json()["recalled_by"] == "agency" and recalled.get_json()["recalled_at"]
    assert client.get(_url(p.slug, "/placements"), headers=agency).get_json()["items"] == []
    assert client.get(f"/api/v1/practices/{p.slug}/patients/{scene['mine']}", headers=agency).status_code == 404
    recalled_list = client.get(_url(p.slug, "/placements?status=recalled"), headers=biller).get_json()["items"]
    assert [r["id"] for r in recalled_list] == [placement["id"]]
    with services.db.shared_session() as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.object_type.like("agency_%"))))
    assert {"place", "report", "recall", "download", "list"} <= actions


def test_agency_sees_nothing_it_was_not_sent(client, services, scene):
    p, q, r = scene["p"], scene["q"], scene["r"]
    agency = login(client, scene["agency_user"])
    with services.db.tenant_session(p.slug) as s:
        theirs = s.scalar(select(AgencyPlacement.id).where(AgencyPlacement.patient_id == scene["theirs"]))
        collections.export_agency(s, services.storage, p.slug, scene["a2"].id)
        s.commit()
    with services.db.tenant_session(q.slug) as s:
        q_placement = s.scalar(select(AgencyPlacement.id))
    # Practice P: the other agency's placement and export, and the unplaced patient, are not there.
    assert client.get(_url(p.slug, "/placements"), headers=agency).get_json()["items"] == []
    assert client.get(_url(p.slug, "/placements?status=all"), headers=agency).get_json()["items"] == []
    assert client.get(_url(p.slug, "/exports"), headers=agency).get_json()["items"] == []
    for url in (f"/placements/{theirs}", f"/placements/{theirs}/payments", "/exports/1", "/exports/2"):
        response = client.get(_url(p.slug, url), headers=agency)
        assert response.status_code == 404, (url, response.status_code)
    for pid in (scene["theirs"], scene["unplaced"]):
        assert client.get(f"/api/v1/practices/{p.slug}/patients/{pid}", headers=agency).status_code == 404
    pay = {"amount": "5.00", "received_on": date.today().isoformat(), "reference": "X-1"}
    assert client.post(_url(p.slug, f"/placements/{theirs}/payments"), headers=agency, json=pay).status_code == 404
    assert client.post(_url(p.slug, f"/placements/{theirs}/recall"), headers=agency,
                       json={"reason": "x"}).status_code == 404  # fmt: skip
    # Practice Q (served, but nothing placed with agency 1): empty lists, the other agency's export is 404.
    assert client.get(_url(q.slug, "/placements"), headers=agency).get_json()["items"] == []
    assert client.get(_url(q.slug, "/exports"), headers=agency).get_json()["items"] == []
    assert client.get(_url(q.slug, f"/placements/{q_placement}"), headers=agency).status_code == 404
    assert client.get(f"/api/v1/practices/{q.slug}/patients", headers=agency).get_json()["items"] == []
    # Practice R (not served): every collections endpoint is 404.
    for method, url in (("GET", "/placements"), ("GET", "/exports"), ("GET", "/exports/1"),
                        ("POST", "/placements/1/payments"), ("POST", "/placements/1/recall")):  # fmt: skip
        response = client.open(_url(r.slug, url), method=method, headers=agency, json=pay | {"reason": "x"})
        assert response.status_code == 404, (method, url, response.status_code)
    # The billers of P see both agencies' placements; a biller of another company sees none of it.
    biller = login(client, scene["biller"])
    assert {x["patient_id"] for x in client.get(_url(p.slug, "/placements"), headers=biller).get_json()["items"]} == {
        scene["theirs"]
    }
    outsider = login(client, scene["r"].biller_email)
    assert client.get(_url(p.slug, "/placements"), headers=outsider).status_code == 404


def test_rules_round_trip_and_validation(client, scene):
    p = scene["p"]
    biller = login(client, scene["biller"])
    assert client.get(_url(p.slug, "/rules"), headers=biller).get_json()["min_age_days"] == 120
    bad = client.put(_url(p.slug, "/rules"), headers=biller, json={"min_age_days": -1, "min_balance": "x"})
    assert bad.status_code == 422
    changed = client.put(_url(p.slug, "/rules"), headers=biller, json={"min_age_days": 160}).get_json()
    assert changed["min_age_days"] == 160 and changed["min_statements"] == 3
    ids = [c["patient_id"] for c in client.get(_url(p.slug, "/candidates"), headers=biller).get_json()["items"]]
    assert ids == [scene["mine"]]
    agencies = client.get(_url(p.slug, "/agencies"), headers=biller).get_json()
    assert {a["id"] for a in agencies} == {scene["a1"].id, scene["a2"].id}
    assert all(a["format_source"] == "default" for a in agencies)


def test_agency_payment_file_posts_all_lines_or_none(client, services, scene):
    p, a1 = scene["p"], scene["a1"]
    biller = login(client, scene["biller"])
    agency = login(client, scene["agency_user"])
    layout = {
        "type": "fixed",
        "date_format": "%Y%m%d",
        "money": "cents",
        "line_ending": "lf",
        "fields": [
            {"field": "account_number", "start": 1, "length": 30},
            {"field": "payment_date", "start": 31, "length": 8},
            {"field": "payment_amount", "start": 39, "length": 9, "align": "right", "pad": "0"},
            {"field": "payment_reference", "start": 48, "length": 12},
        ],
    }
    bad = client.put(_url(p.slug, f"/agencies/{a1.id}"), headers=biller,
                     json={"report_format": layout | {"fields": layout["fields"][:2]}})  # fmt: skip
    assert bad.status_code == 422 and "report_format.fields" in bad.get_json()["errors"]
    ok = client.put(_url(p.slug, f"/agencies/{a1.id}"), headers=biller,
                    json={"report_format": layout, "fee_percent": "10"})  # fmt: skip
    assert ok.status_code == 200 and ok.get_json()["report_format"]["type"] == "fixed"
    client.post(_url(p.slug, f"/candidates/{scene['mine']}/approve"), headers=biller, json={"agency_id": a1.id})
    with services.db.tenant_session(p.slug) as s:
        mine = s.get(Patient, scene["mine"]).account_number
        theirs = s.get(Patient, scene["theirs"]).account_number
    day = date.today().strftime("%Y%m%d")

    def line(account: str, cents: int, ref: str) -> str:
        return f"{account:<30}{day}{cents:09d}{ref:<12}\n"

    def upload(text: str):
        import io

        return client.post(_url(p.slug, "/payment-files"), headers=agency, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(text.encode()), "payments.txt")})  # fmt: skip

    # One line names another agency's account: nothing of the file is posted.
    refused = upload(line(mine, 1000, "F-1") + line(theirs, 500, "F-2"))
    assert refused.status_code == 422
    assert "record 2" in refused.get_json()["errors"] and "not placed with" in str(refused.get_json()["errors"])
    with services.db.tenant_session(p.slug) as s:
        assert ledger.patient_balance(s, scene["mine"]).patient == D("25.00")
    posted = upload(line(mine, 1000, "F-1") + line(mine, 250, "F-3"))
    assert posted.status_code == 200, posted.get_json()
    assert posted.get_json() | {"storage_key": ""} == {
        "agency_id": a1.id, "posted": 2, "duplicates": 0, "gross": "12.50", "storage_key": ""
    }  # fmt: skip
    assert "/returns/" in posted.get_json()["storage_key"]
    again = upload(line(mine, 1000, "F-1") + line(mine, 250, "F-3")).get_json()
    assert (again["posted"], again["duplicates"]) == (0, 2)
    with services.db.tenant_session(p.slug) as s:
        assert ledger.patient_balance(s, scene["mine"]).patient == D("12.50")
    payments = client.get(_url(p.slug, "/placements"), headers=biller).get_json()["items"]
    view = next(x for x in payments if x["patient_id"] == scene["mine"])
    assert (view["collected_gross"], view["collected_fee"], view["collected_net"]) == ("12.50", "1.25", "11.25")
    assert client.post(_url(p.slug, "/payment-files"), headers=biller).status_code == 403


def test_lists_cost_the_same_queries_whatever_their_length(client, services, factory, scene):
    from sqlalchemy import event

    p, a1 = scene["p"], scene["a1"]
    biller = login(client, scene["biller"])
    engine = services.db.engine
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    def measure(path: str) -> tuple[int, int]:
        seen.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.get(_url(p.slug, path), headers=biller)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200
        return len(seen), len(response.get_json()["items"])

    client.get(_url(p.slug, "/placements"), headers=biller)  # warm-up
    few = {path: measure(path) for path in ("/placements", "/candidates")}
    for _ in range(4):
        pid = insured_patient(services, p, factory)
        owed_visit(services, p, pid, days_ago=140)
        statements(services, p, pid, 3)
        client.post(_url(p.slug, f"/candidates/{pid}/approve"), headers=biller, json={"agency_id": a1.id})
        more = insured_patient(services, p, factory)
        owed_visit(services, p, more, days_ago=140)
        statements(services, p, more, 3)
    for path, (queries, listed) in few.items():
        queries_after, listed_after = measure(path)
        assert listed_after == listed + 4, path
        assert queries_after == queries, (path, queries, queries_after)
