"""Signing in through a real browser: each role lands on its own home page, and a wrong password says so."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in


def test_a_doctor_lands_on_the_practice_summary(page: Page, world) -> None:
    sign_in(page, world.users["doctor_a"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("monthly summary")
    expect(page.get_by_role("heading", level=1)).to_contain_text(world.practices["A"])


def test_a_wrong_password_is_refused_with_a_message(page: Page, world) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(world.users["biller_x"])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
