"""The Django admin only shows: no registered ModelAdmin lets even a superuser add,
change or delete, or run a bulk action, so every change goes through the portal where it
is audited (periodic tasks and schedules, SSO links, groups and lockout records included).
"""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django_celery_beat.models import CrontabSchedule, PeriodicTask

import portal.urls  # noqa: F401  (the URL map makes the admin read-only)
from portal.accounts.choices import Role

pytestmark = pytest.mark.django_db

# Admins whose changes are audited, and so may stay writable. There should be none.
AUDITED_WRITES: set[str] = set()
REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def test_the_walk_covers_the_third_party_admins():
    labels = {model._meta.label for model, _ in REGISTERED}
    assert {
        "django_celery_beat.PeriodicTask",
        "django_celery_beat.CrontabSchedule",
        "django_celery_beat.IntervalSchedule",
        "social_django.UserSocialAuth",
        "auth.Group",
        "axes.AccessAttempt",
    } <= labels


@pytest.mark.parametrize(
    ("label", "model_admin"),
    [(model._meta.label, model_admin) for model, model_admin in REGISTERED],
    ids=[model._meta.label for model, _ in REGISTERED],
)
def test_registered_admin_lets_no_superuser_write(make_user, label, model_admin):
    if label in AUDITED_WRITES:
        pytest.skip("changes here are audited")
    superuser = make_user(Role.PORTAL_ADMIN, is_staff=True, is_superuser=True)
    request = RequestFactory().get("/django-admin/")
    request.user = superuser
    assert model_admin.has_view_permission(request)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert not model_admin.get_actions(request)


def test_superuser_cannot_post_a_periodic_task_or_a_group_change(client, make_user):
    """Through the admin's own forms: the writes are refused and nothing changes."""
    superuser = make_user(Role.PORTAL_ADMIN, is_staff=True, is_superuser=True)
    client.force_login(superuser, backend="django.contrib.auth.backends.ModelBackend")
    crontab = CrontabSchedule.objects.create(minute="0", hour="3")
    task = PeriodicTask.objects.create(name="nightly", task="x", crontab=crontab)
    Group.objects.create(name="board")
    page = client.get(f"/django-admin/django_celery_beat/periodictask/{task.pk}/change/")
    assert page.status_code == 200
    posts = [
        (f"/django-admin/django_celery_beat/crontabschedule/{crontab.pk}/change/", {"minute": "5"}),
        (f"/django-admin/django_celery_beat/periodictask/{task.pk}/delete/", {"post": "yes"}),
        ("/django-admin/auth/group/add/", {"name": "admins"}),
        (
            "/django-admin/django_celery_beat/periodictask/",
            {"action": "disable_tasks", "_selected_action": [task.pk]},
        ),
    ]
    for path, data in posts:
        # refused (403), or sent back to the list with no action to run (200)
        assert client.post(path, data).status_code in (200, 302, 403), path
    task.refresh_from_db()
    crontab.refresh_from_db()
    assert task.enabled and crontab.minute == "0"
    assert list(Group.objects.values_list("name", flat=True)) == ["board"]


# --- who may look: the portal's roles, never Django's flags ---------------------------

READ_ONLY_PAGES = [
    "/django-admin/",
    "/django-admin/audit/auditevent/",
    "/django-admin/datasubjects/datasubjectrequest/",
    "/django-admin/notify/webhookendpoint/",
]


def _signed_in(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.mark.parametrize("path", [*READ_ONLY_PAGES, "/django-admin/login/"])
def test_django_admin_refuses_a_role_less_superuser(client, make_user, path):
    """is_superuser and is_staff, set outside the four-eyes path, open nothing: the
    page is a 403 (not the admin's login form) and the refusal is counted."""
    from portal.security.models import RefusalWindow

    superuser = make_user(is_staff=True, is_superuser=True)
    response = _signed_in(client, superuser).get(path)
    assert response.status_code == 403
    assert b"auditevent" not in response.content
    assert RefusalWindow.objects.filter(source=f"user:{superuser.pk}").exists()


def test_django_admin_sends_an_anonymous_caller_to_the_portal_login(client):
    response = client.get("/django-admin/audit/auditevent/")
    assert response.status_code == 302
    assert "/django-admin/login/" in response["Location"]
    login = client.get(response["Location"])
    assert login.status_code == 302 and login["Location"].startswith("/accounts/login/")


def test_django_admin_shows_an_auditor_the_ledger_and_nothing_else(client, make_user):
    auditor = make_user(Role.AUDITOR)
    client = _signed_in(client, auditor)
    index = client.get("/django-admin/")
    assert index.status_code == 200
    assert b"/django-admin/audit/auditevent/" in index.content
    assert b"datasubjectrequest" not in index.content
    assert client.get("/django-admin/audit/auditevent/").status_code == 200
    assert client.get("/django-admin/datasubjects/datasubjectrequest/").status_code == 403
    assert client.get("/django-admin/notify/webhookendpoint/").status_code == 403


def test_django_admin_shows_a_portal_admin_everything_without_django_flags(client, make_user):
    admin_user = make_user(Role.PORTAL_ADMIN)  # neither is_staff nor is_superuser
    client = _signed_in(client, admin_user)
    for path in READ_ONLY_PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
    assert b"datasubjectrequest" in client.get("/django-admin/").content


@pytest.mark.parametrize("role", [Role.DATA_SCIENCE_LEAD, Role.DEVOPS, Role.MODEL_OWNER])
def test_django_admin_refuses_other_roles(client, make_user, role):
    client = _signed_in(client, make_user(role, is_staff=True))
    assert client.get("/django-admin/").status_code == 403
    assert client.get("/django-admin/audit/auditevent/").status_code == 403


def test_django_admin_password_form_is_refused_and_not_linked(client, make_user):
    """The admin's own password form changed a portal admin's password with no audit
    event; it is refused (a counted 403, GET and POST) and the header no longer links
    it. Passwords are set through the portal's one-time link only."""
    admin_user = make_user(Role.PORTAL_ADMIN)
    admin_user.set_password("the-old-password-1")
    admin_user.save()
    client = _signed_in(client, admin_user)
    assert b"/django-admin/password_change/" not in client.get("/django-admin/").content
    assert client.get("/django-admin/password_change/").status_code == 403
    response = client.post(
        "/django-admin/password_change/",
        {
            "old_password": "the-old-password-1",
            "new_password1": "Zx9!another-long-pass",
            "new_password2": "Zx9!another-long-pass",
        },
    )
    assert response.status_code == 403
    assert client.get("/django-admin/password_change/done/").status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.check_password("the-old-password-1")
