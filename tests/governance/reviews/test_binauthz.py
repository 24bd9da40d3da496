"""Binary Authorization attestations of images the board approved for production:
queued in the approval's transaction, created afterwards in Container Analysis through
the official clients against the local stand-in, once, and shown on the version page."""

import base64
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.urls import reverse
from google.auth.credentials import AnonymousCredentials

from governance.choices import Target
from governance.reviews.binauthz import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    image_attestation_send,
    image_resource_uri,
    public_key_id,
)
from governance.reviews.choices import Verdict
from governance.reviews.models import ImageAttestation, ImageAttestationState
from governance.reviews.services import review_decide
from portal.accounts.choices import Role
from portal.attestation import signing_keys
from portal.audit.models import AuditEvent
from tests.factories import ModelVersionFactory
from tests.fakes.containeranalysis_server import FakeContainerAnalysisServer
from worker.backends.binauthz import ContainerAnalysisAttestor

ATTESTOR = "projects/zm-mlops-prod/attestors/model-governance-production"
NOTE = "projects/zm-mlops-prod/notes/model-governance-production"
IMAGE = "europe-west1-docker.pkg.dev/zm-mlops-prod/models/model-server"


@pytest.fixture()
def p256_key(settings):
    """The portal signs with a P-256 key, as a Binary Authorization PKIX key must be."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    settings.ATTESTATION_SIGNING_KEYS = [{"kid": "binauthz-1", "pem": pem}]
    settings.BINAUTHZ_ATTESTOR = ATTESTOR
    return key


@pytest.fixture()
def container_analysis(p256_key):
    fake = FakeContainerAnalysisServer().start()
    public_pem = (
        p256_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    fake.add_attestor(
        ATTESTOR, note=NOTE, public_key_id=public_key_id(signing_keys()[0]), pem=public_pem
    )
    yield fake
    fake.stop()


@pytest.fixture()
def attestor(container_analysis):
    return ContainerAnalysisAttestor(
        attestor=ATTESTOR,
        api_endpoint=container_analysis.url,
        binauthz_api_endpoint=container_analysis.url,
        credentials=AnonymousCredentials(),
    )


@pytest.fixture()
def approve_production(ready_for_production, open_review, lead, privacy, devops):
    """approve_production() -> (version, review): the board approved its image for
    production, with the on-commit callbacks (the queued task) not yet run."""

    def make(**kwargs):
        version = ready_for_production(image_uri=f"{IMAGE}:2.2.0", **kwargs)
        review = open_review(version, Target.PRODUCTION)
        review_decide(
            review=review, reviewer=lead, verdict=Verdict.APPROVE, role=Role.DATA_SCIENCE_LEAD
        )
        review_decide(
            review=review, reviewer=privacy, verdict=Verdict.APPROVE, role=Role.PRIVACY_OFFICER
        )
        review_decide(review=review, reviewer=devops, verdict=Verdict.APPROVE, role=Role.DEVOPS)
        review.refresh_from_db()
        return version, review

    return make


def _actions(review) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            object_type="review", object_id=str(review.pk), action__startswith="review.binauthz"
        )
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_image_resource_uri_names_the_image_by_digest_without_its_tag():
    """A tag is dropped and a registry port kept; the URI is what Binary Authorization checks."""
    assert (
        image_resource_uri(image_uri=f"{IMAGE}:2.2.0", image_digest="sha256:ab")
        == f"https://{IMAGE}@sha256:ab"
    )
    assert (
        image_resource_uri(image_uri="registry:5000/m@sha256:old", image_digest="sha256:cd")
        == "https://registry:5000/m@sha256:cd"
    )


def test_production_approval_queues_the_attestation_and_calls_nobody_in_its_transaction(
    approve_production, container_analysis, django_capture_on_commit_callbacks
):
    """The deciding transaction writes a pending row and its audit event and only queues
    the task: Container Analysis hears nothing until after the commit."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        version, review = approve_production()

    row = ImageAttestation.objects.get(version=version)
    assert row.state == ImageAttestationState.PENDING
    assert row.review == review and row.attestor == ATTESTOR
    assert row.resource_uri == f"https://{IMAGE}@{version.image_digest}"
    assert container_analysis.requests == []
    assert _actions(review) == ["review.binauthz_queued"]
    assert callbacks  # the task, queued for after the commit


def test_attestation_send_creates_a_signed_in_toto_occurrence_on_the_attestors_note(
    approve_production, container_analysis, attestor, p256_key
):
    """The task reads the attestor's note, finds no occurrence for the image, and
    creates one whose payload is an in-toto statement of the image digest and the
    board's approval, signed with the portal's key under the id the attestor lists."""
    version, review = approve_production()
    row = ImageAttestation.objects.get(version=version)

    result = image_attestation_send(attestation_id=row.pk, attestor=attestor)

    assert result.state == ImageAttestationState.CREATED
    paths = [(r.method, r.path) for r in container_analysis.requests]
    assert paths == [
        ("GET", f"/v1/{ATTESTOR}"),
        ("GET", f"/v1/{NOTE}/occurrences"),
        ("POST", "/v1/projects/zm-mlops-prod/occurrences"),
    ]
    assert container_analysis.requests[1].query["filter"] == [f'resourceUrl="{row.resource_uri}"']
    body = container_analysis.requests[2].body
    assert body["resourceUri"] == row.resource_uri and body["noteName"] == NOTE
    payload = base64.b64decode(body["attestation"]["serializedPayload"])
    (signature,) = body["attestation"]["signatures"]
    assert signature["publicKeyId"].startswith("ni:///sha-256;")
    p256_key.public_key().verify(
        base64.b64decode(signature["signature"]), payload, ec.ECDSA(hashes.SHA256())
    )
    statement = json.loads(payload)
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"] == [
        {"name": IMAGE, "digest": {"sha256": version.image_digest.removeprefix("sha256:")}}
    ]
    predicate = statement["predicate"]
    assert (predicate["model"], predicate["version"], predicate["target"]) == (
        version.model.slug,
        version.version,
        "production",
    )
    assert sorted(a["role"] for a in predicate["approvals"]) == [
        "data_science_lead",
        "devops",
        "privacy_officer",
    ]
    row.refresh_from_db()
    (occurrence,) = container_analysis.occurrences
    assert row.occurrence == occurrence
    assert _actions(review) == ["review.binauthz_queued", "review.binauthz_attested"]
    # A second run finds the row done and calls nobody.
    container_analysis.requests.clear()
    assert image_attestation_send(attestation_id=row.pk, attestor=attestor).state == "created"
    assert container_analysis.requests == []


def test_attestation_send_retries_when_container_analysis_is_away_and_never_creates_twice(
    approve_production, container_analysis, attestor
):
    """A 503 leaves the row pending for a retry; a run that died after creating (row
    left `sending`, lease run out) finds the occurrence and records it, no second POST."""
    version, _ = approve_production()
    row = ImageAttestation.objects.get(version=version)
    container_analysis.fail("POST", r"/occurrences$", 503)

    first = image_attestation_send(attestation_id=row.pk, attestor=attestor)
    assert first.retry and first.state == ImageAttestationState.PENDING
    signed = ImageAttestation.objects.get(pk=row.pk)
    assert signed.last_error and signed.payload and signed.signature

    second = image_attestation_send(attestation_id=row.pk, attestor=attestor)
    assert second.state == ImageAttestationState.CREATED
    # The crash: the occurrence exists but the row says `sending` with an old lease.
    ImageAttestation.objects.filter(pk=row.pk).update(
        state=ImageAttestationState.SENDING,
        occurrence="",
        attempted_at=signed.created_at - timedelta(hours=1),
    )
    container_analysis.requests.clear()
    third = image_attestation_send(attestation_id=row.pk, attestor=attestor)
    assert third.state == ImageAttestationState.CREATED
    # The attestor's note is read once per client; then only the occurrence lookup.
    assert [(r.method, r.path) for r in container_analysis.requests] == [
        ("GET", f"/v1/{NOTE}/occurrences")
    ]
    assert len(container_analysis.occurrences) == 1
    row.refresh_from_db()
    assert row.occurrence in container_analysis.occurrences
    # The same signed payload is sent on every attempt.
    assert row.payload == signed.payload and row.signature == signed.signature


def test_staging_approval_and_versions_without_an_image_owe_no_attestation(
    approved_for, approve_production, container_analysis
):
    """Only a production approval of a version with an image by digest is attested."""
    approved_for(ModelVersionFactory(image_uri=f"{IMAGE}:1"), Target.STAGING)
    approve_production(image_digest="")
    assert not ImageAttestation.objects.exists()


def test_version_page_shows_the_attestation(
    approve_production, container_analysis, attestor, client, lead
):
    """The version page names the attested image, the attestor and the occurrence."""
    version, _ = approve_production()
    row = ImageAttestation.objects.get(version=version)
    image_attestation_send(attestation_id=row.pk, attestor=attestor)
    row.refresh_from_db()
    client.force_login(lead)

    page = client.get(
        reverse("governance:version_detail", args=[version.model.slug, version.version])
    )

    text = page.content.decode()
    assert "Binary Authorization" in text
    assert row.resource_uri in text and row.occurrence in text and ATTESTOR in text


def test_without_an_attestor_the_signed_statement_is_kept_in_the_portal(
    approve_production, settings
):
    """With BINAUTHZ_ATTESTOR empty (the demo), the task signs and records the statement
    locally: the version page still shows the attestation."""
    settings.BINAUTHZ_ATTESTOR = ""
    version, _ = approve_production()
    row = ImageAttestation.objects.get(version=version)

    assert image_attestation_send(attestation_id=row.pk).state == ImageAttestationState.CREATED
    row.refresh_from_db()
    assert (
        row.occurrence == f"local:{row.pk}" and json.loads(row.payload)["_type"] == STATEMENT_TYPE
    )
