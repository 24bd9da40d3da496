"""Steps the browser tests share."""

from playwright.sync_api import Page, expect

from tests.factories import DEFAULT_PASSWORD


def sign_in(page: Page, base_url: str, email: str, next_path: str) -> None:
    """Sign in with the factories' password and land on `next_path`."""
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}{next_path}")
