"""The consent ledger (GDPR Art. 7): consent given and withdrawn per purpose, as
append-only records with their source, time and the privacy notice they were given
against. A person's current state is their newest record per purpose
(`selectors.consent_current`); withdrawing is one record, like giving.

Withdrawing consent to profiling or personalisation changes the suppression list, so
the list file is rewritten after commit.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from datasubjects.choices import CONSENT_AUDIT_TYPE, ConsentPurpose, ConsentSource
from datasubjects.models import ConsentRecord, DataSubjectRequest
from datasubjects.notices import PRIVACY_NOTICE_VERSION
from datasubjects.pseudonyms import customer_key, subject_ref_for
from datasubjects.services.suppression import suppression_list_write
from portal.audit.actors import Actor
from portal.audit.services import audit_record

SUPPRESSING_PURPOSES = frozenset({ConsentPurpose.PROFILING, ConsentPurpose.PERSONALISATION})


def consent_record(
    *,
    email: str,
    purposes: list[str],
    given: bool,
    source: str,
    actor: Actor,
    customer_id: str = "",
    notice_version: str = PRIVACY_NOTICE_VERSION,
    request: DataSubjectRequest | None = None,
) -> list[ConsentRecord]:
    """Append one record per purpose: consent given (`given=True`) or withdrawn.

    The person is kept as keyed hashes only (of the address, of the customer id).
    Side effects: the records; records `consent.given` or `consent.withdrawn` (the
    purposes, the source, the person's pseudonymous ref); rewrites the suppression
    list after commit when a profiling or personalisation purpose changed.
    """
    errors = {}
    if not purposes or set(purposes) - set(ConsentPurpose.values):
        errors["purposes"] = "Choose one or more of the listed purposes."
    if source not in ConsentSource.values:
        errors["source"] = "Choose one of the listed sources."
    if not email.strip():
        errors["email"] = "The person's e-mail address is needed."
    if errors:
        raise ValidationError(errors)
    subject_ref = subject_ref_for(email)
    now = timezone.now()
    with transaction.atomic():
        records = [
            ConsentRecord.objects.create(
                subject_ref=subject_ref,
                customer_key=customer_key(customer_id) if customer_id else "",
                purpose=purpose,
                given=given,
                source=source,
                notice_version=notice_version,
                recorded_at=now,
                request=request,
                recorded_by=f"{actor.type}:{actor.id}"[:200],
            )
            for purpose in sorted(set(purposes))
        ]
        audit_record(
            action="consent.given" if given else "consent.withdrawn",
            actor=actor,
            object_type=CONSENT_AUDIT_TYPE,
            object_id=subject_ref,
            payload={
                "purposes": sorted(set(purposes)),
                "source": source,
                "notice_version": notice_version,
                "request": request.audit_id if request else None,
            },
        )
        if SUPPRESSING_PURPOSES & set(purposes):
            transaction.on_commit(
                lambda: suppression_list_write(purpose=f"consent of {subject_ref[:12]}")
            )
    return records
