from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from portal.accounts.choices import FOUR_EYES_ROLES, Role
from portal.accounts.identifiers import email_normalise
from portal.accounts.models import User
from portal.accounts.services import role_grant, user_create
from portal.apitokens.models import ApiToken
from portal.apitokens.scopes import scopes_in_use
from portal.apitokens.services import apitoken_create, apitoken_revoke
from portal.audit.actors import Actor

MACHINE_OWNER_EMAIL = "machine-tokens@portal.invalid"
# A token nobody remembers to rotate is a liability; ten years is already generous.
MAX_EXPIRES_DAYS = 3650


def _message(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


def _machine_account_create(actor: Actor) -> User:
    return user_create(
        email=MACHINE_OWNER_EMAIL,
        full_name="Machine tokens",
        actor=actor,
        source="manage.py",
        machine=True,
    )


class Command(BaseCommand):
    help = "Create, list and revoke API tokens for CI pipelines and hooks."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="issue a token and print its secret once")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--scopes",
            required=True,
            help="comma-separated, within what the owner's roles allow: "
            + ", ".join(scopes_in_use()),
        )
        create.add_argument(
            "--owner", help="e-mail of the owning user (default: the machine account)"
        )
        create.add_argument(
            "--machine-role",
            action="append",
            default=[],
            choices=Role.values,
            help="grant the machine account this role first (audited; repeatable); "
            "its tokens can do only what its roles allow",
        )
        create.add_argument("--expires-days", type=int, help="days until the token expires")
        sub.add_parser(
            "machine-account",
            help="create the machine account (no login) that owns machine tokens, so a "
            "four-eyes role can be proposed for it",
        )
        sub.add_parser("list", help="list tokens (never their secrets)")
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix")
        revoke.add_argument("prefix")

    def handle(self, *args: object, **options: object) -> None:
        try:
            {
                "create": self._create,
                "machine-account": self._machine_account_action,
                "list": self._list,
                "revoke": self._revoke,
            }[str(options["action"])](options)
        except ValidationError as exc:
            raise CommandError(_message(exc)) from exc

    def _create(self, options: dict) -> None:
        """Issue a token in one transaction: the machine account, the roles it is given
        and the token all happen, or none does. A four-eyes role (a board role, portal
        admin) is never granted here: without an approved grant the command stops and
        says how to propose it (`governance_change grant-role`)."""
        actor = Actor.system("manage.py")
        expires_at = None
        if options["expires_days"] is not None:
            if not 1 <= options["expires_days"] <= MAX_EXPIRES_DAYS:
                raise CommandError(f"--expires-days must be from 1 to {MAX_EXPIRES_DAYS}")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        with transaction.atomic():
            if options["owner"]:
                if options["machine_role"]:
                    raise CommandError("--machine-role is for the machine account, not --owner")
                owner = User.objects.filter(email=email_normalise(options["owner"])).first()
                if owner is None:
                    raise CommandError(f"no user with e-mail {options['owner']}")
            else:
                owner = self._machine_account(actor, options["machine_role"])
            issued = apitoken_create(
                name=options["name"], owner=owner, scopes=scopes, expires_at=expires_at, actor=actor
            )
        token = issued.token
        self.stderr.write(
            f"token {token.name} ({token.prefix}) scopes={','.join(token.scopes)}"
            f" expires={token.expires_at or 'never'}; the secret below is shown only once"
        )
        self.stdout.write(issued.secret)

    def _machine_account(self, actor: Actor, roles: list[str]) -> User:
        """The account that owns tokens given to no person: no login, its own roles.
        Runs inside the caller's transaction."""
        owner = User.objects.filter(email=MACHINE_OWNER_EMAIL).first()
        held = owner.roles if owner is not None else frozenset()
        needs_approval = sorted(
            Role(r).label for r in roles if r in FOUR_EYES_ROLES and r not in held
        )
        if needs_approval:
            raise CommandError(
                f"{', '.join(needs_approval)} needs a second portal admin's approval and is "
                "not granted here; nothing was written. Propose it for the machine account "
                + ("" if owner else "(first create it: `manage.py apitoken machine-account`) ")
                + f"with `manage.py governance_change grant-role {MACHINE_OWNER_EMAIL} ROLE "
                '--operator NAME --reason "..."`, have it approved, then run this again.'
            )
        owner = owner or _machine_account_create(actor)
        for role in roles:
            if not owner.has_role(role):
                role_grant(user=owner, role=role, granted_by=None, actor=actor)
        return owner

    def _machine_account_action(self, options: dict) -> None:
        with transaction.atomic():
            owner = User.objects.filter(email=MACHINE_OWNER_EMAIL).first()
            created = owner is None
            owner = owner or _machine_account_create(Actor.system("manage.py"))
        roles = ", ".join(owner.role_labels) or "no role"
        state = "created" if created else "exists"
        self.stdout.write(f"machine account {owner.email} {state} ({roles})")

    def _list(self, options: dict) -> None:
        for token in ApiToken.objects.select_related("owner"):
            self.stdout.write(
                f"{token.prefix}  {token.status:8}  {token.name:24}  {','.join(token.scopes):40}  "
                f"owner={token.owner.email}  last_used={token.last_used_at or '-'}"
            )

    def _revoke(self, options: dict) -> None:
        token = ApiToken.objects.filter(prefix=options["prefix"]).first()
        if token is None:
            raise CommandError(f"no token with prefix {options['prefix']}")
        apitoken_revoke(token=token, actor=Actor.system("manage.py"))
        self.stdout.write(f"revoked {token.prefix}")
