from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from portal.accounts.choices import Role
from portal.accounts.identifiers import email_normalise
from portal.accounts.models import User
from portal.accounts.services import role_grant, user_create
from portal.apitokens.models import ApiToken
from portal.apitokens.scopes import scopes_in_use
from portal.apitokens.services import apitoken_create, apitoken_revoke
from portal.audit.actors import Actor

MACHINE_OWNER_EMAIL = "machine-tokens@portal.invalid"


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
        sub.add_parser("list", help="list tokens (never their secrets)")
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix")
        revoke.add_argument("prefix")

    def handle(self, *args: object, **options: object) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _create(self, options: dict) -> None:
        actor = Actor.system("manage.py")
        if options["owner"]:
            if options["machine_role"]:
                raise CommandError("--machine-role is for the machine account, not --owner")
            owner = User.objects.filter(email=email_normalise(options["owner"])).first()
            if owner is None:
                raise CommandError(f"no user with e-mail {options['owner']}")
        else:
            owner = self._machine_account(actor, options["machine_role"])
        expires_at = None
        if options["expires_days"] is not None:
            if options["expires_days"] < 1:
                raise CommandError("--expires-days must be at least 1")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            issued = apitoken_create(
                name=options["name"], owner=owner, scopes=scopes, expires_at=expires_at, actor=actor
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        token = issued.token
        self.stderr.write(
            f"token {token.name} ({token.prefix}) scopes={','.join(token.scopes)}"
            f" expires={token.expires_at or 'never'}; the secret below is shown only once"
        )
        self.stdout.write(issued.secret)

    def _machine_account(self, actor: Actor, roles: list[str]) -> User:
        """The account that owns tokens given to no person: no login, its own roles."""
        with transaction.atomic():
            owner = User.objects.filter(email=MACHINE_OWNER_EMAIL).first()
            if owner is None:
                owner = user_create(
                    email=MACHINE_OWNER_EMAIL,
                    full_name="Machine tokens",
                    actor=actor,
                    source="manage.py",
                    machine=True,
                )
            for role in roles:
                if not owner.has_role(role):
                    role_grant(user=owner, role=role, granted_by=None)
        return owner

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
        try:
            apitoken_revoke(token=token, actor=Actor.system("manage.py"))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"revoked {token.prefix}")
