"""Canary analysis: the canary against the stable version serving beside it.

Read from Prometheus over the step's bake time: request counts and error rates,
p95 and p99 latency, and the mean of the prediction distribution, per track. The
canary fails when it is worse than the stable version beyond the target's thresholds;
too little traffic on either side, or no answer from Prometheus, is inconclusive,
never a pass.
"""

from dataclasses import dataclass, field
from typing import Any

from governance.rollouts.choices import AnalysisResult
from worker.backends.prometheus import PrometheusError, PrometheusReader

DEFAULT_THRESHOLDS: dict[str, float] = {
    "min_requests": 20,  # per track in the window, below which nothing is concluded
    "max_error_rate_increase": 0.02,  # canary's error rate minus stable's
    "max_latency_ratio": 1.5,  # canary's p95/p99 over stable's (when no own limit) ...
    "max_p95_latency_ratio": 1.5,
    "max_p99_latency_ratio": 1.5,
    "min_latency_increase_seconds": 0.005,  # ... and at least this much slower
    "max_prediction_shift": 0.25,  # |canary mean - stable mean| / |stable mean|
}


@dataclass
class Analysis:
    result: str
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "reasons": self.reasons, "measures": self.measures}


def _value(reader: PrometheusReader, promql: str) -> float | None:
    found = reader.query(promql)
    return found[0][1] if found else None


def _measure(
    reader: PrometheusReader, selector: str, window: str, offset: str
) -> dict[str, float | None]:
    """Requests, errors, p95/p99 latency and mean prediction of one track."""
    at = f"[{window}]{offset}"
    requests_ = _value(reader, f"sum(increase(serving_requests_total{{{selector}}}{at}))") or 0.0
    errors = _value(
        reader, f'sum(increase(serving_requests_total{{{selector},outcome="error"}}{at}))'
    )
    latency = {
        q: _value(
            reader,
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(serving_request_duration_seconds_bucket{{{selector}}}{at})))",
        )
        for q in ("0.95", "0.99")
    }
    mean = _value(
        reader,
        f"sum(rate(serving_prediction_sum{{{selector}}}{at})) / "
        f"sum(rate(serving_prediction_count{{{selector}}}{at}))",
    )
    return {
        "requests": round(requests_, 2),
        "error_rate": round((errors or 0.0) / requests_, 4) if requests_ else None,
        "p95_seconds": latency["0.95"],
        "p99_seconds": latency["0.99"],
        "prediction_mean": mean,
    }


def canary_analyse(
    *,
    reader: PrometheusReader,
    model: str,
    stable_version: str,
    canary_version: str,
    window_seconds: int,
    stable_offset_seconds: int = 0,
    thresholds: dict[str, float] | None = None,
) -> Analysis:
    """Compare the canary with the stable version over the last `window_seconds`.

    When the canary takes all the traffic (the last step) the stable version answers
    nothing meanwhile: `stable_offset_seconds` then compares with the stable version's
    measures over the window before (PromQL `offset`).
    """
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    # A strategy naming only the common ratio applies it to both quantiles.
    for name in ("max_p95_latency_ratio", "max_p99_latency_ratio"):
        if name not in (thresholds or {}) and "max_latency_ratio" in (thresholds or {}):
            limits[name] = limits["max_latency_ratio"]
    # No traffic is never a pass, whatever a threshold says.
    limits["min_requests"] = max(float(limits["min_requests"]), 1.0)
    window = f"{max(int(window_seconds), 2)}s"
    selectors = {
        "stable": f'model="{_quoted(model)}",version="{_quoted(stable_version)}",track="stable"',
        "canary": f'model="{_quoted(model)}",version="{_quoted(canary_version)}",track="canary"',
    }
    offsets = {
        "stable": f" offset {int(stable_offset_seconds)}s" if stable_offset_seconds else "",
        "canary": "",
    }
    try:
        measures = {
            track: _measure(reader, selectors[track], window, offsets[track])
            for track in ("stable", "canary")
        }
    except PrometheusError as error:
        return Analysis(AnalysisResult.INCONCLUSIVE, [str(error)])
    stable, canary = measures["stable"], measures["canary"]
    short = [
        f"{track}: {measures[track]['requests']} requests, fewer than {limits['min_requests']:g}"
        for track in ("stable", "canary")
        if (measures[track]["requests"] or 0) < limits["min_requests"]
    ]
    if short:
        return Analysis(
            AnalysisResult.INCONCLUSIVE, ["too little traffic: " + "; ".join(short)], measures
        )

    missing = [
        f"{track}: no {name[:3]} latency"
        for track in ("stable", "canary")
        for name in ("p95_seconds", "p99_seconds")
        if measures[track][name] is None
    ]
    if missing:
        return Analysis(AnalysisResult.INCONCLUSIVE, ["no data: " + "; ".join(missing)], measures)

    reasons = []
    increase = (canary["error_rate"] or 0.0) - (stable["error_rate"] or 0.0)
    if increase > limits["max_error_rate_increase"]:
        reasons.append(
            f"error rate {canary['error_rate']:.2%} against {stable['error_rate']:.2%} stable"
        )
    for name in ("p95_seconds", "p99_seconds"):
        c, s = canary[name], stable[name]
        if (
            c is not None
            and s is not None
            and c > s * limits[f"max_{name[:3]}_latency_ratio"]
            and (c - s > limits["min_latency_increase_seconds"])
        ):
            reasons.append(f"{name[:3]} latency {c * 1000:.1f} ms against {s * 1000:.1f} ms stable")
    c, s = canary["prediction_mean"], stable["prediction_mean"]
    if c is not None and s is not None:
        shift = abs(c - s) / max(abs(s), 1e-9)
        measures["canary"]["prediction_shift"] = round(shift, 4)
        if shift > limits["max_prediction_shift"]:
            reasons.append(f"predictions shifted by {shift:.0%} from the stable version's")
    if reasons:
        return Analysis(AnalysisResult.FAIL, reasons, measures)
    return Analysis(AnalysisResult.PASS, ["canary within the thresholds"], measures)


def _quoted(text: str) -> str:
    """Text inside a PromQL label matcher's double quotes."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
