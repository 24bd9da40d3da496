"""Django's `changepassword`, refused.

Setting someone's password from the server's shell would let the operator sign in as
them and would leave no audit event. People choose their own password through the
one-time link the Users page sends ("send a new link"), which is audited.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Refused: send the person a set-password link from the Users page (audited)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*")
        parser.add_argument("--database")

    def handle(self, *args: Any, **options: Any) -> None:
        raise CommandError(
            "changepassword is switched off on this portal: an operator who sets a password "
            "can sign in as that person, unaudited. A portal admin sends the person a "
            "one-time set-password link from the Users page instead (audited)."
        )
