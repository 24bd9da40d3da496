"""Every management command answers bad input with a CommandError naming the problem
(never a traceback) and leaves nothing behind: no row, no pending proposal, no audit
event. The walk below finds every command in the repository, so a new command without
a bad-input case here fails `test_every_command_has_a_bad_input_case`."""

from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.changes.services import OperatorSignoff
from tests.factories import RegisteredModelFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
LONG = "x" * 5000


def _commands_in_the_repository() -> set[str]:
    return {
        path.stem
        for path in ROOT.glob("**/management/commands/*.py")
        if ".venv" not in path.parts and not path.stem.startswith("_")
    }


# (command, arguments, what the message says); `{model}` and `{user}` are filled in.
CASES = [
    ("apitoken", ["create", "--name", "ci", "--scopes", "no:such"], "scopes"),
    ("apitoken", ["create", "--name", "", "--scopes", "gates:read"], "name"),
    ("apitoken", ["create", "--name", LONG, "--scopes", "gates:read"], "name"),
    (
        "apitoken",
        ["create", "--name", "ci", "--scopes", "gates:read", "--expires-days", "0"],
        "expires",
    ),
    (
        "apitoken",
        ["create", "--name", "ci", "--scopes", "gates:read", "--expires-days", "99999999999"],
        "expires",
    ),
    (
        "apitoken",
        ["create", "--name", "ci", "--scopes", "gates:read", "--owner", "no@x.example"],
        "no user",
    ),
    (
        "apitoken",
        ["create", "--name", "ci", "--machine-role", "devops", "--scopes", "rollouts:write"],
        "second portal admin",
    ),
    (
        "apitoken",
        ["create", "--name", "ci", "--machine-role", "portal_admin", "--scopes", "gates:read"],
        "second portal admin",
    ),
    (
        "apitoken",
        ["create", "--name", "ci", "--machine-role", "auditor", "--scopes", "rollouts:write"],
        "scopes",
    ),
    ("apitoken", ["revoke", "nosuchprefix"], "no token"),
    ("governance_change", ["approve", "999", "--operator", "a", "--reason", "r"], "no change"),
    ("governance_change", ["reject", "999", "--operator", "a", "--reason", "r"], "no change"),
    (
        "governance_change",
        ["grant-role", "no@x.example", "devops", "--operator", "a", "--reason", "r"],
        "no user",
    ),
    (
        "governance_change",
        ["grant-role", "{user}", "devops", "--operator", "a:b", "--reason", "r"],
        "operator",
    ),
    (
        "governance_change",
        ["grant-role", "{user}", "devops", "--operator", "a", "--reason", " "],
        "reason",
    ),
    (
        "governance_change",
        ["add-user", "not-an-address", "--operator", "a", "--reason", "r"],
        "e-mail",
    ),
    (
        "governance_change",
        ["add-user", "{user}", "--operator", "a", "--reason", "r"],
        "already exists",
    ),
    (
        "governance_change",
        ["add-user", "new@zeromargin.example", "--operator", "", "--reason", "r"],
        "operator",
    ),
    (
        "governance_change",
        [
            "add-user",
            "new@zeromargin.example",
            "--full-name",
            LONG,
            "--operator",
            "a",
            "--reason",
            "r",
        ],
        "full name",
    ),
    ("createsuperuser", ["--noinput", "--email", "root@zeromargin.example"], "governance_change"),
    ("changepassword", ["{user}"], "set-password"),
    ("demo_users", ["--no-such-option"], "unrecognized"),
    ("pipeline_run", ["no-such-model"], "No model"),
    ("pipeline_run", ["{model}", "--params", "[1, 2]"], "params"),
    ("pipeline_run", ["{model}", "--params", "{bad"], "params"),
    ("pipeline_run", ["{model}", "--snapshot", "../../etc"], "snapshot"),
    ("pipeline_run", ["{model}", "--reason", LONG], "reason"),
    ("audit_verify", ["--checkpoint", "/nonexistent/checkpoint.json"], "cannot read"),
    ("audit_verify", ["--checkpoint", "{garbage}"], "refused"),
    ("audit_verify", ["--checkpoint", "{list_json}", "--jwks", "{list_json}"], "refused"),
    ("audit_export_status", ["--max-lag-seconds", "-1"], "0 or more"),
    ("audit_checkpoint", ["--export", "/nonexistent/dir/checkpoint.json"], "export"),
    ("monitoring_export", ["--root", "{a_file}"], "cannot write"),
    ("clouddeploy_outbox_retry", ["--pending-older-than", "99999999999"], "pending-older-than"),
    ("clouddeploy_outbox_retry", ["--pending-older-than", "-5"], "pending-older-than"),
    ("clouddeploy_outbox_retry", ["424242"], "no Cloud Deploy answer with id 424242"),
    ("registry_sync", [], "registry sync is off"),
    ("simulate_traffic", ["--rate", "0"], "--rate"),
    ("simulate_traffic", ["--duration", "-1"], "--duration"),
    ("simulate_traffic", ["--snapshot", "not-a-snapshot"], "snapshot"),
    ("simulate_traffic", ["--rate", "1", "--duration", "1", "--seed", "-1"], "--seed"),
    ("lake_import", ["transactions"], "TABLE=FILE"),
    ("lake_import", ["transactions=/nonexistent/export.csv"], "nonexistent"),
    ("lake_import", ["transactions={garbage}", "--max-rejected", "5"], "share from 0 to 1"),
    ("lake_import", ["no_such_table={garbage}"], "no_such_table"),
    ("lake_sample", ["--transactions", "0"], "at least 1,000"),
    ("lake_sample", ["--seed", "-1"], "--seed"),
    ("lake_sample", ["--transactions", "50000001"], "at most 50,000,000"),
    ("lake_sample", ["--transactions", "99999999999999999999"], "at most 50,000,000"),
    ("demo_training", ["--transactions", "-1"], "transactions"),
    ("demo_training", ["--transactions", "50000001"], "at most 50,000,000"),
    (
        "governance_change",
        ["approve", "99999999999999999999", "--operator", "a", "--reason", "r"],
        "no change",
    ),
    ("demo_monitoring", ["--requests", "0"], "--requests"),
    ("demo_monitoring", ["--requests", "99999999"], "--requests"),
    ("demo_registry", ["--no-such-option"], "unrecognized"),
    ("demo_reviews", ["--no-such-option"], "unrecognized"),
    ("demo_datasubjects", ["--no-such-option"], "unrecognized"),
    ("deployments_reconcile", [], "RECONCILER_KUBERNETES_API"),
    ("gate_state_backfill", ["--since", "yesterday"], "unrecognized arguments"),
    ("demo_monitoring", ["--days", "1"], "--days"),
    ("demo_monitoring", ["--window-hours", "0"], "--window-hours"),
    ("demo_rollouts", [], "demo_users"),
]


def _written() -> dict[str, int]:
    """Rows in every table of the portal's own apps (the ledger, people, roles,
    proposals, tokens, runs, ...)."""
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model.__module__.split(".")[0] in ("portal", "governance", "monitoring", "datasubjects")
    }


@pytest.fixture()
def fill(tmp_path, settings):
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    settings.GOOGLE_CLOUD_PROJECT = ""
    user = UserFactory(email="someone@zeromargin.example")
    model = RegisteredModelFactory()
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("not,a\ncheckpoint,file\n")
    list_json = tmp_path / "list.json"
    list_json.write_text("[]")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    values = {
        "user": user.email,
        "model": model.slug,
        "garbage": str(garbage),
        "list_json": str(list_json),
        "a_file": str(a_file),
    }
    return lambda args: [
        arg.format(**values) if "{" in arg and "}" in arg and arg != "{bad" else arg for arg in args
    ]


def test_every_command_has_a_bad_input_case():
    assert _commands_in_the_repository() <= {command for command, _, _ in CASES}


@pytest.mark.parametrize(
    ("command", "args", "says"), CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)]
)
def test_command_bad_input_is_a_command_error_and_writes_nothing(fill, command, args, says):
    args = fill(args)
    before = _written()
    with pytest.raises(CommandError) as refused:
        call_command(command, *args)
    assert says.lower() in str(refused.value).lower()
    assert _written() == before


def test_apitoken_machine_role_twice_is_a_command_error_both_times():
    """The reported case: the first run refused, the second refused the same way
    (no traceback), and no pending proposal left behind by either."""
    from portal.changes.models import ChangeRequest

    args = ["create", "--name", "ci", "--machine-role", "devops", "--scopes", "rollouts:write"]
    for _ in range(2):
        with pytest.raises(CommandError, match="second portal admin"):
            call_command("apitoken", *args)
    assert not ChangeRequest.objects.exists()


def test_apitoken_machine_role_already_approved_issues_the_token(capsys):
    """Once the four-eyes grant is approved, the same command issues the token."""
    from portal.apitokens.management.commands.apitoken import MACHINE_OWNER_EMAIL
    from portal.changes.services import change_approve_by_operators

    call_command("apitoken", "machine-account")
    call_command(
        "governance_change",
        "grant-role",
        MACHINE_OWNER_EMAIL,
        "devops",
        "--operator",
        "a",
        "--reason",
        "CI rollouts",
    )
    from portal.changes.models import ChangeRequest

    change = ChangeRequest.objects.get()
    change_approve_by_operators(change=change, operators=[OperatorSignoff("b", "ci")])
    call_command(
        "apitoken",
        "create",
        "--name",
        "ci",
        "--machine-role",
        "devops",
        "--scopes",
        "rollouts:write",
    )
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("gp_")


def test_apitoken_revoke_twice_is_a_command_error(make_user):
    issued = apitoken_create(
        name="t",
        owner=make_user(Role.DEVOPS),
        scopes=["gates:read"],
        expires_at=None,
        actor=Actor.system("tests"),
    )
    call_command("apitoken", "revoke", issued.token.prefix)
    with pytest.raises(CommandError):
        call_command("apitoken", "revoke", issued.token.prefix)
