from django.core.management.base import BaseCommand
from django.db import transaction

from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.accounts.services import role_grant, user_create
from portal.audit.actors import Actor
from portal.audit.services import audit_record

# The demo logins' shared password, printed to the person running the demo.
DEMO_PASSWORD = "governance-demo"  # noqa: S105  # nosec B105

DEMO_USERS = [
    ("admin@zeromargin.example", "Ada Admin", [Role.PORTAL_ADMIN]),
    ("dsl@zeromargin.example", "Dana Science-Lead", [Role.DATA_SCIENCE_LEAD]),
    ("privacy@zeromargin.example", "Priya Privacy", [Role.PRIVACY_OFFICER]),
    ("devops@zeromargin.example", "Dev Ops", [Role.DEVOPS]),
    ("auditor@zeromargin.example", "Audrey Auditor", [Role.AUDITOR]),
    ("owner@zeromargin.example", "Owen Owner", [Role.MODEL_OWNER]),
]


class Command(BaseCommand):
    help = "Create the demo board members and admin (idempotent) and print their logins."

    def handle(self, *args: object, **options: object) -> None:
        actor = Actor.system("demo")
        with transaction.atomic():
            for email, name, roles in DEMO_USERS:
                user = User.objects.filter(email=email).first()
                if user is None:
                    user = user_create(
                        email=email,
                        full_name=name,
                        password=DEMO_PASSWORD,
                        actor=actor,
                        source="demo",
                    )
                    if Role.PORTAL_ADMIN in roles:
                        user.is_staff = user.is_superuser = True
                        user.save(update_fields=["is_staff", "is_superuser"])
                        audit_record(
                            action="user.django_admin_granted",
                            actor=actor,
                            object_type="user",
                            object_id=user.pk,
                        )
                for role in roles:
                    if role not in user.roles:
                        role_grant(user=user, role=role, granted_by=None)
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, _name, roles in DEMO_USERS:
            self.stdout.write(f"  {email:32} {', '.join(Role(r).label for r in roles)}")
