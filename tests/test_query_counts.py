"""The number of SQL statements each main list and detail endpoint runs is pinned, and it does not grow with the
rows: every endpoint is measured with N rows of everything, then again with 3N, and both counts must equal the pinned
figure. A change that adds a query per request shows here with the endpoint's name; one that adds a query per row
fails the N/3N comparison. (bench/api_load.py measures what these endpoints cost under load.)

Also here: a pooled connection retires after serving a bounded number of practice schemas (tenants/db.py), so the
PostgreSQL backends' catalog caches stay bounded however many practices a process serves."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select, text

from billing import claims as claim_service
from billing import statements
from billing.models import AgencyPlacement, Claim, ClaimLine, ServiceLine
from billing.posting import post_remittance, record_inbound
from integrations.x12.remit835 import parse_835
from tenants.db import Database, set_local_search_path
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import login

N = 3

# Statements per request, after a warm-up request of the same URL. Raise one only with a reason in the commit.
# Every API request costs 3 statements before its own (the bearer token, the caller's memberships, the practice) and
# most end with 1 audit INSERT.
PINNED = {
    "claims list": 9,
    "claim detail": 12,
    "patients list": 6,
    "patient detail": 5,
    "remittances list": 6,
    "denial work queue": 13,
    "statement runs": 4,
    "collections placements": 11,
    "reports monthly summary": 10,
}

_trace = itertools.count(1)


def _835(claim_id: int, lines, *, deny: bool) -> str:
    """One 835 set for one claim: paid at 60% with 20% coinsurance, or denied CO-50."""
    today = date.today()
    body, charge_total, paid_total, pr_total = [], Decimal(0), Decimal(0), Decimal(0)
    for line_id, charge, code, dos in lines:
        allowed = (charge * Decimal("0.60")).quantize(Decimal("0.01"))
        coins = Decimal(0) if deny else (allowed * Decimal("0.20")).quantize(Decimal("0.01"))
        paid = Decimal(0) if deny else allowed - coins
        adjust = [f"CAS*CO*50*{charge}"] if deny else [f"CAS*CO*45*{charge - allowed}", f"CAS*PR*2*{coins}"]
        body += [f"SVC*HC:{code}*{charge}*{paid}**1", f"DTM*472*{dos:%Y%m%d}", *adjust, f"REF*6R*{line_id}"]
        charge_total, paid_total, pr_total = charge_total + charge, paid_total + paid, pr_total + coins
    trace = next(_trace)
    segments = [
        "ST*835*0001",
        f"BPR*I*{paid_total}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*{today:%Y%m%d}",
        f"TRN*1*QC{trace:08d}*1512345678", f"DTM*405*{today:%Y%m%d}", "N1*PR*ACME HEALTH", "N3*1 PAYER WAY",
        "N4*COLUMBUS*OH*43215", "N1*PE*SUNRISE FAMILY PRACTICE*XX*1234567893", "LX*1",
        f"CLP*{claim_id}*{4 if deny else 1}*{charge_total}*{paid_total}*{pr_total}*12*PAYER{claim_id}*11",
        f"NM1*QC*1*LEE*ANN****MI*M{claim_id}", *body,
    ]  # fmt: skip
    segments.append(f"SE*{len(segments) + 1}*0001")
    isa = (
        f"ISA*00*          *00*          *ZZ*{'ACMEPAYER':<15}*ZZ*{'SUNRISE':<15}*{today:%y%m%d}*1200*^*00501*"
        f"{trace:09d}*0*P*:"
    )
    return "~\n".join([isa, f"GS*HP*ACMEPAYER*SUNRISE*{today:%Y%m%d}*1200*{trace}*X*005010X221A1", *segments,
                       f"GE*1*{trace}", f"IEA*1*{trace:09d}"]) + "~\n"  # fmt: skip


class Practice:
    """One billing practice that grows: each `grow(n)` adds n of every kind of row the endpoints list."""

    def __init__(self, services, factory) -> None:
        self.services, self.factory = services, factory
        self.bp = billing_practice(services, factory)
        self.agency = factory.agency([self.bp.slug])
        self.runs = 0
        self.claim_id = self.patient_id = 0

    def grow(self, n: int) -> None:
        db, slug = self.services.db, self.bp.slug
        for k in range(n):
            patient = insured_patient(self.services, self.bp, self.factory)
            encounter = visit(self.services, self.bp, patient, days_ago=10 + k)
            with db.tenant_session(slug) as s:
                (claim,) = claim_service.create_claims(s, self.bp.access, encounter, "none")
                claim_id = claim.id
                set_local_search_path(s, slug)
                s.execute(text("UPDATE claims SET status = 'accepted' WHERE id = :id"), {"id": claim_id})
                lines = s.execute(
                    select(ClaimLine.id, ClaimLine.charge, ServiceLine.procedure_code, ServiceLine.date_of_service)
                    .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
                    .where(ClaimLine.claim_id == claim_id)
                    .order_by(ClaimLine.line_number)
                ).all()
                (remittance,) = parse_835(_835(claim_id, lines, deny=k % 2 == 1))
                inbound = record_inbound(s, remittance, "test")
                summary = post_remittance(s, remittance, inbound_id=inbound, deposit_storage_key="test")
                assert not summary["exceptions"], summary
                s.add(AgencyPlacement(patient_id=patient, agency_id=self.agency.id))
                # A run in a cycle of its own (one run per cycle), further back each time.
                self.runs += 1
                statements.start_run(s, None, today=date.today() - timedelta(days=120 * self.runs), trigger="user")
                s.commit()
            self.claim_id, self.patient_id = claim_id, patient

    def urls(self) -> dict[str, str]:
        base = f"/api/v1/practices/{self.bp.slug}"
        return {
            "claims list": f"{base}/claims?per_page=100",
            "claim detail": f"{base}/claims/{self.claim_id}",
            "patients list": f"{base}/patients?per_page=100",
            "patient detail": f"{base}/patients/{self.patient_id}",
            "remittances list": f"{base}/remittances?per_page=100",
            "denial work queue": f"{base}/denial-work?status=all&per_page=100",
            "statement runs": f"{base}/statement-runs",
            "collections placements": f"{base}/collections/placements",
            "reports monthly summary": f"{base}/reports/monthly-summary?month={date.today():%Y-%m}",
        }


def _measure(client, services, url: str, headers) -> tuple[int, dict, list[str]]:
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    client.get(url, headers=headers)  # warm-up: a queue syncs what posting recorded, caches fill
    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        response = client.get(url, headers=headers)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    assert response.status_code == 200, (url, response.status_code, response.get_json())
    return len(seen), response.get_json(), seen


def _size(body: dict) -> int:
    """Rows in a list answer (items, or runs); 0 for a detail."""
    for key in ("items", "runs"):
        if isinstance(body, dict) and isinstance(body.get(key), list):
            return len(body[key])
    return 0


@pytest.fixture(scope="module")
def practice(services, factory) -> Practice:
    return Practice(services, factory)


def test_statements_per_request_are_pinned_and_do_not_grow_with_rows(client, services, practice):
    headers = login(client, practice.bp.biller_email)
    practice.grow(N)
    few = {name: _measure(client, services, url, headers) for name, url in practice.urls().items()}
    practice.grow(2 * N)
    many = {name: _measure(client, services, url, headers) for name, url in practice.urls().items()}
    counts = {name: (few[name][0], many[name][0]) for name in PINNED}
    for name in PINNED:
        if name.endswith("list") or name in ("denial work queue", "statement runs", "collections placements"):
            assert _size(many[name][1]) > _size(few[name][1]) > 0, (name, _size(few[name][1]), _size(many[name][1]))
    grew = {name: c for name, c in counts.items() if c[0] != c[1]}
    assert not grew, f"statements per request grow with rows (N, 3N): {grew}"
    moved = {name: (c[0], PINNED[name]) for name, c in counts.items() if c[0] != PINNED[name]}
    assert not moved, f"statements per request (now, pinned): {moved}"


def test_a_pooled_connection_retires_after_serving_many_schemas(settings, factory, world):
    db = Database(settings.database_url, pool_size=1, schemas_per_connection=2)
    slugs = list(world.practices.values())

    def backend(slug: str) -> int:
        with db.tenant_session(slug) as s:
            pid = s.scalar(text("SELECT pg_backend_pid()"))
            s.scalar(select(Claim.id).limit(1))
            return pid

    try:
        first = backend(slugs[0])
        assert backend(slugs[0]) == first  # the same schema again: nothing new on the connection
        assert backend(slugs[1]) == first  # a second schema: still the same connection
        third = backend(slugs[2])  # the connection served two schemas: a fresh one takes its place
        assert third != first
        assert backend(slugs[0]) == third
        assert db.engine.pool.checkedout() == 0
    finally:
        db.dispose()
