from django.core.management.base import BaseCommand
from django.db import transaction

from portal.accounts.choices import FOUR_EYES_ROLES, Role
from portal.accounts.models import User
from portal.accounts.selectors import users_with_role
from portal.accounts.services import role_grant, user_create, user_password_set_by_operator
from portal.audit.actors import Actor
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest
from portal.changes.services import OperatorSignoff, change_approve, change_approve_by_operators

# The demo logins' shared password, printed to the person running the demo.
DEMO_PASSWORD = "governance-demo"  # noqa: S105  # nosec B105
DEMO_OPERATOR = "demo"

DEMO_USERS = [
    ("admin@zeromargin.example", "Ada Admin", [Role.PORTAL_ADMIN]),
    ("admin2@zeromargin.example", "Sam Second-Admin", [Role.PORTAL_ADMIN]),
    ("dsl@zeromargin.example", "Dana Science-Lead", [Role.DATA_SCIENCE_LEAD]),
    ("privacy@zeromargin.example", "Priya Privacy", [Role.PRIVACY_OFFICER]),
    ("devops@zeromargin.example", "Dev Ops", [Role.DEVOPS]),
    ("auditor@zeromargin.example", "Audrey Auditor", [Role.AUDITOR]),
    ("owner@zeromargin.example", "Owen Owner", [Role.MODEL_OWNER]),
    ("analyst@zeromargin.example", "Ari Analyst", []),
]
# Left pending for the demo: the first admin proposes it, the second approves it.
DEMO_PROPOSAL = ("analyst@zeromargin.example", Role.DATA_SCIENCE_LEAD)


def _grant(user: User, role: Role) -> None:
    """Board roles and portal admin go through the four-eyes path like anyone's: on the
    new installation (fewer than two admins) an operator proposes and a second operator
    name approves (audited as the bootstrap it is); afterwards the first admin proposes
    and the second admin approves."""
    if role in user.roles:
        return
    if role not in FOUR_EYES_ROLES:
        role_grant(user=user, role=role, granted_by=None, actor=Actor.system("demo"))
        return
    admins = list(users_with_role(role=Role.PORTAL_ADMIN).order_by("pk"))
    if len(admins) < 2:
        change = role_grant(
            user=user,
            role=role,
            granted_by=None,
            actor=OperatorSignoff(DEMO_OPERATOR, "").actor(),
            reason="demo installation",
        )
        change_approve_by_operators(
            change=change,
            operators=[OperatorSignoff(f"{DEMO_OPERATOR}-bootstrap", "new demo installation")],
        )
        return
    proposer, approver = admins[0], admins[1]
    change = role_grant(user=user, role=role, granted_by=proposer, reason="demo board")
    change_approve(change=change, approved_by=approver, reason="demo board")


class Command(BaseCommand):
    help = "Create the demo board members and admins (idempotent) and print their logins."

    def handle(self, *args: object, **options: object) -> None:
        actor = Actor.system("demo")
        with transaction.atomic():
            for email, name, roles in DEMO_USERS:
                user = User.objects.filter(email=email).first()
                if user is None:
                    user = user_create(email=email, full_name=name, actor=actor, source="demo")
                    user_password_set_by_operator(
                        user=user, password=DEMO_PASSWORD, operator=DEMO_OPERATOR
                    )
                for role in roles:
                    _grant(user, Role(role))
            email, role = DEMO_PROPOSAL
            analyst = User.objects.get(email=email)
            waiting = ChangeRequest.objects.filter(
                subject_id=f"{analyst.pk}/{role.value}", state=ChangeState.PENDING
            ).exists()
            if role not in analyst.roles and not waiting:
                role_grant(
                    user=analyst,
                    role=role,
                    granted_by=User.objects.get(email="admin@zeromargin.example"),
                    reason="Ari leads the new forecasting squad",
                )
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, _name, roles in DEMO_USERS:
            labels = ", ".join(Role(r).label for r in roles) or "no role yet"
            self.stdout.write(f"  {email:32} {labels}")
        self.stdout.write(
            f"Pending: admin@ proposed {DEMO_PROPOSAL[0]} as {DEMO_PROPOSAL[1].label}; "
            "sign in as admin2@ to approve it (Admin -> Governance changes)."
        )
