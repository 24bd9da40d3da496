"""The UI shell: home page, navigation by role, error pages, security headers."""

import pytest
from django.urls import reverse

from portal.accounts.choices import Role

pytestmark = pytest.mark.django_db


def test_home_anonymous_is_sent_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_home_shows_navigation_matching_roles(client_for, make_user):
    admin = make_user(Role.PORTAL_ADMIN)
    html = client_for(admin).get("/").content.decode()
    for label in ["Models", "Reviews", "Monitoring", "Data subjects", "Audit", "Admin"]:
        assert f">{label}</a>" in html


def test_home_for_devops_hides_audit_admin_and_data_subjects(client_for, make_user):
    html = client_for(make_user(Role.DEVOPS)).get("/").content.decode()
    assert ">Reviews</a>" in html and ">Monitoring</a>" in html
    assert ">Audit</a>" not in html
    assert ">Admin</a>" not in html
    assert ">Data subjects</a>" not in html


def test_home_without_role_says_what_to_do(client_for, outsider):
    html = client_for(outsider).get("/").content.decode()
    assert "hold no role yet" in html
    assert "no role yet" in html


def test_pages_send_a_strict_content_security_policy(client_for, outsider):
    response = client_for(outsider).get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"


def test_unknown_page_renders_the_404_in_the_layout(client_for, outsider):
    response = client_for(outsider).get("/no-such-page/")
    assert response.status_code == 404
    assert "There is nothing at" in response.content.decode()
    assert "Model governance" in response.content.decode()


def test_refused_page_renders_the_403_in_the_layout(client_for, outsider):
    response = client_for(outsider).get(reverse("audit:event_list"))
    assert response.status_code == 403
    assert "Your roles do not let you open this page" in response.content.decode()


def test_navigation_without_role_hides_the_registry(client_for, outsider):
    html = client_for(outsider).get("/").content.decode()
    assert ">Models</a>" not in html
    assert ">Admin</a>" not in html


@pytest.mark.parametrize(
    "path",
    [
        "/django-admin/governance/modelversion/",
        "/django-admin/governance/modelcard/",
        "/django-admin/training/pipelinerun/",
        "/django-admin/audit/auditevent/",
        "/django-admin/accounts/user/",
    ],
)
def test_django_admin_lists_render_read_only_for_superusers(client, make_user, path):
    superuser = make_user(Role.PORTAL_ADMIN, is_staff=True, is_superuser=True)
    client.force_login(superuser, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(path)
    assert response.status_code == 200
    assert f'href="{path}add/"' not in response.content.decode()  # nothing is added here
