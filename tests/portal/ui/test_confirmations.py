"""Destructive and decisive actions ask before they are sent.

Every form in every template whose action (or a button's formaction) deletes, rejects,
revokes, cancels, closes, refuses, withdraws, deactivates or decides carries the
confirmation the shared script asks (`class="confirm"` with a `data-confirm` question
on the form, or `data-confirm` on the button). A new destructive form without it fails
here; the browser test in tests/e2e shows the question is really asked.
"""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
DESTRUCTIVE = re.compile(
    r"(delete|reject|revoke|cancel|close|refuse|withdraw|deactivate|decide|duplicate|"
    r"abort|rollback|toggle_active|extend|request_state|change_approve)"
)
FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S)
URL_NAME = re.compile(r"""(?:action|formaction)="\{% url '([\w:]+)'""")


def _templates() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.html")
        if ".venv" not in path.parts and "node_modules" not in path.parts
    )


def _destructive_forms() -> list[tuple[str, str, str]]:
    found = []
    for path in _templates():
        for form in FORM.findall(path.read_text()):
            for name in URL_NAME.findall(form):
                if DESTRUCTIVE.search(name.split(":")[-1]):
                    found.append((str(path.relative_to(ROOT)), name, form))
    return found


def _asks(form: str, url_name: str) -> bool:
    opening = form[: form.index(">") + 1]
    if re.search(r'class="[^"]*\bconfirm\b', opening) and "data-confirm=" in opening:
        return True
    # A form with two actions: the button that sends to `url_name` asks its own question.
    for button in re.findall(r"<button\b[^>]*>", form):
        if f"'{url_name}'" in button and "data-confirm=" in button:
            return True
    return "formaction=" in form and all(
        "data-confirm=" in button for button in re.findall(r"<button\b[^>]*>", form)
    )


def test_destructive_forms_found_in_the_templates():
    # The scan itself must find the forms it guards, or the next test proves nothing.
    names = {name for _, name, _ in _destructive_forms()}
    assert {
        "governance:review_decide",
        "accounts:user_role_revoke",
        "apitokens:revoke",
        "changes:change_reject",
        "monitoring:incident_close",
        "datasubjects:request_refuse",
    } <= names


def test_destructive_forms_ask_for_confirmation():
    unasked = [
        f"{path}: {name}" for path, name, form in _destructive_forms() if not _asks(form, name)
    ]
    assert unasked == []
