"""Demo data subjects: registers the lake, a CRM database built from the lake's
customers (a SQLite file under var/) and the portal's own records as data sources, and
files one verified sample access request so the privacy officer's queue is not empty.
Idempotent."""

import re

from django.conf import settings
from django.core import mail
from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings

from datasubjects.choices import (
    ConsentPurpose,
    ConsentSource,
    LookupKey,
    RequestKind,
    SourceKind,
)
from datasubjects.models import ConsentRecord, DataSubjectRequest
from datasubjects.sample_crm import sample_crm_create
from datasubjects.services import data_source_save, request_file, request_verify
from datasubjects.services.consent import consent_record
from portal.accounts.models import User
from portal.audit.actors import Actor

ADMIN = "admin@zeromargin.example"
DEMO_CONSENTS = 10  # customers whose sign-up consents the demo's ledger holds


class Command(BaseCommand):
    help = "Register the demo's data sources and file a sample access request."

    def handle(self, *args: object, **options: object) -> None:
        from pipelines.lake import SnapshotNotFound, open_snapshot  # -- slow

        admin = User.objects.filter(email=ADMIN).first()
        if admin is None:
            raise CommandError("run demo_users first")
        try:
            snapshot = open_snapshot(root=settings.PIPELINES_LAKE_ROOT)
        except SnapshotNotFound as error:
            raise CommandError(f"{error}: run demo_training first") from error
        customers = snapshot.load(["customers"], verify=False)["customers"]
        crm_path = settings.VAR_DIR / "crm.sqlite3"
        crm_config = sample_crm_create(url=f"sqlite:///{crm_path}", customers=customers)
        sources = [
            (
                "lake",
                "Data lake (training snapshots)",
                SourceKind.LAKE,
                LookupKey.CUSTOMER_ID,
                {
                    "tables": {"customers": "customer_id", "transactions": "customer_id"},
                    "person_table": "customers",
                    "email_column": "email",
                },
            ),
            ("crm", "CRM database", SourceKind.SQL, LookupKey.EMAIL, crm_config),
            ("portal", "The portal's own records", SourceKind.PORTAL, LookupKey.EMAIL, {}),
            (
                "predictions",
                "Model server's prediction log",
                SourceKind.PREDICTION_LOG,
                LookupKey.CUSTOMER_ID,
                {},
            ),
        ]
        # The model server makes it on its first prediction; the check wants it now.
        settings.MONITORING_PREDICTION_LOG_DIR.mkdir(parents=True, exist_ok=True)
        for slug, name, kind, key, config in sources:
            data_source_save(
                user=admin, slug=slug, name=name, kind=kind, lookup_key=key, config=config
            )
        if not ConsentRecord.objects.exists():
            # The sign-up consents of the first customers, as the lake records them.
            for row in customers.head(DEMO_CONSENTS).itertuples():
                for purpose, given in (
                    (ConsentPurpose.PROFILING, bool(row.consent_profiling)),
                    (ConsentPurpose.PERSONALISATION, True),
                    (ConsentPurpose.MARKETING, False),
                ):
                    consent_record(
                        email=row.email,
                        customer_id=row.customer_id,
                        purposes=[purpose],
                        given=given,
                        source=ConsentSource.SIGNUP,
                        actor=Actor.system("demo"),
                    )
        first, second = customers.iloc[0], customers.iloc[1]
        if not DataSubjectRequest.objects.filter(email=second["email"]).exists():
            # The sample requester "reads" the code from an in-memory mailbox.
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
                mail.outbox = []
                request = request_file(kind=RequestKind.ACCESS, email=second["email"]).request
                code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
                request_verify(request=request, code=code)
        self.stdout.write(
            "Data sources: lake, CRM (" + re.sub(r"^.*/", "var/", str(crm_path)) + "), portal, "
            "prediction log.\n"
            f"A sample access request for {second['email']} waits in the privacy officer's queue.\n"
            f"File your own at {settings.PORTAL_BASE_URL}/privacy/requests/new/ as "
            f"{first['email']} (customer {first['customer_id']}): the code is in the "
            "web server's console output."
        )
