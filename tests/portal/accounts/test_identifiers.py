"""E-mail addresses are read one way at every entry point: normalised to lower case,
checked by one validator with the column's limits (254 characters, 64 before the @)."""

import pytest
from django.test import override_settings
from django.urls import reverse

from portal.accounts.choices import Role
from portal.accounts.identifiers import email_normalise, validate_email_address
from portal.accounts.models import User
from portal.accounts.services import user_create
from portal.audit.actors import Actor
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, email: str, password: str):
    return client.post(reverse("accounts:login"), {"username": email, "password": password})


def test_login_accepts_the_address_in_any_case(client, make_user):
    """The reported case: `Auditor@ZeroMargin.example` with the right password signs in."""
    person = make_user(Role.AUDITOR, email="auditor@zeromargin.example")
    response = _login(client, "  Auditor@ZeroMargin.example ", DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(person.pk)


@override_settings(AXES_FAILURE_LIMIT=3)
def test_lockout_counts_failures_whatever_the_case_typed(client, make_user):
    """Changing the case of the address does not buy more guesses."""
    person = make_user(email="dana@zeromargin.example")
    for typed in ("dana@zeromargin.example", "Dana@zeromargin.example", "DANA@ZEROMARGIN.EXAMPLE"):
        _login(client, typed, "wrong password")
    assert _login(client, "dAnA@zeromargin.example", DEFAULT_PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    assert person.email == "dana@zeromargin.example"


def test_user_create_stores_the_address_lower_case_and_refuses_a_case_twin(admin_user):
    user = user_create(email="New.Person@ZeroMargin.example", actor=Actor.system("t"))
    assert user.email == "new.person@zeromargin.example"
    with pytest.raises(Exception, match="already exists"):
        user_create(email="NEW.PERSON@zeromargin.example", actor=Actor.system("t"))


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("a" * 300 + "@zeromargin.example", "at most 254 characters"),
        ("a" * 65 + "@zeromargin.example", "at most 64 characters"),
        ("no-at-sign.example", "valid e-mail"),
    ],
)
def test_users_page_refuses_addresses_the_column_cannot_hold(
    client_for, admin_user, address, message
):
    """A 300-character local part is a field error (400), not a database error (500)."""
    response = client_for(admin_user).post(
        reverse("accounts:user_create"), {"email": address, "full_name": "Long"}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not User.objects.filter(full_name="Long").exists()


def test_the_validator_accepts_the_longest_addresses_the_column_holds():
    local = "a" * 64
    domain = ".".join(["b" * 59, "c" * 60, "d" * 60]) + ".example"  # 189 characters
    address = f"{local}@{domain}"
    assert len(address) == 254
    validate_email_address(address)
    assert email_normalise(" A@B.Example ") == "a@b.example"


def test_user_create_service_refuses_an_overlong_local_part():
    with pytest.raises(Exception, match="at most 64 characters"):
        user_create(email="a" * 65 + "@zeromargin.example", actor=Actor.system("t"))
