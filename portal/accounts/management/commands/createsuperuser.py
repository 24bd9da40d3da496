"""Django's `createsuperuser`, refused.

A superuser made here would bypass the portal's four-eyes rule for portal admins and
leave nothing in the audit trail. The flag also grants nothing any more (the Django
admin asks for the portal's roles), so the command would only mislead: it says how the
first portal admin is made instead.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

BOOTSTRAP = (
    "createsuperuser is switched off on this portal: Django's superuser flag grants nothing "
    "here, and portal admins are made through the audited four-eyes path. To make the first "
    "portal admin: create the account (or let the person sign in once with Google) with\n"
    '  manage.py governance_change add-user EMAIL --operator NAME --reason "..."\n'
    "then propose and approve the role:\n"
    '  manage.py governance_change grant-role EMAIL portal_admin --operator NAME --reason "..."\n'
    '  manage.py governance_change approve ID --operator OTHER-NAME --reason "..."'
)


class Command(BaseCommand):
    help = "Refused: make portal admins with `governance_change` (audited, four eyes)."

    def add_arguments(self, parser: Any) -> None:
        # Accept whatever Django's own command took, so scripts get the message, not a
        # usage error.
        parser.add_argument("args", nargs="*")
        parser.add_argument("--email", "--username", dest="email")
        parser.add_argument("--noinput", "--no-input", action="store_true")
        parser.add_argument("--database")

    def handle(self, *args: Any, **options: Any) -> None:
        raise CommandError(BOOTSTRAP)
