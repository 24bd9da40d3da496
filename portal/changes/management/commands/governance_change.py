"""Governance change requests from the server's command line (operators).

governance_change list [--state pending]
governance_change approve ID --operator NAME --reason "..."             (bootstrap)
governance_change approve ID --operator A --reason "..." --operator B --reason "..."
                                                                         (break-glass)
governance_change reject ID --operator NAME --reason "..."
governance_change add-user EMAIL [--full-name NAME] --operator NAME --reason "..."
                                  (an account with no role; e-mails a set-password link)
governance_change grant-role EMAIL ROLE --operator NAME --reason "..."   (propose)
governance_change check                       (expire overdue, compare the environment)
"""

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.accounts.services import role_grant, user_create
from portal.changes.choices import ChangeState
from portal.changes.configuration import configuration_check
from portal.changes.models import ChangeRequest
from portal.changes.services import (
    OperatorSignoff,
    change_approve_by_operators,
    change_reject,
    changes_expire_due,
)

FULL_NAME_MAX = User._meta.get_field("full_name").max_length


def _message(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {m}" for field, ms in exc.message_dict.items() for m in ms)
    return "; ".join(exc.messages)


class Command(BaseCommand):
    help = "List, approve (bootstrap or break-glass), reject or propose governance changes."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--state", choices=ChangeState.values, default="")
        for name in ("approve", "reject"):
            decide = sub.add_parser(name)
            decide.add_argument("id", type=int)
            decide.add_argument("--operator", action="append", required=True)
            decide.add_argument("--reason", action="append", required=True)
        add_user = sub.add_parser("add-user")
        add_user.add_argument("email")
        add_user.add_argument("--full-name", default="")
        add_user.add_argument("--operator", required=True)
        add_user.add_argument("--reason", required=True)
        grant = sub.add_parser("grant-role")
        grant.add_argument("email")
        grant.add_argument("role", choices=Role.values)
        grant.add_argument("--operator", required=True)
        grant.add_argument("--reason", required=True)
        sub.add_parser("check")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "list":
                self._list(options["state"])
            elif action == "approve":
                self._approve(options)
            elif action == "reject":
                self._reject(options)
            elif action == "add-user":
                self._add_user(options)
            elif action == "grant-role":
                self._grant(options)
            else:
                expired = changes_expire_due()
                configuration_check()
                self.stdout.write(f"expired {expired}; environment compared with approved values")
        except ValidationError as exc:
            raise CommandError(_message(exc)) from exc

    def _change(self, pk: int) -> ChangeRequest:
        change = ChangeRequest.objects.filter(pk=pk).first()
        if change is None:
            raise CommandError(f"no change request #{pk}")
        return change

    def _signoffs(self, options: dict[str, Any]) -> list[OperatorSignoff]:
        operators, reasons = options["operator"], options["reason"]
        if len(operators) != len(reasons):
            raise CommandError("give one --reason for each --operator")
        return [OperatorSignoff(name=o, reason=r) for o, r in zip(operators, reasons, strict=True)]

    def _signoff(self, options: dict[str, Any]) -> OperatorSignoff:
        """The one operator of add-user and grant-role, checked before anything is
        written (ValidationError naming --operator or --reason)."""
        signoff = OperatorSignoff(name=options["operator"], reason=options["reason"])
        errors = signoff.errors()
        if errors:
            raise ValidationError(errors)
        return signoff

    def _list(self, state: str) -> None:
        changes = ChangeRequest.objects.all()
        if state:
            changes = changes.filter(state=state)
        for change in changes[:200]:
            expires = f"{change.expires_at:%Y-%m-%d %H:%M}"
            self.stdout.write(
                f"#{change.pk:<5} {change.state:9} {change.summary} "
                f"(proposed by {change.proposed_by_actor}, expires {expires})"
            )

    def _approve(self, options: dict[str, Any]) -> None:
        change = change_approve_by_operators(
            change=self._change(options["id"]), operators=self._signoffs(options)
        )
        flag = " (BREAK-GLASS: flagged in the audit trail)" if change.break_glass else ""
        self.stdout.write(f"approved #{change.pk}: {change.summary}{flag}")

    def _reject(self, options: dict[str, Any]) -> None:
        [signoff] = self._signoffs(options)[:1]
        change = change_reject(
            change=self._change(options["id"]),
            rejected_by=None,
            actor=signoff.actor(),
            reason=signoff.reason,
        )
        self.stdout.write(f"rejected #{change.pk}: {change.summary}")

    def _add_user(self, options: dict[str, Any]) -> None:
        signoff = self._signoff(options)
        if len(options["full_name"]) > FULL_NAME_MAX:
            raise CommandError(f"--full-name: a full name is at most {FULL_NAME_MAX} characters")
        user = user_create(
            email=options["email"],
            full_name=options["full_name"],
            actor=signoff.actor(),
            source="operator",
            send_set_password_link=True,
            reason=signoff.reason,
        )
        self.stdout.write(
            f"created {user.email} with no role (a set-password link is e-mailed when "
            "password sign-in is on; with Google sign-in the person signs in with Google)"
        )

    def _grant(self, options: dict[str, Any]) -> None:
        user = User.objects.filter(email__iexact=options["email"]).first()
        if user is None:
            raise CommandError(f"no user {options['email']}")
        signoff = self._signoff(options)
        outcome = role_grant(
            user=user,
            role=options["role"],
            granted_by=None,
            actor=signoff.actor(),
            reason=signoff.reason,
        )
        if isinstance(outcome, ChangeRequest):
            self.stdout.write(
                f"proposed #{outcome.pk}: {outcome.summary} (waits for a second admin or operator)"
            )
        else:
            self.stdout.write(f"granted {outcome}")
