"""The biller's home page: one card per work queue of billing.work_queues with the registry's own count and link,
the denial queue brought up to date with what posting recorded, the latest postings linking to their deposits, long
runs with their progress, and a page that costs the same number of statements however much work is waiting."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import event, func, select

from billing import statements, work_queues
from billing.models import DenialItem, StatementRun
from tests.billing.test_denials import denied_practice
from tests.portal.test_portal import csrf_from, portal_login


def text(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.fixture(scope="module")
def small(services, factory, tmp_path_factory):
    """Four denied claims, posted but never synced into the denial work queue (the home must do it)."""
    return denied_practice(services, factory, tmp_path_factory, st02="7401")


@pytest.fixture(scope="module")
def large(services, factory, tmp_path_factory):
    """Six denied claims: more denial items, underpayments and posted claims than `small`."""
    return denied_practice(services, factory, tmp_path_factory, st02="7402", spare=True)


def _client(app, email: str, slug: str):
    client = app.test_client()
    portal_login(client, email)
    client.post("/practice", data={"practice": slug, "csrf_token": csrf_from(client.get("/home"))})
    return client


def _card(html: str, name: str) -> tuple[str, str, int]:
    """(link, label, count) of the queue card `name`."""
    match = re.search(
        rf'<li class="queue queue--live" id="queue-{name}">.*?<a href="([^"]+)">([^<]+)</a>.*?'
        r'class="stat__value">([\d,]+)<',
        html,
        re.S,
    )
    assert match, f"no card for {name}"
    return unescape(match.group(1)), match.group(2), int(match.group(3).replace(",", ""))


def test_every_queue_has_a_card_with_the_registrys_count_and_link(app, services, small):
    slug = small.bp.slug
    with services.db.tenant_session(slug) as s:
        assert s.scalar(select(func.count()).select_from(DenialItem)) == 0  # posting alone derives no item
    biller = _client(app, small.bp.biller_email, slug)
    html = biller.get("/home").get_data(as_text=True)
    with services.db.tenant_session(slug) as s:
        expected = {name: q.count(s) for name, q in work_queues.practice_queues().items()}
        open_items = s.scalar(select(func.count()).select_from(DenialItem).where(DenialItem.status == "open"))
    assert expected["denials"] == open_items > 0  # the home synced the queue with what posting recorded
    assert expected["underpayments"] > 0
    links = {
        "scrub_errors": f"/practices/{slug}/claims?status=scrubbed",
        "rejections": f"/practices/{slug}/rejections",
        "denials": f"/practices/{slug}/denial-work",
        "underpayments": f"/practices/{slug}/underpayments",
        "posting_exceptions": f"/practices/{slug}/posting-exceptions",
        "follow_ups": f"/practices/{slug}/follow-ups",
        "statement_candidates": f"/practices/{slug}/patient-billing",
        "collection_candidates": f"/practices/{slug}/collections",
    }
    assert set(links) == set(expected)
    for name, queue in work_queues.practice_queues().items():
        link, label, count = _card(html, name)
        assert (link, label, count) == (links[name], queue.label, expected[name]), name
    link, label, _count = _card(html, "unmatched_edi")  # the billing company's, not the practice's
    assert (link, label) == ("/edi/unmatched", "Unmatched EDI")
    for name in links:  # every card opens a page that answers
        assert biller.get(links[name]).status_code == 200, name
    words = text(biller.get("/home"))
    assert f"{expected['denials']} open items" in words
    assert "Available when claims are in medbill" not in words


def test_latest_postings_link_to_their_deposit_with_posted_and_exception_counts(app, services, small):
    biller = _client(app, small.bp.biller_email, small.bp.slug)
    response = biller.get("/home")
    html = response.get_data(as_text=True)
    assert "Latest postings" in html
    href = f'href="/practices/{small.bp.slug}/remittances/{small.deposit_id}"'
    assert href in html
    row = re.search(rf"<tr>\s*<th scope=\"row\"><a class=\"mono\" {re.escape(href)}>.*?</tr>", html, re.S)
    assert row
    cells = [c.strip() for c in re.findall(r'<td class="num">(.*?)</td>', row.group(0), re.S)]
    assert cells[1] == str(len(small.claim_ids)) and cells[2] == "0"  # four claims posted, no exception
    assert biller.get(f"/practices/{small.bp.slug}/remittances/{small.deposit_id}").status_code == 200


def test_a_running_statement_run_shows_its_progress(app, services, small):
    slug = small.bp.slug
    with services.db.tenant_session(slug) as s:
        run, _created = statements.start_run(s, None, trigger="schedule")
        run.patients_selected, run.statements_done = 40, 15
        run_id = run.id
        s.commit()
    try:
        biller = _client(app, small.bp.biller_email, slug)
        html = biller.get("/home").get_data(as_text=True)
        assert f'href="/practices/{slug}/statement-runs/{run_id}"' in html
        assert '<progress max="40" value="15"' in html and "15 of 40 statements" in text(biller.get("/home"))
    finally:
        with services.db.tenant_session(slug) as s:
            s.execute(StatementRun.__table__.delete().where(StatementRun.id == run_id))
            s.commit()
    assert "No statement run or patient import is running" in text(biller.get("/home"))


def test_home_costs_the_same_statements_however_much_work_waits(app, services, small, large):
    def measure(denied) -> tuple[int, int]:
        biller = _client(app, denied.bp.biller_email, denied.bp.slug)
        biller.get("/home")  # the denial queue is synced with what posting recorded
        statements_run: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany):
            statements_run.append(statement)

        event.listen(services.db.engine, "before_cursor_execute", count)
        try:
            assert biller.get("/home").status_code == 200
        finally:
            event.remove(services.db.engine, "before_cursor_execute", count)
        with services.db.tenant_session(denied.bp.slug) as s:
            items = s.scalar(select(func.count()).select_from(DenialItem))
        return len(statements_run), items

    (few, few_items), (many, many_items) = measure(small), measure(large)
    assert many_items > few_items > 0
    assert few == many


def test_navigation_marks_the_current_page_in_a_billers_order(app, small):
    biller = _client(app, small.bp.biller_email, small.bp.slug)
    slug = small.bp.slug
    home = biller.get("/home").get_data(as_text=True)
    nav = re.search(r'<nav class="site-nav" aria-label="Main">(.*?)</nav>', home, re.S)
    labels = re.findall(r">([^<>]+)</a></li>", nav.group(1))
    assert labels[:9] == [
        "Home", "Patients", "Claims", "Remittances", "Denials", "Patient billing", "Collections", "Reports",
        "Documents",
    ]  # fmt: skip
    for path, label in (
        ("/home", "Home"),
        (f"/practices/{slug}/denial-work", "Denials"),
        (f"/practices/{slug}/follow-ups", "Denials"),
        (f"/practices/{slug}/patient-billing", "Patient billing"),
        (f"/practices/{slug}/collections", "Collections"),
    ):
        html = biller.get(path).get_data(as_text=True)
        nav = re.search(r'<nav class="site-nav" aria-label="Main">(.*?)</nav>', html, re.S).group(1)
        assert re.findall(r'aria-current="page">([^<]+)</a>', nav) == [label], path


def test_an_agencys_accounts_sort_and_page(app, services, factory, monkeypatch):
    from billing import collections
    from billing.models import Patient
    from portal import collections as collections_pages
    from tests.billing.factories import billing_practice
    from tests.portal.test_portal_collections import _placeable

    bp = billing_practice(services, factory)
    agency = factory.agency([bp.slug])
    placed = [_placeable(services, bp, factory) for _ in range(3)]
    with services.db.tenant_session(bp.slug) as s:
        for pid in placed:
            collections.approve(s, bp.access, pid, agency.id)
        accounts = {s.get(Patient, pid).last_name: s.get(Patient, pid).account_number for pid in placed}
        s.commit()
    collector = app.test_client()
    portal_login(collector, factory.user("agency", agency=agency))
    monkeypatch.setattr(collections_pages, "PLACEMENTS_PER_PAGE", 2)
    url = f"/practices/{bp.slug}/collections"

    def shown(**query) -> list[str]:
        html = collector.get(url, query_string=query).get_data(as_text=True)
        return [n for n in re.findall(r"Debtor\d+x", html) if n in accounts]

    by_name = sorted(accounts)
    first = collector.get(url, query_string={"sort": "account"})
    assert 'aria-sort="ascending"' in first.get_data(as_text=True) and "Page 1 of 2" in text(first)
    names = list(dict.fromkeys(shown(sort="account")))
    assert names == by_name[:2]
    assert list(dict.fromkeys(shown(sort="account", page=2))) == by_name[2:]
    assert list(dict.fromkeys(shown(sort="-account"))) == by_name[::-1][:2]
    assert collector.get(url, query_string={"sort": "nonsense"}).status_code == 200  # falls back to newest first
