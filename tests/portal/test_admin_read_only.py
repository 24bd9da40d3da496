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
