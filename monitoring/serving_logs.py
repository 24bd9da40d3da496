"""Reading the model server's prediction log and the ground truth outcomes for a window.

Both are JSON lines in `<dir>/<model>/<YYYY-MM-DD>.jsonl` (UTC days), written by the
model server (`serving.prediction_log`) and by the outcome feeds (`simulate_traffic`
in the demo). A line that is not JSON or lacks a field is skipped and counted: one
damaged line never stops a window's evaluation.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any


@dataclass
class LogRead:
    lines: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def parse_ts(text: str) -> datetime:
    """An RFC 3339 time (`Z` or an offset) as an aware datetime; ValueError otherwise."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lines_read(
    *, root: Path, model: str, start: datetime, end: datetime, required: tuple[str, ...]
) -> LogRead:
    """The lines of `model` stamped in [start, end) that carry every `required` field,
    each with `_ts` added (the parsed time)."""
    read = LogRead()
    for day in _days(start, end):
        path = Path(root) / model / f"{day.isoformat()}.jsonl"
        try:
            handle = path.open(encoding="utf-8")
        except FileNotFoundError:
            continue
        with handle:
            for raw in handle:
                try:
                    line = json.loads(raw)
                    ts = parse_ts(line["ts"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    read.skipped += 1
                    continue
                if not all(name in line for name in required):
                    read.skipped += 1
                    continue
                if start <= ts < end:
                    line["_ts"] = ts
                    read.lines.append(line)
    return read


PREDICTION_FIELDS = ("request_id", "model", "version", "track", "inputs", "prediction")
OUTCOME_FIELDS = ("request_id", "actual")


def predictions_read(*, root: Path, model: str, start: datetime, end: datetime) -> LogRead:
    return lines_read(root=root, model=model, start=start, end=end, required=PREDICTION_FIELDS)


def outcomes_read(*, root: Path, model: str, start: datetime, end: datetime) -> dict[str, Any]:
    """request_id -> actual, for outcomes stamped in [start, end) (ground truth
    arrives after the prediction, so `end` is usually now)."""
    read = lines_read(root=root, model=model, start=start, end=end, required=OUTCOME_FIELDS)
    return {line["request_id"]: line["actual"] for line in read.lines}


def served_features(kind: str, inputs: dict[str, Any]) -> dict[str, float]:
    """The input features drift is watched on, from one logged request's inputs: the
    same ones the server observes into `serving_input_feature`."""
    try:
        if kind == "forecasting":
            return {"level_28": float(inputs["level_28"]), "discount": float(inputs["discount"])}
        if kind == "segmentation":
            features = inputs["features"]
            return {
                name: float(features[name])
                for name in (
                    "recency_days",
                    "frequency",
                    "monetary",
                    "visit_value",
                    "unit_value",
                    "promotion_share",
                    "online_share",
                    "weekend_share",
                )
            }
        if kind == "recommendation":
            return {"history_length": float(len(inputs["history"]))}
    except (KeyError, TypeError, ValueError):
        return {}
    return {}
