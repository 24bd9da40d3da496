"""Alertmanager's webhook payload (version 4), checked field by field.

Alertmanager cannot sign what it sends, so `POST /hooks/alertmanager` is authenticated
by a bearer token from the environment (ALERTMANAGER_WEBHOOK_TOKEN, configured in
Alertmanager's `http_config.authorization.credentials`); everything in the body is
then checked here before anything is recorded. A refusal names each field at fault by
its path (`alerts[0].startsAt`).
"""

import json
from dataclasses import dataclass
from datetime import datetime

from django.utils.dateparse import parse_datetime

from portal.jsonvalues import json_value_problems

MAX_ALERTS = 1000
# Text limits: Alertmanager's own values are short; longer ones are refused by field
# (400), never cut silently or left to fail in the database. An incident's title is
# the alertname and " on <model slug>" (200 characters).
MAX_LABEL_NAME = 200
MAX_LABEL_VALUE = 5_000
MAX_ALERTNAME = 128
MAX_URL = 2_000
MAX_RECEIVER = 200
ALERT_STATUSES = ("firing", "resolved")


class PayloadInvalid(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Alert:
    status: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str


@dataclass(frozen=True)
class Notification:
    group_key: str
    status: str
    receiver: str
    alerts: list[Alert]


def _strings(value: object, path: str, errors: dict[str, str]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        errors[path] = "An object of text values."
        return {}
    if any(len(k) > MAX_LABEL_NAME or len(v) > MAX_LABEL_VALUE for k, v in value.items()):
        errors[path] = (
            f"Names of at most {MAX_LABEL_NAME} and values of at most {MAX_LABEL_VALUE:,} "
            "characters."
        )
        return {}
    return value


def _time(value: object, path: str, errors: dict[str, str], *, required: bool) -> datetime | None:
    if not isinstance(value, str):
        errors[path] = "An RFC 3339 time."
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        errors[path] = "An RFC 3339 time with its offset."
        return None
    # Alertmanager sends the zero time (0001-01-01) for "not ended yet".
    if not required and parsed.year <= 1:
        return None
    return parsed


def _alert(raw: object, path: str, errors: dict[str, str]) -> Alert | None:
    if not isinstance(raw, dict):
        errors[path] = "An alert object."
        return None
    before = len(errors)
    status = raw.get("status")
    if status not in ALERT_STATUSES:
        errors[f"{path}.status"] = "firing or resolved."
    fingerprint = raw.get("fingerprint")
    if not isinstance(fingerprint, str) or not 1 <= len(fingerprint) <= 64:
        errors[f"{path}.fingerprint"] = "Alertmanager's fingerprint, at most 64 characters."
    labels = _strings(raw.get("labels"), f"{path}.labels", errors)
    if labels is not None and f"{path}.labels" not in errors:
        if not labels.get("alertname"):
            errors[f"{path}.labels.alertname"] = "Every alert has an alertname label."
        elif len(labels["alertname"]) > MAX_ALERTNAME:
            errors[f"{path}.labels.alertname"] = f"At most {MAX_ALERTNAME} characters."
    annotations = _strings(raw.get("annotations", {}), f"{path}.annotations", errors)
    starts_at = _time(raw.get("startsAt"), f"{path}.startsAt", errors, required=True)
    ends_at = _time(
        raw.get("endsAt", "0001-01-01T00:00:00Z"), f"{path}.endsAt", errors, required=False
    )
    generator_url = raw.get("generatorURL", "")
    if not isinstance(generator_url, str) or len(generator_url) > MAX_URL:
        errors[f"{path}.generatorURL"] = f"A URL of at most {MAX_URL} characters."
    if len(errors) > before:
        return None
    return Alert(status, fingerprint, labels, annotations, starts_at, ends_at, generator_url)


def notification_parse(body: bytes) -> Notification:
    """The notification in a webhook body, or PayloadInvalid naming every bad field.

    Refused (PayloadInvalid): a body that is not a JSON object, nested too deeply, or
    holding text or numbers the database cannot store (NUL characters, NaN, infinity),
    a payload version other than "4", and any alert field out of shape or bounds.
    """
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadInvalid({"body": "Not JSON."}) from None
    except RecursionError:
        raise PayloadInvalid({"body": "Nested too deeply."}) from None
    if not isinstance(raw, dict):
        raise PayloadInvalid({"body": "A JSON object."})
    # Labels, annotations and the group key are stored as they came: a NUL character
    # (which PostgreSQL text and jsonb refuse) or a non-finite number is refused here,
    # by its path, rather than failing in the database.
    problems = json_value_problems(raw)
    if problems:
        raise PayloadInvalid(problems)
    errors: dict[str, str] = {}
    if raw.get("version") != "4":
        errors["version"] = 'Only webhook payload version "4" is accepted.'
    group_key = raw.get("groupKey")
    if not isinstance(group_key, str) or not 1 <= len(group_key) <= 500:
        errors["groupKey"] = "The group key, 1 to 500 characters."
    if raw.get("status") not in ALERT_STATUSES:
        errors["status"] = "firing or resolved."
    receiver = raw.get("receiver", "")
    if not isinstance(receiver, str) or len(receiver) > MAX_RECEIVER:
        errors["receiver"] = f"Text of at most {MAX_RECEIVER} characters."
    raw_alerts = raw.get("alerts")
    alerts: list[Alert] = []
    if not isinstance(raw_alerts, list) or not 1 <= len(raw_alerts) <= MAX_ALERTS:
        errors["alerts"] = f"A list of 1 to {MAX_ALERTS} alerts."
    else:
        for index, item in enumerate(raw_alerts):
            alert = _alert(item, f"alerts[{index}]", errors)
            if alert:
                alerts.append(alert)
    if errors:
        raise PayloadInvalid(errors)
    return Notification(group_key, raw["status"], receiver, alerts)
