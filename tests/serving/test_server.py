"""The model server as a separate process: predictions of the three models, the
errors it answers with, the sticky split, pinned versions, its metrics, and routing
changes under steady load without a failed request."""

import json
import threading
import time
from collections import Counter

import pytest
import requests

from tests.serving.conftest import SLUGS


@pytest.mark.parametrize("slug", list(SLUGS.values()))
def test_predict_answers_each_model(model_server, sample_request, slug):
    """Each model answers its own kind of input from the stable version it loaded."""
    answer = requests.post(
        f"{model_server.url}/v1/models/{slug}/predict", json=sample_request(slug, 1), timeout=10
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["version"], body["track"]) == (slug, "1.0.0", "stable")
    if slug == "demand-forecasting":
        assert len(body["forecast"]) == 7
        assert all(day["units"] >= 0 for day in body["forecast"])
    elif slug == "customer-segmentation":
        assert isinstance(body["segment"], int) and body["segment"] >= 0
    else:
        assert len(body["items"]) == 5 and len(set(body["items"])) == 5


def test_predict_bad_input_names_field(model_server, sample_request):
    """A missing or out-of-range field, an unknown category and a body that is not JSON
    get 422/400 with the JSON error shape naming the field, never a 500."""
    url = f"{model_server.url}/v1/models/demand-forecasting/predict"
    body = sample_request("demand-forecasting")
    del body["level_28"]
    answer = requests.post(url, json=body, timeout=10)
    assert answer.status_code == 422
    assert "level_28" in answer.json()["fields"]

    body = sample_request("demand-forecasting") | {"weeks": 9}
    assert "weeks" in requests.post(url, json=body, timeout=10).json()["fields"]

    body = sample_request("demand-forecasting") | {"category_id": "no-such-category"}
    answer = requests.post(url, json=body, timeout=10)
    assert answer.status_code == 422
    assert answer.json()["fields"] == {"category_id": ["unknown category 'no-such-category'"]}

    answer = requests.post(url, data=b"{not json", timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"] == "the body must be JSON"

    seg = sample_request("customer-segmentation")
    seg["features"]["online_share"] = 3
    answer = requests.post(
        f"{model_server.url}/v1/models/customer-segmentation/predict", json=seg, timeout=10
    )
    assert answer.status_code == 422
    assert "features.online_share" in answer.json()["fields"]


@pytest.mark.parametrize(
    ("slug", "change", "field"),
    [
        ("demand-forecasting", {"level_28": "Infinity"}, "level_28"),
        ("demand-forecasting", {"same_weekday_4": "NaN"}, "same_weekday_4"),
        ("demand-forecasting", {"last_year": "1e400"}, "last_year"),
        # The forecast's last day would fall after 9999-12-31.
        ("demand-forecasting", {"start_date": '"9999-12-31"'}, "start_date"),
        ("customer-segmentation", {"monetary": "-Infinity"}, "features.monetary"),
        # A department share (an extra feature column) beyond any float.
        ("customer-segmentation", {"share_bakery": "1" + "0" * 400}, "features.share_bakery"),
        ("product-recommendation", {"age_days": "Infinity"}, "history.0.age_days"),
    ],
)
def test_predict_non_finite_or_out_of_calendar_input_is_422(
    model_server, sample_request, slug, change, field
):
    """NaN, infinity (JSON's extensions, or a number past a float) and a forecast that
    would run off the calendar are 422s naming the field, never a 500 or a prediction
    whose inputs go to the drift histograms and the log as +Inf."""
    body = sample_request(slug)
    (name, raw), marker = next(iter(change.items())), '"__value__"'
    if slug == "customer-segmentation":
        body["features"][name] = "__value__"
    elif slug == "product-recommendation":
        body["history"][0][name] = "__value__"
    else:
        body[name] = "__value__"
    answer = requests.post(
        f"{model_server.url}/v1/models/{slug}/predict",
        data=json.dumps(body).replace(marker, raw),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["fields"], answer.json()


def test_predict_oversized_or_too_deep_body_is_refused(model_server, sample_request):
    """A body past 1 MB is a 413 naming the body, and JSON nested past the parser's
    depth a 400, before any of it reaches a model; the server still answers after."""
    url = f"{model_server.url}/v1/models/product-recommendation/predict"
    body = sample_request("product-recommendation")
    body["customer_id"] = "C" * 2_000_000
    answer = requests.post(url, json=body, timeout=30)
    assert answer.status_code == 413
    assert "body" in answer.json()["fields"]
    answer = requests.post(
        url,
        data="[" * 200_000 + "]" * 200_000,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["fields"] == {"body": ["not JSON"]}
    ok = requests.post(url, json=sample_request("product-recommendation"), timeout=10)
    assert ok.status_code == 200


def test_predict_unknown_model_or_version_is_404(model_server, sample_request):
    """An unknown model and a version that does not serve are 404s with the error shape."""
    answer = requests.post(f"{model_server.url}/v1/models/nope/predict", json={}, timeout=10)
    assert answer.status_code == 404
    assert answer.json() == {"error": "no model 'nope' is served", "fields": {}}
    answer = requests.post(
        f"{model_server.url}/v1/models/customer-segmentation/versions/9.9.9/predict",
        json=sample_request("customer-segmentation"),
        timeout=10,
    )
    assert answer.status_code == 404
    assert "9.9.9" in answer.json()["error"]


def test_split_is_sticky_by_key_and_pinned_endpoints_hold(
    model_server, trained_versions, sample_request
):
    """At a 50% canary each customer always gets the same version, both versions serve
    some customers, and the pinned endpoint answers from the version it names."""
    model_server.route(
        trained_versions.routing(canary_weight=50, revision=next(model_server.revisions))
    )
    url = f"{model_server.url}/v1/models/product-recommendation/predict"
    seen: dict[str, set[str]] = {}
    for n in range(40):
        for _ in range(3):
            body = requests.post(
                url, json=sample_request("product-recommendation", n), timeout=10
            ).json()
            seen.setdefault(body["customer_id"], set()).add(body["version"])
    assert all(len(versions) == 1 for versions in seen.values())
    assert Counter(v for versions in seen.values() for v in versions).keys() == {"1.0.0", "1.1.0"}

    for version, track in (("1.0.0", "stable"), ("1.1.0", "canary")):
        body = requests.post(
            f"{model_server.url}/v1/models/product-recommendation/versions/{version}/predict",
            json=sample_request("product-recommendation", 3),
            timeout=10,
        ).json()
        assert (body["version"], body["track"]) == (version, track)

    state = requests.get(f"{model_server.url}/v1/models/product-recommendation", timeout=10)
    assert state.json()["tracks"] == {
        "stable": {"version": "1.0.0", "weight": 50},
        "canary": {"version": "1.1.0", "weight": 50},
    }


def test_metrics_are_labelled_by_model_version_and_track(
    model_server, trained_versions, sample_request
):
    """Requests, latency, predictions, input features and load time are exported with
    model, version and track labels."""
    model_server.route(
        trained_versions.routing(canary_weight=100, revision=next(model_server.revisions))
    )
    requests.post(
        f"{model_server.url}/v1/models/customer-segmentation/predict",
        json=sample_request("customer-segmentation", 5),
        timeout=10,
    )
    text = requests.get(f"{model_server.url}/metrics", timeout=10).text
    labels = 'model="customer-segmentation",outcome="ok",track="canary",version="1.1.0"'
    assert f"serving_requests_total{{{labels}}} 1.0" in text
    assert (
        'serving_request_duration_seconds_count{model="customer-segmentation",'
        'track="canary",version="1.1.0"} 1.0'
    ) in text
    assert 'serving_prediction_count{model="customer-segmentation",track="canary"' in text
    assert 'feature="monetary",model="customer-segmentation",track="canary"' in text
    assert 'serving_model_load_seconds{model="customer-segmentation",version="1.1.0"}' in text


def test_routing_changes_under_load_drop_no_request(model_server, trained_versions, sample_request):
    """Steady traffic on all three models while the canary is added and its weight moves
    10 -> 50 -> 100 and back to stable only: every request is answered 200, and after
    the last change only the stable version answers."""
    failures: list[str] = []
    answered = Counter()
    stop = threading.Event()

    def send(slug: str) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            try:
                answer = session.post(
                    f"{model_server.url}/v1/models/{slug}/predict",
                    json=sample_request(slug, n),
                    timeout=10,
                )
            except requests.RequestException as error:
                failures.append(repr(error))
                continue
            if answer.status_code != 200:
                failures.append(f"{answer.status_code} {answer.text}")
            else:
                answered[answer.json()["version"]] += 1

    threads = [threading.Thread(target=send, args=(slug,)) for slug in SLUGS.values()]
    for thread in threads:
        thread.start()
    try:
        for weight in (10, 50, 100, None):
            time.sleep(0.4)
            revision = next(model_server.revisions)
            model_server.route(trained_versions.routing(canary_weight=weight, revision=revision))
        time.sleep(0.4)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert answered["1.0.0"] > 0 and answered["1.1.0"] > 0
    state = requests.get(f"{model_server.url}/v1/models/demand-forecasting", timeout=10).json()
    assert state["tracks"] == {"stable": {"version": "1.0.0", "weight": 100}}


def test_bad_routing_document_keeps_serving_the_last_good_one(model_server, sample_request):
    """A broken routing document turns readiness false and names the problem, while
    the versions already loaded keep answering."""
    model_server.routing_path.write_text('{"models": {"demand-forecasting": {"stable": 3}}}')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = requests.get(f"{model_server.url}/readyz", timeout=5)
        if ready.json()["error"] is not None:
            break
        time.sleep(0.05)
    assert ready.status_code == 503
    assert ready.json()["error"] == "models.demand-forecasting.stable must be an object"
    answer = requests.post(
        f"{model_server.url}/v1/models/demand-forecasting/predict",
        json=sample_request("demand-forecasting"),
        timeout=10,
    )
    assert answer.status_code == 200
