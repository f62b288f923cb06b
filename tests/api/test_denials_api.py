"""Denial work over HTTP on real posted denials: the queue (synced from posting, grouped by reason and payer, filtered),
item detail, assignment and notes, closing actions with their permissions (write-off: biller 403, company admin with
confirmation), appeal letters (PDF link, outcome), per-practice templates checked on save, the follow-up queue and
its rules, audit entries, and tenant isolation (another company's biller gets 404)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import event, select

from billing import ledger
from billing.models import DenialItem, LedgerEntry
from tenants.models import AuditEntry, Practice
from tests.billing.test_denials import denied_practice
from tests.conftest import login


@pytest.fixture(scope="module")
def denied(services, factory, tmp_path_factory):
    return denied_practice(services, factory, tmp_path_factory, st02="7201")


@pytest.fixture()
def biller(client, denied):
    return login(client, denied.bp.biller_email)


@pytest.fixture()
def admin(client, denied):
    return login(client, denied.admin_email)


def _base(denied) -> str:
    return f"/api/v1/practices/{denied.bp.slug}"


def _items(client, denied, headers, **query) -> dict:
    response = client.get(f"{_base(denied)}/denial-work", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _audited(services, slug: str, object_type: str) -> set[tuple[str | None, str]]:
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == slug))
        rows = s.execute(
            select(AuditEntry.object_id, AuditEntry.action).where(
                AuditEntry.practice_id == practice_id, AuditEntry.object_type == object_type
            )
        )
        return {tuple(r) for r in rows}


def test_queue_lists_denials_grouped_and_filtered(client, services, denied, biller):
    body = _items(client, denied, biller, kind="denial", per_page=100)
    assert body["meta"]["total"] == 6 == len(body["items"])
    codes = {r["code"]: r["count"] for r in body["reasons"]}
    assert codes == {"CO-50": 3, "CO-16": 2, "PI-204": 1}
    assert body["payers"][0]["name"] == "Acme Health Plan" and body["payers"][0]["count"] == 6
    first = body["items"][0]
    assert first["reasons"][0]["description"] and first["patient"]["last_name"] == "Lee"
    assert first["age_days"] >= 0 and Decimal(first["amount"]) > 0
    co16 = _items(client, denied, biller, reason="CO-16")
    assert {i["claim_id"] for i in co16["items"]} == {denied.missing_info_claim}
    assert _items(client, denied, biller, kind="denial", min_amount="1000")["meta"]["total"] == 0
    again = _items(client, denied, biller, kind="denial")  # synced again: nothing doubles
    assert again["meta"]["total"] == 6
    assert (None, "list") in _audited(services, denied.bp.slug, "denial_item")
    bad = client.get(f"{_base(denied)}/denial-work", headers=biller, query_string={"reason": "fifty"})
    assert bad.status_code == 422


def test_assign_note_and_detail(client, services, denied, biller):
    item = _items(client, denied, biller, claim_id=denied.line_co50_claim)["items"][0]
    url = f"{_base(denied)}/denial-work/{item['id']}"
    me = denied.bp.access.user_id
    response = client.post(f"{url}/assign", headers=biller, json={"user_id": me})
    assert response.status_code == 200 and response.get_json()["assigned_user_id"] == me
    assert client.post(f"{url}/assign", headers=biller, json={"user_id": 999999}).status_code == 422
    response = client.post(f"{url}/notes", headers=biller, json={"body": "Asked for the records"})
    assert response.status_code == 201
    detail = client.get(url, headers=biller).get_json()
    assert [n["body"] for n in detail["notes"]] == ["Asked for the records"]
    assert detail["suggested_family"] == "medical_necessity" and detail["balance"]["insurance"] == "0.00"
    mine = _items(client, denied, biller, assigned_user_id=me)
    assert [i["id"] for i in mine["items"]] == [item["id"]]
    assert (str(item["id"]), "note") in _audited(services, denied.bp.slug, "denial_item")


def test_write_off_is_for_admins_and_needs_confirmation(client, services, denied, biller, admin):
    (item,) = _items(client, denied, biller, claim_id=denied.line_denied_claim, kind="denial")["items"]
    url = f"{_base(denied)}/denial-work/{item['id']}/close"
    write_off = {"action": "write_off", "reason_code": "204", "reason": "not covered", "confirm": True}
    denied_response = client.post(url, headers=biller, json=write_off)
    assert denied_response.status_code == 403, denied_response.get_json()
    unconfirmed = client.post(url, headers=admin, json=write_off | {"confirm": False})
    assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.get_json()["errors"]
    response = client.post(url, headers=admin, json=write_off)
    assert response.status_code == 200, response.get_json()
    out = response.get_json()
    assert out["status"] == "closed" and out["action"] == "written_off" and out["balance"]["insurance"] == "0.00"
    with services.db.tenant_session(denied.bp.slug) as s:
        entry = s.scalar(
            select(LedgerEntry).where(
                LedgerEntry.claim_line_id == item["claim_line_id"], LedgerEntry.kind == "write_off"
            )
        )
        assert entry.amount == Decimal(item["charge"]) and entry.reason_code == "204"
        assert ledger.line_balance(s, item["claim_line_id"]).insurance == Decimal("0.00")
    assert client.post(url, headers=admin, json=write_off).status_code == 409


def test_resubmit_through_the_api(client, denied, biller):
    item = _items(client, denied, biller, claim_id=denied.missing_info_claim)["items"][0]
    response = client.post(
        f"{_base(denied)}/denial-work/{item['id']}/close", headers=biller,
        json={"action": "resubmit", "reason": "added the referring provider"},
    )  # fmt: skip
    assert response.status_code == 200, response.get_json()
    correction_id = response.get_json()["action_detail"]["correction_claim_id"]
    claim = client.get(f"{_base(denied)}/claims/{correction_id}", headers=biller).get_json()
    assert claim["frequency_code"] == "7" and claim["payer_claim_number"] == item["payer_claim_number"]


def test_appeal_letter_and_outcome(client, services, denied, biller):
    item = _items(client, denied, biller, claim_id=denied.medical_necessity_claim)["items"][0]
    response = client.post(
        f"{_base(denied)}/denial-work/{item['id']}/appeals", headers=biller,
        json={"argument": "Documented chest pain justified the ECG."},
    )  # fmt: skip
    assert response.status_code == 201, response.get_json()
    appeal = response.get_json()
    # The link given out is the audited route, never a storage link that would skip the audit.
    assert appeal["family"] == "medical_necessity" and appeal["download_url"] == appeal["pdf_url"]
    assert "Documented chest pain justified the ECG." in appeal["letter_text"]
    pdf = client.get(appeal["pdf_url"], headers=biller)
    assert pdf.status_code == 302 and f"appeal-{appeal['id']}.pdf" in pdf.headers["Location"]
    assert (str(appeal["id"]), "download") in _audited(services, denied.bp.slug, "appeal")
    with services.db.tenant_session(denied.bp.slug) as s:
        key = s.scalar(select(DenialItem.appeal_id).where(DenialItem.id == item["id"]))
        assert key == appeal["id"]
    listed = client.get(f"{_base(denied)}/appeals", headers=biller, query_string={"open": "true"}).get_json()
    assert appeal["id"] in [a["id"] for a in listed["items"]]
    outcome_url = f"{_base(denied)}/appeals/{appeal['id']}/outcome"
    assert client.post(outcome_url, headers=biller, json={"outcome": "won"}).status_code == 422
    response = client.post(outcome_url, headers=biller, json={"outcome": "overturned", "note": "payer will reprocess"})
    assert response.status_code == 200 and response.get_json()["outcome"] == "overturned"
    detail = client.get(f"{_base(denied)}/denial-work/{item['id']}", headers=biller).get_json()
    assert detail["action"] == "appeal_overturned" and detail["balance"]["insurance"] == item["charge"]
    assert (str(appeal["id"]), "outcome") in _audited(services, denied.bp.slug, "appeal")


def test_templates_per_practice(client, denied, biller):
    url = f"{_base(denied)}/appeal-templates/coding"
    assert client.get(url, headers=biller).get_json()["source"] == "default"
    bad = client.put(url, headers=biller, json={"body": "{{ claim.nmber }}"})
    assert bad.status_code == 422 and "nmber" in bad.get_json()["message"]
    good = client.put(url, headers=biller, json={"body": "Claim {{ claim.number }}: {{ argument }}"})
    assert good.status_code == 200 and good.get_json()["source"] == "practice"
    listed = client.get(f"{_base(denied)}/appeal-templates", headers=biller).get_json()["items"]
    assert {t["family"]: t["source"] for t in listed}["coding"] == "practice" and len(listed) == 5
    assert client.delete(url, headers=biller).get_json()["source"] == "default"


def test_follow_up_queue_and_rules(client, denied, biller):
    response = client.get(f"{_base(denied)}/follow-ups", headers=biller)
    assert response.status_code == 200 and response.get_json()["meta"]["total"] == 0
    rule = client.put(f"{_base(denied)}/follow-up-rules/{denied.bp.payer_id}", headers=biller, json={"days": 45})
    assert rule.status_code == 200 and rule.get_json() == {"payer_id": denied.bp.payer_id, "days": 45}
    assert client.put(f"{_base(denied)}/follow-up-rules/999999", headers=biller, json={"days": 45}).status_code == 404
    assert (
        client.put(f"{_base(denied)}/follow-up-rules/{denied.bp.payer_id}", headers=biller, json={"days": 0})
    ).status_code == 422


def test_another_company_sees_nothing(client, factory, denied, biller):
    stranger = login(client, factory.user("biller", company=factory.company()))
    item = _items(client, denied, biller, status="all")["items"][0]
    for url in (
        f"{_base(denied)}/denial-work",
        f"{_base(denied)}/denial-work/{item['id']}",
        f"{_base(denied)}/appeals",
        f"{_base(denied)}/follow-ups",
    ):
        assert client.get(url, headers=stranger).status_code == 404, url
    closing = client.post(
        f"{_base(denied)}/denial-work/{item['id']}/close", headers=stranger, json={"action": "bill_patient"}
    )
    assert closing.status_code == 404


def test_the_endpoints_are_documented(client):
    spec = client.get("/api/openapi.json").get_json()
    for path in (
        "/denial-work", "/denial-work/{item_id}", "/denial-work/{item_id}/assign", "/denial-work/{item_id}/notes",
        "/denial-work/{item_id}/close", "/denial-work/{item_id}/appeals", "/appeals", "/appeals/{appeal_id}",
        "/appeals/{appeal_id}/pdf", "/appeals/{appeal_id}/outcome", "/appeal-templates", "/appeal-templates/{family}",
        "/follow-ups", "/follow-ups/{item_id}/close", "/follow-up-rules/{payer_id}",
    ):  # fmt: skip
        assert f"/api/v1/practices/{{slug}}{path}" in spec["paths"], path
    queue = spec["paths"]["/api/v1/practices/{slug}/denial-work"]["get"]
    assert {p["name"] for p in queue["parameters"]} >= {"reason", "payer_id", "min_age", "max_amount", "status", "kind"}


def test_queue_does_not_query_per_row(client, services, denied, biller):
    def measure(per_page: int) -> tuple[int, int]:
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(services.db.engine, "before_cursor_execute", count)
        try:
            body = _items(client, denied, biller, status="all", per_page=per_page)
        finally:
            event.remove(services.db.engine, "before_cursor_execute", count)
        return len(statements), len(body["items"])

    measure(1)  # the queue is synced with what posting recorded
    (one, n_one), (many, n_many) = measure(1), measure(100)
    assert n_one == 1 and n_many > 5
    assert one == many
