"""Every transition of a rollout is notified: DevOps by e-mail, subscribed webhooks by
event type; the same transition published twice reaches nobody twice."""

import json

import pytest

from governance.choices import Target
from governance.rollouts.notifications import rollout_transition_notify
from governance.rollouts.services import rollout_pause, rollout_start
from portal.audit.actors import Actor
from portal.notify.models import EmailNotification, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture()
def endpoint():
    return WebhookEndpoint.objects.create(
        name="ops",
        url="https://hooks.example.com/x",
        secret="s" * 32,
        format="json",
        event_types=["rollout.started", "rollout.paused"],
    )


def test_start_and_pause_are_notified_once_each(endpoint, devops, lead, rollout_versions):
    rollout = rollout_start(
        version=rollout_versions[1], target=Target.CANARY, actor=devops.audit_actor(), queue=False
    )
    rollout_pause(rollout=rollout, actor=devops.audit_actor())
    bodies = [json.loads(d.body) for d in WebhookDelivery.objects.order_by("pk")]
    assert [b["type"] for b in bodies] == ["rollout.started", "rollout.paused"]
    assert bodies[0]["data"]["url"].endswith(f"/rollouts/{rollout.pk}/")
    assert (bodies[1]["data"]["state"], bodies[1]["data"]["weight"]) == ("paused", 10)
    emails = EmailNotification.objects.filter(recipient=devops, event_type__startswith="rollout.")
    assert sorted(e.event_type for e in emails) == ["rollout.paused", "rollout.started"]
    # DevOps only: the data science lead approved the version but runs no rollout.
    assert not EmailNotification.objects.filter(
        recipient=lead, event_type__startswith="rollout."
    ).exists()

    rollout.refresh_from_db()
    rollout_transition_notify(rollout=rollout, action="rollout.paused", actor=Actor.system("t"))
    assert WebhookDelivery.objects.count() == 2 and emails.count() == 2
