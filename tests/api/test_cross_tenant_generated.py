"""Cross-tenant requests generated from the OpenAPI document: for every path and method, as each role, a request
aimed at another tenant (another company's practice by slug, its ids in every id parameter, its company by slug in
`company`; a sister practice for single-practice roles; another agency's placements and patients for an agency
user) answers 404/403 and carries not one of the other tenant's identifying strings. Reports (JSON and
`?format=csv`, raw SQL underneath), documents and their downloads included.

The tenants are this module's own, seeded with unique names and account numbers, so the secrets can be searched
for in every byte of every answer."""

from __future__ import annotations

import io
import json
import re
import secrets

import pytest

from billing import claims as claim_service
from billing import collections
from billing.claim_status import transition
from billing.models import Patient
from tenants.models import Practice
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.billing.test_collections import owed_visit, statements
from tests.conftest import login

METHODS = ("get", "post", "put", "patch", "delete")
IDS = (1, 2, 3)  # ids restart at 1 in every practice schema: the victim's rows have these ids


@pytest.fixture(scope="module")
def tenants(services, factory):
    """Company X runs practice H (home); company Y runs V (the victim), seeded with a billed claim, a placement and
    statements. Agency 1 serves H; agency 2 serves H and V and has a placement in each."""
    x, y = factory.company(), factory.company()
    home = billing_practice(services, factory, company=x)
    victim = billing_practice(services, factory, company=y)
    sister = factory.practice(x.slug)
    agency1 = factory.agency([home.slug])
    agency2 = factory.agency([home.slug, victim.slug])
    tag = secrets.token_hex(3)
    strings: dict[str, list[str]] = {"victim": [], "sister": [], "other_agency": []}

    def seeded(bp, key: str, n: int) -> int:
        pid = insured_patient(services, bp, factory)
        with services.db.tenant_session(bp.slug) as s:
            patient = s.get(Patient, pid)
            patient.first_name, patient.last_name = f"Vq{key}{n}{tag}", f"Zx{key}{n}{tag}secret"
            patient.account_number = f"AC{key}{n}{tag}".upper()
            strings[key] += [patient.first_name, patient.last_name, patient.account_number]
            s.commit()
        return pid

    for n in range(2):
        pid = seeded(victim, "victim", n)
        owed_visit(services, victim, pid, days_ago=160)
        statements(services, victim, pid, 3)
        with services.db.tenant_session(victim.slug) as s:
            (claim,) = claim_service.create_claims(s, victim.access, visit(services, victim, pid))
            transition(s, claim, "ready", source="test")
            if n == 0:
                collections.approve(s, victim.access, pid, agency2.id)
            s.commit()
    # In the home practice: one account placed with agency 1, one with agency 2 (whose data agency 1 never sees).
    mine = insured_patient(services, home, factory)
    theirs = seeded(home, "other_agency", 0)
    for pid, agency in ((mine, agency1), (theirs, agency2)):
        owed_visit(services, home, pid, days_ago=160)
        statements(services, home, pid, 3)
        with services.db.tenant_session(home.slug) as s:
            collections.approve(s, home.access, pid, agency.id)
            s.commit()
    factory.patient(sister.slug, first_name=f"Vqsister{tag}", last_name=f"Zxsister{tag}secret")
    strings["sister"] = [f"Vqsister{tag}", f"Zxsister{tag}secret"]
    with services.db.shared_session() as s:
        home_practice = s.query(Practice).filter_by(slug=home.slug).one()
    users = {
        "company_admin": factory.user("company_admin", company=x),
        "biller": home.biller_email,
        "doctor": factory.user("doctor", practice=home_practice),
        "agency": factory.user("agency", agency=agency1),
    }
    return {
        "home": home.slug, "victim": victim.slug, "victim_company": y.slug, "sister": sister.slug, "users": users,
        "strings": strings, "theirs": theirs, "victim_biller": victim.biller_email,
    }  # fmt: skip


@pytest.fixture(scope="module")
def document(app):
    return app.test_client().get("/api/openapi.json").get_json()


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def minimal(doc: dict, schema: dict, depth: int = 0):
    """The smallest instance the schema accepts (required properties only), so the request passes body validation
    where that runs first and reaches the tenancy check."""
    schema = _resolve(doc, schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: minimal(doc, props[k], depth + 1) for k in schema.get("required", []) if k in props and depth < 5}
    if kind == "array":
        return [minimal(doc, schema.get("items", {}), depth + 1)] if schema.get("minItems") else []
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    fmt = schema.get("format")
    return {"date": "2026-01-05", "date-time": "2026-01-05T10:00:00Z", "decimal": "1.00", "email": "a@b.test"}.get(
        fmt, "A1"
    )


def requests_for(doc: dict, path: str, method: str, op: dict, slug: str, ids, extra_query: dict):
    """(url, kwargs) pairs: the path with `slug` and each id in turn, the operation's required query parameters, the
    CSV variant of a report, and a body (JSON, or a multipart file where the operation reads an upload)."""
    query = {}
    for p in op.get("parameters", []):
        if p.get("in") == "query" and p.get("required"):
            query[p["name"]] = minimal(doc, p.get("schema", {}))
    names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
    query |= {k: v for k, v in extra_query.items() if k in names}
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    kwargs: dict = {}
    if body:
        kwargs["json"] = minimal(doc, body["schema"])
    elif method in ("post", "put"):
        kwargs["data"] = {"file": (io.BytesIO(b"account_number\n1\n"), "upload.csv")}
        kwargs["content_type"] = "multipart/form-data"
    variants = [query] + ([query | {"format": "csv"}] if "format" in names else [])
    for id_value in ids:
        url = re.sub(r"\{slug\}", slug, path)
        url = re.sub(r"\{[a-z_]+\}", lambda m, v=id_value: str(v) if m.group(0).endswith("id}") else "A1", url)
        for q in variants:
            yield url, q, kwargs


def _call(client, method, url, query, kwargs, headers):
    kw = dict(kwargs)
    if "data" in kw:  # a fresh stream per request
        kw["data"] = {"file": (io.BytesIO(b"account_number\n1\n"), "upload.csv")}
    return client.open(url, method=method.upper(), headers=headers, query_string=query, **kw)


def _leaks(response, forbidden: list[str]) -> list[str]:
    body = response.get_data()
    if response.status_code in (301, 302, 303, 307, 308):
        body += (response.headers.get("Location") or "").encode()
    return [s for s in forbidden if s.encode() in body or s.lower().encode() in body.lower()]


def _sweep(client, doc, headers, slug, ids, forbidden, extra_query, *, allowed, only_slug_paths=True):
    problems = []
    calls = 0
    for path, ops in doc["paths"].items():
        if only_slug_paths != ("{slug}" in path):
            continue
        for method in METHODS:
            if method not in ops or path.endswith("/auth/token") or path.endswith("/tokens/{token_id}"):
                continue
            for url, query, kwargs in requests_for(doc, path, method, ops[method], slug, ids, extra_query):
                response = _call(client, method, url, query, kwargs, headers)
                calls += 1
                leaked = _leaks(response, forbidden)
                if leaked or (allowed and response.status_code not in allowed):
                    problems.append(f"{method.upper()} {url} {query}: {response.status_code} leaked={leaked}")
    return calls, problems


ROLES = ("company_admin", "biller", "doctor", "agency")


def test_the_secrets_are_there_for_their_owner(client, tenants):
    """The control: the strings searched for are really in the victim's answers, to its own biller, in JSON and in a
    CSV report row count."""
    headers = login(client, tenants["victim_biller"])
    listed = client.get(f"/api/v1/practices/{tenants['victim']}/patients?per_page=50", headers=headers)
    assert listed.status_code == 200
    assert set(tenants["strings"]["victim"]) <= set(_leaks(listed, tenants["strings"]["victim"]))
    aging = client.get(f"/api/v1/practices/{tenants['victim']}/reports/ar-aging?format=csv", headers=headers)
    assert aging.status_code == 200 and aging.mimetype == "text/csv"


@pytest.mark.parametrize("role", ROLES)
def test_another_company_practice_is_404_everywhere(client, tenants, document, role):
    headers = login(client, tenants["users"][role])
    forbidden = tenants["strings"]["victim"]
    calls, problems = _sweep(client, document, headers, tenants["victim"], IDS, forbidden, {}, allowed={403, 404})
    assert calls > 100
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLES)
def test_company_level_endpoints_never_show_another_company(client, tenants, document, role):
    """Paths without a practice (payers, EDI intake and unmatched sets, the company overview, jobs...) asked about
    the victim's company by slug: refused or answered without a byte of it."""
    headers = login(client, tenants["users"][role])
    forbidden = tenants["strings"]["victim"]
    extra = {"company": tenants["victim_company"], "practice": tenants["victim"], "q": forbidden[1]}
    calls, problems = _sweep(client, document, headers, "", IDS, forbidden, extra, allowed=None, only_slug_paths=False)
    assert calls > 5
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ("doctor", "agency"))
def test_single_practice_roles_do_not_reach_a_sister_practice(client, tenants, document, role):
    headers = login(client, tenants["users"][role])
    forbidden = tenants["strings"]["sister"]
    calls, problems = _sweep(client, document, headers, tenants["sister"], IDS, forbidden, {}, allowed={403, 404})
    assert calls > 100
    assert not problems, "\n".join(problems)


def test_agency_never_sees_another_agency_placements(client, tenants, document):
    """In the practice the agency serves, every endpoint with the other agency's patient (and every small id):
    whatever the answer, none of that patient's strings."""
    headers = login(client, tenants["users"]["agency"])
    forbidden = tenants["strings"]["other_agency"]
    ids = sorted({*IDS, tenants["theirs"]})
    calls, problems = _sweep(client, document, headers, tenants["home"], ids, forbidden, {}, allowed=None)
    assert calls > 100
    assert not problems, "\n".join(problems)
    # The home practice's own lists as the agency: its placement is there, the other agency's is not.
    listed = client.get(f"/api/v1/practices/{tenants['home']}/collections/placements", headers=headers)
    assert listed.status_code == 200 and json.dumps(listed.get_json())
    assert not _leaks(listed, forbidden)
