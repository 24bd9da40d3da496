import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.attestation import public_jwks
from portal.audit.checkpoints import CheckpointInvalid, checkpoint_document_verify
from portal.audit.verification import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Walk the audit chain and check it against every stored checkpoint (and an exported "
        "one with --checkpoint); exit non-zero naming the first broken event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoint",
            type=Path,
            help="an exported checkpoint file (audit_checkpoint --export) the ledger must match",
        )
        parser.add_argument(
            "--jwks",
            type=Path,
            help="the JWK set to check the checkpoint's signature with "
            "(default: the portal's own published keys)",
        )

    def handle(self, *args: object, **options: object) -> None:
        external = []
        checkpoint_path = options.get("checkpoint")
        if checkpoint_path is not None:
            jwks_path = options.get("jwks")
            try:
                jwks = json.loads(jwks_path.read_text()) if jwks_path else public_jwks()
                claims = checkpoint_document_verify(checkpoint_path.read_text(), jwks)
            except OSError as exc:
                raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
            except json.JSONDecodeError as exc:
                raise CommandError(f"--jwks is not JSON: {exc.msg}") from exc
            except CheckpointInvalid as exc:
                raise CommandError(f"checkpoint {checkpoint_path} refused: {exc.reason}") from exc
            external.append(claims)
        report = audit_chain_verify(checkpoints=external)
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))
