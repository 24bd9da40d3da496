"""The exports governance offers through the portal's export jobs: a model card's PDF,
made by a worker when the card is too big to print inside a request."""

from typing import Any

from django.urls import reverse

from governance.models import ModelCard
from governance.permissions import may_read_registry
from governance.selectors.card_exports import CARD_PDF_EXPORT, card_pdf_produce
from portal.exports.registry import ExportKind, export_kind_register


def _card_readable(user: Any, params: dict[str, Any]) -> bool:
    return bool(user.is_authenticated and may_read_registry(user))


def _card_url(params: dict[str, Any]) -> str:
    card = ModelCard.objects.select_related("version__model").filter(pk=params["card_id"]).first()
    if card is None:
        return ""
    return reverse(
        "governance:version_detail",
        kwargs={"model": card.version.model.slug, "version": card.version.version},
    )


def register_export_kinds() -> None:
    export_kind_register(
        ExportKind(
            name=CARD_PDF_EXPORT,
            label="Model card (PDF)",
            produce=card_pdf_produce,
            may_read=_card_readable,
            source_url=_card_url,
        )
    )
