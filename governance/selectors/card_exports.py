"""A model card exported as JSON (a Model Card Toolkit v0.0.2 document, plus a companion
governance document for what the toolkit has no field for), Markdown with the Hugging
Face Hub's YAML front matter, and PDF (WeasyPrint) laid out for print."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from governance.cards_schema import section_title
from governance.choices import CardSectionKey, ModelKind
from governance.metrics import metric_label, metric_names_ordered
from governance.models import ModelCard, ModelVersion
from governance.rendering import markdown_to_html
from governance.selectors.cards import card_missing_sections, card_sections, data_lines
from portal.exports.registry import ExportFile

CARD_PDF_EXPORT = "governance.card_pdf"
MCT_SCHEMA_VERSION = "0.0.2"
GOVERNANCE_SCHEMA_VERSION = "1"
# Licence ids the Hugging Face Hub accepts as `license` (its repositories-licenses
# list, the ones a company model card is likely to carry); anything else is `other`.
HUB_LICENCES = frozenset(
    {
        "apache-2.0",
        "mit",
        "bsd-2-clause",
        "bsd-3-clause",
        "gpl-3.0",
        "lgpl-3.0",
        "agpl-3.0",
        "mpl-2.0",
        "cc-by-4.0",
        "cc-by-sa-4.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-4.0",
        "cc0-1.0",
        "unlicense",
        "openrail",
        "other",
    }
)
HF_TASK = {
    ModelKind.FORECASTING: "time-series-forecasting",
    ModelKind.SEGMENTATION: "other",
    ModelKind.RECOMMENDATION: "other",
}


def export_filename(*, card: ModelCard, extension: str) -> str:
    version = card.version
    return f"model-card-{version.model.slug}-{version.version}.{extension}"


def _sections(card: ModelCard) -> dict[str, Any]:
    return {section.key: section for section in card_sections(card=card)}


def _performance_rows(version: ModelVersion) -> list[dict[str, Any]]:
    kind = version.model.kind
    rows = []
    metrics = version.metrics or {}
    for name in metric_names_ordered(kind=kind, names=set(metrics)):
        rows.append({"type": name, "value": metrics[name], "slice": ""})
    for dimension, values in (version.metric_slices or {}).items():
        for value, slice_metrics in values.items():
            for name in metric_names_ordered(kind=kind, names=set(slice_metrics)):
                rows.append(
                    {
                        "type": name,
                        "value": slice_metrics[name],
                        "slice": f"{dimension}={value}",
                    }
                )
    return rows


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _metric_points(name: str, value: Any) -> list[tuple[str, float | int]]:
    """A metric as (type, number) pairs: the Hub's model-index takes one number per
    metric, so a list metric (cluster sizes) becomes one entry per element, `name[i]`."""
    if isinstance(value, list):
        return [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return [(name, value)]


def _is_uri(text: str) -> bool:
    # A data version is a URI when it names its store (gs://, bq://); a bare content
    # hash or snapshot id is not one and must not go where the schema expects a URI.
    parts = urlsplit(text)
    return bool(parts.scheme and (parts.netloc or parts.path) and " " not in text)


def _licence_for_hub(licence: str) -> dict[str, str]:
    """The Hub takes a licence id from its list, or `other` with a `license_name` slug
    and a `license_link` (a URL, or LICENSE for the file beside the card)."""
    wanted = licence.strip()
    if not wanted:
        return {"license": "other", "license_name": "unspecified", "license_link": "LICENSE"}
    if wanted.lower() in HUB_LICENCES:
        return {"license": wanted.lower()}
    return {
        "license": "other",
        "license_name": slugify(wanted) or "custom",
        "license_link": "LICENSE",
    }


def card_export_json(*, card: ModelCard) -> dict[str, Any]:
    """The card as a Model Card Toolkit document that validates against its v0.0.2
    JSON schema (closed at the top level: only the toolkit's own fields; metric values
    are strings there, a list metric its JSON text). What the
    toolkit has no field for (lineage, data schema, fairness rows, risk tier) is in the
    companion document, card_export_governance()."""
    version = card.version
    model = version.model
    s = _sections(card)
    details = s[CardSectionKey.MODEL_DETAILS]
    schema_fields = s[CardSectionKey.DATA_SCHEMA].data.get("fields", [])

    def dataset(key: str, name: str) -> dict[str, Any]:
        section = s[key]
        data_version = section.data.get("data_version", "")
        found: dict[str, Any] = {
            "name": section.data.get("dataset") or name,
            "description": section.content,
            "sensitive": {
                "sensitive_data": [f["name"] for f in schema_fields if f.get("personal_data")]
            },
        }
        if data_version and _is_uri(data_version):
            found["link"] = data_version
        elif data_version:
            found["description"] = f"{section.content}\n\nData version: {data_version}".strip()
        return found

    references = details.data.get("references", [])
    return {
        "schema_version": MCT_SCHEMA_VERSION,
        "model_details": {
            "name": model.slug,
            "overview": details.content or model.description,
            "owners": [{"name": owner, "contact": ""} for owner in details.data.get("owners", [])],
            "version": {
                "name": version.version,
                "date": version.registered_at.date().isoformat(),
                "diff": (
                    f"Starts from version {card.inherited_from.version.version}"
                    if card.inherited_from_id
                    else ""
                ),
            },
            "licenses": (
                [{"custom_text": details.data["licence"]}] if details.data.get("licence") else []
            ),
            "references": [{"reference": r} for r in references if _is_uri(r)],
            "citations": [{"citation": r} for r in references if not _is_uri(r)],
            "path": version.artifact_uri,
        },
        "model_parameters": {
            "model_architecture": version.tag,
            "data": [
                dataset(CardSectionKey.TRAINING_DATA, "training"),
                dataset(CardSectionKey.EVALUATION_DATA, "evaluation"),
            ],
            "input_format": s[CardSectionKey.DATA_SCHEMA].content,
            "input_format_map": [{"key": f["name"], "value": f["type"]} for f in schema_fields],
        },
        "quantitative_analysis": {
            "performance_metrics": [
                {"type": r["type"], "value": _text(r["value"]), "slice": r["slice"]}
                for r in _performance_rows(version)
            ],
            "graphics": {"description": s[CardSectionKey.PERFORMANCE].content},
        },
        "considerations": {
            "users": [],
            "use_cases": _described(s[CardSectionKey.INTENDED_USE].content),
            "limitations": _described(s[CardSectionKey.LIMITATIONS].content),
            "tradeoffs": _described(s[CardSectionKey.CAVEATS_RECOMMENDATIONS].content),
            "ethical_considerations": (
                [
                    {
                        "name": s[CardSectionKey.ETHICAL_CONSIDERATIONS].content,
                        "mitigation_strategy": "",
                    }
                ]
                if s[CardSectionKey.ETHICAL_CONSIDERATIONS].content
                else []
            ),
        },
    }


def card_export_governance(*, card: ModelCard) -> dict[str, Any]:
    """The client framework's part of the card, which the Model Card Toolkit schema has
    no place for: lifecycle, risk tier, lineage, data schema, fairness assessment and
    completeness. It names the toolkit document it accompanies (model and version)."""
    version = card.version
    model = version.model
    s = _sections(card)
    return {
        "governance_version": GOVERNANCE_SCHEMA_VERSION,
        "model_card": {
            "schema_version": MCT_SCHEMA_VERSION,
            "name": model.slug,
            "version": version.version,
        },
        "artifact_uri": version.artifact_uri,
        "kind": model.kind,
        "risk_tier": model.risk_tier,
        "state": version.state,
        "lineage": {
            "data_version": version.data_version,
            "code_version": version.code_version,
            "image_uri": version.image_uri,
            "image_digest": version.image_digest,
            "pipeline_run_id": version.pipeline_run_id,
            "registry_resource_name": version.registry_resource_name,
        },
        "data_schema": s[CardSectionKey.DATA_SCHEMA].data.get("fields", []),
        "metrics": version.metrics or {},
        "metric_slices": version.metric_slices or {},
        "fairness_assessment": {
            "text": s[CardSectionKey.FAIRNESS_ASSESSMENT].content,
            "assessments": s[CardSectionKey.FAIRNESS_ASSESSMENT].data.get("assessments", []),
        },
        "inherited_sections": [key for key, sec in s.items() if sec.inherited],
        "missing_sections": card_missing_sections(card=card),
    }


def _described(text: str) -> list[dict[str, str]]:
    return [{"description": text}] if text.strip() else []


def card_export_markdown(*, card: ModelCard) -> str:
    """Markdown with the Hugging Face Hub's YAML front matter (license, tags, datasets,
    model-index with the evaluation results), in the shape the Hub accepts."""
    version = card.version
    model = version.model
    s = _sections(card)
    details = s[CardSectionKey.MODEL_DETAILS].data
    training = s[CardSectionKey.TRAINING_DATA].data
    evaluation = s[CardSectionKey.EVALUATION_DATA].data
    metrics = version.metrics or {}
    front = {
        "model_name": model.slug,
        "model_version": version.version,
        **_licence_for_hub(details.get("licence", "")),
        "tags": [model.kind, f"risk-tier-{model.risk_tier}", version.tag],
        "datasets": [d["dataset"] for d in (training, evaluation) if d.get("dataset")],
        "model-index": [
            {
                "name": f"{model.slug}-{version.version}",
                "results": [
                    {
                        "task": {"type": HF_TASK[model.kind], "name": model.get_kind_display()},
                        "dataset": {
                            "name": evaluation.get("dataset") or "evaluation",
                            "type": evaluation.get("data_version") or version.data_version,
                        },
                        "metrics": [
                            {
                                "type": kind,
                                "name": metric_label(kind=model.kind, name=name)
                                + kind.removeprefix(name),
                                "value": number,
                            }
                            for name in metric_names_ordered(kind=model.kind, names=set(metrics))
                            for kind, number in _metric_points(name, metrics[name])
                        ],
                    }
                ],
            }
        ],
    }
    out = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    out += [f"# Model card: {model.name} {version.version}", ""]
    out += [
        f"- Lifecycle state: {version.get_state_display()}",
        f"- Risk tier: {model.get_risk_tier_display()}",
        f"- Data version: `{version.data_version}`",
        f"- Code version: `{version.code_version}`",
        f"- Image: `{version.image_uri or '-'}` `{version.image_digest}`",
        "",
    ]
    missing = card_missing_sections(card=card)
    if missing:
        titles = ", ".join(section_title(k) for k in missing)
        out += [f"> Incomplete: {titles} still to be written or confirmed.", ""]
    for key, section in s.items():
        out += [f"## {section_title(key)}", ""]
        if section.inherited:
            out += ["_Inherited from the previous version; not yet confirmed._", ""]
        if section.content:
            out += [section.content, ""]
        if key == CardSectionKey.PERFORMANCE:
            rows = _performance_rows(version)
            if rows:
                out += ["| Metric | Slice | Value |", "|---|---|---|"]
                out += [
                    f"| {metric_label(kind=model.kind, name=r['type'])} | {r['slice'] or 'all'} "
                    f"| {_text(r['value'])} |"
                    for r in rows
                ]
                out.append("")
        elif section.data:
            out += [
                f"- {line}" if not line.startswith("- ") else f"  {line}"
                for line in data_lines(section.data)
            ]
            out.append("")
        if not section.content and not section.data:
            out += ["_Not written yet._", ""]
    return "\n".join(out).rstrip() + "\n"


@dataclass(frozen=True)
class CardSize:
    rows: int  # performance table rows (overall and per slice)
    characters: int  # text of every section

    @property
    def fits_a_request(self) -> bool:
        """Small enough to print inside a web request, well within gunicorn's timeout
        (see settings: CARD_PDF_SYNC_MAX_ROWS, CARD_PDF_SYNC_MAX_CHARACTERS)."""
        return (
            self.rows <= settings.CARD_PDF_SYNC_MAX_ROWS
            and self.characters <= settings.CARD_PDF_SYNC_MAX_CHARACTERS
        )


def card_export_size(*, card: ModelCard) -> CardSize:
    """How much a card's PDF has to lay out, counted without rendering anything."""
    version = card.version
    rows = len(version.metrics or {}) + sum(
        len(slice_metrics)
        for values in (version.metric_slices or {}).values()
        for slice_metrics in values.values()
        if isinstance(slice_metrics, dict)
    )
    characters = sum(
        len(section.content) + len(json.dumps(section.data)) for section in card_sections(card=card)
    )
    return CardSize(rows=rows, characters=characters)


def _no_progress(percent: int, message: str) -> None:
    return None


# The performance table is printed in tables of this many rows: WeasyPrint lays out a
# table as one box, so one huge table costs far more than many short ones.
PDF_TABLE_ROWS = 200


def card_export_pdf(
    *, card: ModelCard, progress: Callable[[int, str], None] = _no_progress
) -> bytes:
    """The card as a PDF for print: title block, lineage, then every section.
    `progress(percent, message)` hears how far it got (the export job's page shows it)."""
    from weasyprint import CSS, HTML  # -- slow (only when a PDF is asked for)

    version = card.version
    sections = []
    for key, section in _sections(card).items():
        sections.append(
            {
                "key": key,
                "title": section_title(key),
                "html": markdown_to_html(section.content),
                "lines": data_lines(section.data) if key != CardSectionKey.PERFORMANCE else [],
                "inherited": section.inherited,
                "empty": section.is_empty,
            }
        )
    performance = [
        {**row, "label": metric_label(kind=version.model.kind, name=row["type"])}
        for row in _performance_rows(version)
    ]
    html = render_to_string(
        "governance/card_print.html",
        {
            "card": card,
            "version": version,
            "model": version.model,
            "sections": sections,
            "performance_tables": [
                performance[i : i + PDF_TABLE_ROWS]
                for i in range(0, len(performance), PDF_TABLE_ROWS)
            ],
            "missing": [section_title(k) for k in card_missing_sections(card=card)],
            "printed_at": timezone.now(),
        },
    )
    progress(10, f"laying out {len(sections)} sections and {len(performance)} metric rows")
    stylesheet = finders.find("css/card-print.css")
    document = HTML(string=html).render(stylesheets=[CSS(filename=stylesheet)])
    progress(80, f"writing {len(document.pages)} pages")
    return document.write_pdf()


def card_pdf_produce(params: dict[str, Any], progress: Callable[[int, str], None]) -> ExportFile:
    """The export job's maker for `governance.card_pdf` (params: {"card_id": ...})."""
    card = ModelCard.objects.select_related("version__model").get(pk=params["card_id"])
    content = card_export_pdf(card=card, progress=progress)
    return ExportFile(
        content=content,
        filename=export_filename(card=card, extension="pdf"),
        content_type="application/pdf",
    )
