"""Every portal page of a practice, asked for by someone outside it: a biller of another billing company and a doctor of
a sibling practice get a 404 for every `/practices/<slug>/...` GET route (ids filled with ids that exist in the
practice), and no page body ever holds the practice's patients' names."""

from __future__ import annotations

import re

import pytest

from tests.support.portal import sign_in

ARG = re.compile(r"<(?:(?P<conv>[^:<>]+):)?(?P<name>[^<>]+)>")


def practice_get_routes(app) -> list:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("portal.") and "<slug>" in rule.rule and "GET" in (rule.methods or set())
    ]


def fill(rule, slug: str, id_value: int) -> str:
    def value(match) -> str:
        name, conv = match["name"], match["conv"] or "default"
        if name == "slug":
            return slug
        return str(id_value) if conv in ("int", "id") else "x"

    return ARG.sub(value, rule.rule)


@pytest.mark.parametrize("outsider", ["biller_y", "doctor_b"])
def test_no_portal_page_of_a_practice_opens_to_an_outsider(app, world, outsider):
    routes = practice_get_routes(app)
    # The walk sees the pages we know of (so it sees every other one the url map holds).
    endpoints = {rule.endpoint for rule in routes}
    assert {"portal.remittance_detail", "portal.denials"} <= endpoints and len(routes) >= 20, endpoints
    target = world.practices["A"]
    secrets_of_a = [p["last_name"] for p in world.patients["A"]]
    patient_id = world.patients["A"][0]["id"]
    client = app.test_client()
    sign_in(client, world.users[outsider])
    answered = {}
    for rule in routes:
        url = fill(rule, target, patient_id)
        response = client.get(url)
        body = response.get_data(as_text=True)
        answered[rule.endpoint] = response.status_code
        assert response.status_code == 404, (outsider, rule.endpoint, url, response.status_code)
        assert not any(name in body for name in secrets_of_a), (outsider, rule.endpoint, url)
    # The same client reaches its own pages: the 404s are the boundary, not a broken session.
    own = world.practices["C" if outsider == "biller_y" else "B"]
    assert client.get(f"/practices/{own}/reports/summary").status_code == 200


def test_the_insider_opens_the_same_pages(app, world):
    """The walk's URLs are real pages: a biller of the practice's company gets no 404 on the list pages."""
    client = app.test_client()
    sign_in(client, world.users["biller_x"])
    target = world.practices["A"]
    listed = [rule for rule in practice_get_routes(app) if not rule.arguments - {"slug"}]
    assert len(listed) >= 10
    codes = {rule.endpoint: client.get(fill(rule, target, 1)).status_code for rule in listed}
    # Two pages name a thing by query string that an empty practice lacks (an aging cell, a rendered month's PDF):
    # their 404 is "no such cell/PDF", which the outsider walk above never reaches anyway.
    expected_missing = {"portal.report_aging_claims", "portal.report_pdf"}
    assert {e: c for e, c in codes.items() if (c == 404 and e not in expected_missing) or c >= 500} == {}
