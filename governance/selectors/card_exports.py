"""A model card exported as JSON (Model Card Toolkit field names), Markdown with
Hugging Face-style YAML front matter, and PDF (WeasyPrint) laid out for print."""

import json
from typing import Any

import yaml
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import timezone

from governance.cards_schema import section_title
from governance.choices import CardSectionKey, ModelKind
from governance.metrics import metric_label, metric_names_ordered
from governance.models import ModelCard, ModelVersion
from governance.rendering import markdown_to_html
from governance.selectors.cards import card_missing_sections, card_sections, data_lines

MCT_SCHEMA_VERSION = "0.0.2"
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


def card_export_json(*, card: ModelCard) -> dict[str, Any]:
    """The card in the Model Card Toolkit schema (v0.0.2 field names). What the toolkit
    has no field for (data schema, fairness rows, lineage, risk tier) is under
    `governance`, the client framework's extension."""
    version = card.version
    model = version.model
    s = _sections(card)
    details = s[CardSectionKey.MODEL_DETAILS]
    schema_fields = s[CardSectionKey.DATA_SCHEMA].data.get("fields", [])

    def dataset(key: str, name: str) -> dict[str, Any]:
        section = s[key]
        return {
            "name": section.data.get("dataset") or name,
            "link": section.data.get("data_version", ""),
            "description": section.content,
            "sensitive": {
                "sensitive_data": [f["name"] for f in schema_fields if f.get("personal_data")]
            },
        }

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
            "references": [{"reference": r} for r in details.data.get("references", [])],
            "citations": [],
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
        "governance": {
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
            "data_schema": schema_fields,
            "fairness_assessment": {
                "text": s[CardSectionKey.FAIRNESS_ASSESSMENT].content,
                "assessments": s[CardSectionKey.FAIRNESS_ASSESSMENT].data.get("assessments", []),
            },
            "inherited_sections": [key for key, sec in s.items() if sec.inherited],
            "missing_sections": card_missing_sections(card=card),
        },
    }


def _described(text: str) -> list[dict[str, str]]:
    return [{"description": text}] if text.strip() else []


def card_export_markdown(*, card: ModelCard) -> str:
    """Markdown with a Hugging Face-style YAML front matter (license, tags, datasets,
    model-index with the evaluation results)."""
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
        "license": details.get("licence") or "other",
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
                                "type": name,
                                "name": metric_label(kind=model.kind, name=name),
                                "value": metrics[name],
                            }
                            for name in metric_names_ordered(kind=model.kind, names=set(metrics))
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


def card_export_pdf(*, card: ModelCard) -> bytes:
    """The card as a PDF for print: title block, lineage, then every section."""
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
    html = render_to_string(
        "governance/card_print.html",
        {
            "card": card,
            "version": version,
            "model": version.model,
            "sections": sections,
            "performance": [
                {**row, "label": metric_label(kind=version.model.kind, name=row["type"])}
                for row in _performance_rows(version)
            ],
            "missing": [section_title(k) for k in card_missing_sections(card=card)],
            "printed_at": timezone.now(),
        },
    )
    stylesheet = finders.find("css/card-print.css")
    return HTML(string=html).write_pdf(stylesheets=[CSS(filename=stylesheet)])
