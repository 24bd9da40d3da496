"""The webhook pages: portal admins list, add (secret shown once), edit, deactivate,
test and resend; everyone else is refused and changes nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.notify.choices import DeliveryState
from portal.notify.models import WebhookDelivery, WebhookEndpoint
from portal.notify.services import notification_publish
from portal.notify.tasks import deliver_webhook
from tests.portal.notify.conftest import SECRET

pytestmark = pytest.mark.django_db

LIST = reverse("notify:endpoint_list")


def create_form(**overrides):
    return {
        "name": "board channel",
        "url": "https://hooks.slack.example/services/T0/B0/path-secret",
        "format": "slack",
        "event_types": ["review.opened", "review.decided"],
        "secret": "",
        **overrides,
    }


def publish(event_id: str) -> None:
    notification_publish(
        event_type="review.opened",
        event_id=event_id,
        summary=f"event {event_id}",
        payload={"url": "http://portal.test/"},
        email_recipients=[],
        actor=Actor.system("tests"),
    )


# --- refusals --------------------------------------------------------------------------------


def test_webhook_pages_send_anonymous_visitors_to_sign_in(client):
    response = client.get(LIST)
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


@pytest.mark.parametrize("role", [None, Role.DEVOPS, Role.AUDITOR, Role.DATA_SCIENCE_LEAD])
def test_webhook_pages_refuse_people_who_are_not_portal_admins(
    make_user, client_for, endpoint, role
):
    target = endpoint()
    publish("review-1-opened")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED)
    client = client_for(make_user(*([role] if role else [])))

    assert client.get(LIST).status_code == 403
    assert client.get(reverse("notify:endpoint_edit", args=[target.pk])).status_code == 403
    posts = [
        (reverse("notify:endpoint_create"), create_form()),
        (reverse("notify:endpoint_edit", args=[target.pk]), create_form(name="taken over")),
        (reverse("notify:endpoint_deactivate", args=[target.pk]), {}),
        (reverse("notify:endpoint_test", args=[target.pk]), {}),
        (reverse("notify:delivery_resend", args=[delivery.pk]), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url

    target.refresh_from_db()
    assert (target.name, target.active) == ("board channel", True)
    assert WebhookEndpoint.objects.count() == 1
    assert WebhookDelivery.objects.get().state == DeliveryState.FAILED
    assert (
        not AuditEvent.objects.filter(action__startswith="webhook.")
        .exclude(action="webhook.created")
        .exists()
    )


# --- the list ----------------------------------------------------------------------------------


def test_webhook_list_shows_endpoints_and_recent_deliveries_without_secrets(
    admin_user, client_for, endpoint, receiver
):
    endpoint(url=receiver.url.replace("/hooks/portal", "/very/secret/path"))
    receiver.answer(404)
    publish("review-1-opened")
    publish("review-2-opened")
    failed = WebhookDelivery.objects.get(event_id="review-1-opened")
    deliver_webhook.apply(args=[failed.pk])

    html = client_for(admin_user).get(LIST).content.decode()

    assert "board channel" in html
    assert "/very/secret/path" not in html
    assert SECRET not in html and SECRET[-4:] in html
    assert "review-1-opened" in html and "review-2-opened" in html
    assert "Failed" in html and "404" in html and "Pending" in html
    assert reverse("notify:delivery_resend", args=[failed.pk]) in html
    pending = WebhookDelivery.objects.get(event_id="review-2-opened")
    assert reverse("notify:delivery_resend", args=[pending.pk]) not in html


def test_webhook_list_when_empty_says_what_to_do(admin_user, client_for):
    html = client_for(admin_user).get(LIST).content.decode()
    assert "No webhook yet" in html and "Add a webhook" in html


def test_webhook_list_query_count_does_not_grow_with_rows(
    admin_user, client_for, endpoint, django_assert_max_num_queries
):
    client = client_for(admin_user)

    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            endpoint(name=f"endpoint {i}")
            publish(f"review-{i}-opened")

    add(2, 0)
    with CaptureQueriesContext(connection) as small:
        assert client.get(LIST).status_code == 200
    add(8, 2)
    with CaptureQueriesContext(connection) as large:
        html = client.get(LIST).content.decode()
    assert html.count("review-9-opened") == 10  # every endpoint got every later event
    assert len(large.captured_queries) == len(small.captured_queries)
    with django_assert_max_num_queries(12):
        client.get(LIST)


def test_webhook_subnav_link_is_on_the_users_page(admin_user, client_for):
    html = client_for(admin_user).get(reverse("accounts:user_list")).content.decode()
    assert f'href="{LIST}"' in html


# --- create, edit, deactivate ---------------------------------------------------------------------


def test_webhook_create_shows_the_secret_once(admin_user, client_for):
    client = client_for(admin_user)
    response = client.post(reverse("notify:endpoint_create"), create_form())

    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
    assert (endpoint.format, endpoint.created_by) == ("slack", admin_user)
    assert endpoint.event_types == ["review.decided", "review.opened"]
    assert endpoint.secret not in client.get(LIST).content.decode()
    assert AuditEvent.objects.filter(action="webhook.created", actor_id=str(admin_user.pk)).exists()


def test_webhook_create_takes_a_pasted_secret(admin_user, client_for):
    response = client_for(admin_user).post(
        reverse("notify:endpoint_create"), create_form(secret="the-receivers-own-secret")
    )
    assert response.status_code == 200
    assert WebhookEndpoint.objects.get().secret == "the-receivers-own-secret"


def test_webhook_create_with_bad_fields_shows_errors_next_to_them(admin_user, client_for):
    response = client_for(admin_user).post(
        reverse("notify:endpoint_create"),
        create_form(url="not a url", event_types=[], secret="short"),
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) >= {"url", "event_types"}
    assert not WebhookEndpoint.objects.exists()


def test_webhook_create_refuses_a_short_pasted_secret(admin_user, client_for):
    response = client_for(admin_user).post(
        reverse("notify:endpoint_create"), create_form(secret="short")
    )
    assert response.status_code == 400
    assert "16 to 200 characters" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_webhook_edit_saves_and_keeps_the_secret(admin_user, client_for, endpoint):
    target = endpoint()
    client = client_for(admin_user)
    page = client.get(reverse("notify:endpoint_edit", args=[target.pk])).content.decode()
    assert 'value="board channel"' in page and SECRET not in page

    response = client.post(
        reverse("notify:endpoint_edit", args=[target.pk]),
        create_form(name="renamed", url=target.url, format="json", event_types=["review.expired"]),
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.name, target.format, target.event_types) == (
        "renamed",
        "json",
        ["review.expired"],
    )
    assert target.secret == SECRET
    assert AuditEvent.objects.filter(action="webhook.updated").exists()


def test_webhook_deactivate_stops_it(admin_user, client_for, endpoint):
    target = endpoint()
    client = client_for(admin_user)
    response = client.post(reverse("notify:endpoint_deactivate", args=[target.pk]), follow=True)
    assert "deactivated" in response.content.decode()
    target.refresh_from_db()
    assert not target.active
    publish("review-3-opened")
    assert not WebhookDelivery.objects.exists()
    again = client.post(reverse("notify:endpoint_deactivate", args=[target.pk]), follow=True)
    assert "already deactivated" in again.content.decode()


def test_webhook_pages_answer_404_for_unknown_rows(admin_user, client_for):
    client = client_for(admin_user)
    assert client.get(reverse("notify:endpoint_edit", args=[999])).status_code == 404
    assert client.post(reverse("notify:endpoint_test", args=[999])).status_code == 404
    assert client.post(reverse("notify:delivery_resend", args=[999])).status_code == 404


# --- test events and resending --------------------------------------------------------------------


def test_webhook_send_test_event_reaches_the_receiver(
    admin_user, client_for, endpoint, receiver, eager_tasks, django_capture_on_commit_callbacks
):
    target = endpoint()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin_user).post(
            reverse("notify:endpoint_test", args=[target.pk]), follow=True
        )
    assert "Test event queued" in response.content.decode()
    (request,) = receiver.requests
    assert request.signature_valid and request.json["type"] == "portal.test"
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


def test_webhook_resend_sends_a_failed_delivery_again(
    admin_user, client_for, endpoint, receiver, eager_tasks, django_capture_on_commit_callbacks
):
    endpoint()
    receiver.answer(410)
    publish("review-4-opened")
    delivery = WebhookDelivery.objects.get()
    deliver_webhook.apply(args=[delivery.pk])
    client = client_for(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("notify:delivery_resend", args=[delivery.pk]), follow=True)
    assert f"Delivery {delivery.pk} queued again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert len(receiver.requests) == 2

    refused = client.post(reverse("notify:delivery_resend", args=[delivery.pk]), follow=True)
    assert "Only a failed delivery" in refused.content.decode()
    assert len(receiver.requests) == 2
