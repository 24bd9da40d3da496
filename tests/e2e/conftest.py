"""Browser tests: pytest-playwright driving Debian's Chromium against a live server."""

import importlib
import os
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls made
# by the test itself (creating users) are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture()
def migration_data(transactional_db: None) -> None:
    """The rows data migrations create, which transactional tests start without (their
    tables are emptied after every test): the client's three models and the default
    review policies, the retraining schedules. Recreated by the migrations' own
    functions, so they stay the same."""
    from django.apps import apps

    for module, function in (
        ("governance.migrations.0002_the_three_models", "create_models"),
        ("governance.reviews.migrations.0002_default_policies", "create_defaults"),
        ("governance.training.migrations.0002_retraining_schedules", "create_schedules"),
        ("governance.training.migrations.0004_start_scheduled_run_task_name", "rename_forward"),
    ):
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture()
def csp_violations() -> list[str]:
    return []


@pytest.fixture()
def person_page(browser: Browser, csp_violations: list[str]) -> Iterator[Callable[..., Page]]:
    """person_page() -> a page in a browser context of its own (its own cookies, so its
    own sign-in), watched for Content Security Policy violations; closed afterwards so no
    kept-alive connection holds a live server thread (and its database connection).
    Keyword arguments go to `browser.new_context` (a viewport, for instance)."""
    contexts: list[BrowserContext] = []

    def make(**options: object) -> Page:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda msg: (
                csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None
            ),
        )
        return page

    yield make
    for context in contexts:
        context.close()
