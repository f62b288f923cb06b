"""Accessible markup, checked by axe-core (the engine browsers' accessibility tools use) in Chromium: every page a
biller, a doctor and an agency user reaches from the navigation has no serious or critical violation (missing
labels, empty headings, insufficient contrast, unnamed buttons and links, broken ARIA)."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from tests.browser.conftest import sign_in

AXE = Axe()
BILLER_PAGES = (
    "/home",
    "/practices/{A}/patients",
    "/practices/{A}/charges/new",
    "/practices/{A}/claims",
    "/practices/{A}/rejections",
    "/practices/{A}/remittances",
    "/practices/{A}/posting-exceptions",
    "/practices/{A}/denials",
    "/practices/{A}/denial-work",
    "/practices/{A}/follow-ups",
    "/practices/{A}/underpayments",
    "/practices/{A}/patient-billing",
    "/practices/{A}/patient-billing/settings",
    "/practices/{A}/collections",
    "/practices/{A}/documents",
    "/practices/{A}/reports/summary",
    "/practices/{A}/reports/aging",
    "/practices/{A}/reports/allocation",
    "/practices/{A}/reports/deposits",
    "/practices/{A}/appeal-templates",
    "/reports/company-overview",
    "/edi/unmatched",
)
DOCTOR_PAGES = ("/home", "/practices/{A}/documents")
AGENCY_PAGES = ("/home", "/practices/{A}/collections")


def _serious(page: Page) -> list[str]:
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(
    ("user", "paths"),
    [("biller_x", BILLER_PAGES), ("doctor_a", DOCTOR_PAGES), ("agency", AGENCY_PAGES)],
    ids=["biller", "doctor", "agency"],
)
def test_pages_have_no_serious_accessibility_violations(page: Page, world, user, paths) -> None:
    sign_in(page, world.users[user])
    found = {}
    for template in paths:
        path = template.format(A=world.practices["A"])
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response and response.status)
        problems = _serious(page)
        if problems:
            found[path] = problems
    assert found == {}, "\n".join(f"{path}: {p}" for path, problems in found.items() for p in problems)


def test_the_login_page_is_accessible(page: Page) -> None:
    page.goto("/login")
    assert _serious(page) == []


def test_the_check_finds_what_it_looks_for(browser) -> None:
    """The checker itself: an unlabeled field, a nameless button and faint text are caught."""
    tab = browser.new_page()
    try:
        tab.set_content(
            '<html lang="en"><head><title>t</title></head><body><main><h1>x</h1><input type="text"><button></button>'
            '<p style="color:#eee;background:#fff">faint</p></main></body></html>'
        )
        found = " ".join(_serious(tab))
        assert "label" in found and "button-name" in found and "color-contrast" in found
    finally:
        tab.close()
