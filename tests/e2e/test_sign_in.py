"""A person signs in with a password in a real browser, sees the home page, signs out."""

import pytest
from playwright.sync_api import Page, expect

from portal.accounts.choices import Role
from tests.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_see_home_and_sign_out(page: Page, live_server, make_user):
    person = make_user(Role.AUDITOR, email="audrey@zeromargin.example", full_name="Audrey Auditor")
    csp_violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None
        ),
    )

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    page.get_by_label("E-mail").fill(person.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Welcome, Audrey Auditor")).to_be_visible()
    expect(page.get_by_test_id("signed-in-user")).to_have_text("audrey@zeromargin.example")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Audit")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    page.goto(f"{live_server.url}/audit/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/audit/")
    assert csp_violations == []


def test_wrong_password_shows_the_error_in_the_form(page: Page, live_server, make_user):
    person = make_user(email="someone@zeromargin.example")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail").fill(person.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Please enter a correct")).to_be_visible()
