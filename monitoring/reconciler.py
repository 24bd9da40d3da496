"""The deployment reconciler: what the cluster actually runs, held against what the
board approved, so a bypass of the gate (an image deployed by hand, an admission
breakglass, a cluster without Binary Authorization) is seen within one beat interval.

Every image running in a governed namespace (`worker.backends.kubernetes_cluster`) whose
digest no approved review of that model and target covers
(`governance.reviews.selectors.images_approved`) is a finding. A finding opens one
incident (source "reconciler") per (target, model, digest) — the fingerprint — and the
next runs leave it alone while the image still runs; when the digest is gone (rolled
back, or approved after all), the incident is resolved. An incident someone closed
while the image still ran is followed by a new one on the next run: the image is still
unapproved.

Lock order (the portal's): the reconciler's open incident rows first, the audit chain
head last; the cluster is read before the transaction, so no lock is held across the
call to the API server. Two runs at once (the beat and an operator) are serialised by
the incident rows' locks and, for a new finding, by the partial unique constraint on
the fingerprint (the loser's savepoint rolls back and it reads the winner's).
"""

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.choices import Target
from governance.models import RegisteredModel
from governance.reviews.selectors import images_approved
from monitoring.choices import IncidentSource, IncidentStatus, Severity, TimelineKind
from monitoring.models import Incident, IncidentEvent
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from worker.backends.kubernetes_cluster import ClusterUnavailable, RunningImage, running_images

RECONCILER = Actor.system("reconciler")
ALERTNAME = "UnapprovedModelImage"
# Pod names kept on an incident: enough to find the workload, not a growing list.
MAX_PODS_LISTED = 20


class ReconcilerDisabled(Exception):
    """RECONCILER_KUBERNETES_API is empty: there is no cluster to read."""


@dataclass(frozen=True)
class Finding:
    """One (target, model, digest) running without the board's approval."""

    target: str
    model: str
    digest: str  # "" for an image that names no digest
    images: tuple[str, ...]
    namespaces: tuple[str, ...]
    pods: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        """64 hex characters, the incident's identity for this (target, model, digest);
        an image without a digest is identified by its reference instead."""
        what = self.digest or ",".join(self.images)
        return hashlib.sha256(f"reconciler|{self.target}|{self.model}|{what}".encode()).hexdigest()


@dataclass
class ReconcileReport:
    """What one run saw and did: images seen, findings, incidents opened, fired again
    (a resolved one whose digest came back) and resolved."""

    images: int = 0
    findings: list[Finding] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    refired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def _findings(images: list[RunningImage]) -> list[Finding]:
    approved = images_approved(
        images=((image.model, image.target, image.digest) for image in images if image.digest)
    )
    grouped: dict[tuple[str, str, str], list[RunningImage]] = defaultdict(list)
    for image in images:
        if image.digest and (image.model, image.target, image.digest) in approved:
            continue
        key = (image.target, image.model, image.digest or f"image:{image.image}")
        grouped[key].append(image)
    return [
        Finding(
            target=target,
            model=model,
            digest=seen[0].digest,
            images=tuple(sorted({image.image for image in seen})),
            namespaces=tuple(sorted({image.namespace for image in seen})),
            pods=tuple(sorted({f"{image.namespace}/{image.pod}" for image in seen}))[
                :MAX_PODS_LISTED
            ],
        )
        for (target, model, _), seen in sorted(grouped.items())
    ]


def _timeline(incident: Incident, kind: str, **detail: object) -> None:
    IncidentEvent.objects.create(
        incident=incident, kind=kind, actor=f"{RECONCILER.type}:{RECONCILER.id}", detail=detail
    )


def _open(finding: Finding, now) -> Incident:
    model = RegisteredModel.objects.filter(slug=finding.model).first()
    what = finding.digest or f"image {finding.images[0]} (no digest)"
    target_label = Target(finding.target).label if finding.target in Target.values else "?"
    incident = Incident.objects.create(
        fingerprint=finding.fingerprint,
        source=IncidentSource.RECONCILER,
        status=IncidentStatus.FIRING,
        severity=(Severity.CRITICAL if finding.target == Target.PRODUCTION else Severity.WARNING),
        title=f"Unapproved image of {finding.model} running in {finding.target}"[:200],
        summary=(
            f"{what} runs in {', '.join(finding.namespaces)} ({len(finding.pods)} pods), "
            f"but the board has not approved it for {target_label.lower()}. Roll it back, "
            "or have the version reviewed and approved for this target."
        ),
        labels={
            "alertname": ALERTNAME,
            "model": finding.model,
            "target": finding.target,
            "digest": finding.digest,
        },
        annotations={
            "images": list(finding.images),
            "namespaces": list(finding.namespaces),
            "pods": list(finding.pods),
        },
        model=model,
        owner=model.owner if model else None,
        started_at=now,
    )
    audit_record(
        action="incident.opened",
        actor=RECONCILER,
        object_type="incident",
        object_id=incident.pk,
        payload={
            "fingerprint": finding.fingerprint,
            "alertname": ALERTNAME,
            "severity": incident.severity,
            "model": finding.model,
            "target": finding.target,
            "digest": finding.digest,
            "images": list(finding.images),
            "owner_id": incident.owner_id,
        },
    )
    _timeline(incident, TimelineKind.FIRED, pods=list(finding.pods))
    return incident


def _apply(finding: Finding, incident: Incident | None, report: ReconcileReport, now) -> None:
    if incident is None:
        try:
            with transaction.atomic():
                report.opened.append(_open(finding, now).pk)
            return
        except IntegrityError:
            # Another run opened it between our read and our insert: it is theirs.
            return
    if incident.status == IncidentStatus.RESOLVED:
        incident.status = IncidentStatus.FIRING
        incident.resolved_at = None
        incident.save(update_fields=["status", "resolved_at"])
        _timeline(incident, TimelineKind.FIRED, pods=list(finding.pods))
        audit_record(
            action="incident.fired_again",
            actor=RECONCILER,
            object_type="incident",
            object_id=incident.pk,
            payload={"fingerprint": finding.fingerprint, "digest": finding.digest},
        )
        report.refired.append(incident.pk)


def _resolve(incident: Incident, report: ReconcileReport, now) -> None:
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = now
    incident.save(update_fields=["status", "resolved_at"])
    _timeline(incident, TimelineKind.RESOLVED, reason="the image no longer runs unapproved")
    audit_record(
        action="incident.resolved",
        actor=RECONCILER,
        object_type="incident",
        object_id=incident.pk,
        payload={"fingerprint": incident.fingerprint, "digest": incident.labels.get("digest")},
    )
    report.resolved.append(incident.pk)


def deployments_reconcile(*, images: list[RunningImage] | None = None) -> ReconcileReport:
    """Hold what the cluster runs against the board's approvals and keep the
    reconciler's incidents in step: open one per unapproved (target, model, digest),
    fire a resolved one again if its digest is back, resolve those whose digest no
    longer runs unapproved. Idempotent: a second run over the same cluster changes
    nothing.

    `images` is what the cluster runs; None reads it from RECONCILER_KUBERNETES_API.
    Raises ReconcilerDisabled when that setting is empty, ClusterUnavailable when the
    cluster cannot be read (nothing is changed then: half a picture would resolve
    incidents of images that still run).

    Side effects, in one transaction: Incident rows (source reconciler) and their
    timeline entries; audit `incident.opened`, `incident.fired_again`,
    `incident.resolved`. A run that changes nothing writes nothing.
    """
    if images is None:
        api_url = settings.RECONCILER_KUBERNETES_API
        if not api_url:
            raise ReconcilerDisabled("RECONCILER_KUBERNETES_API is not set.")
        images = running_images(api_url=api_url, timeout=float(settings.RECONCILER_TIMEOUT_SECONDS))
    report = ReconcileReport(images=len(images), findings=_findings(images))
    now = timezone.now()
    with transaction.atomic():
        open_incidents = {
            incident.fingerprint: incident
            for incident in Incident.objects.select_for_update()
            .filter(source=IncidentSource.RECONCILER)
            .exclude(status=IncidentStatus.CLOSED)
            .order_by("pk")
        }
        for finding in report.findings:
            _apply(finding, open_incidents.pop(finding.fingerprint, None), report, now)
        for incident in open_incidents.values():
            if incident.status != IncidentStatus.RESOLVED:
                _resolve(incident, report, now)
    return report


__all__ = [
    "ClusterUnavailable",
    "Finding",
    "ReconcileReport",
    "ReconcilerDisabled",
    "deployments_reconcile",
]
