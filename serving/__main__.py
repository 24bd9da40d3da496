"""`python -m serving --routing routing.json --port 8600`: run the model server."""

import argparse
import os

# One native thread per prediction: requests are already served in parallel, and
# OpenMP's busy-waiting thread pools (scikit-learn's gradient boosting) on a machine
# that is busy anyway made each prediction many times slower. Set before the
# libraries load; SERVING_THREADS raises it on a dedicated machine.
os.environ["OMP_NUM_THREADS"] = os.environ.get("SERVING_THREADS", "1")

import uvicorn

from pipelines.suppression import SuppressionListInvalid
from serving.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument(
        "--routing", default=os.environ.get("SERVING_ROUTING_FILE", "var/serving/routing.json")
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SERVING_PORT", "8600")))
    parser.add_argument(
        "--allow-faults",
        action="store_true",
        default=os.environ.get("SERVING_ALLOW_FAULTS") == "1",
        help="honour injected faults in the routing document (never in production)",
    )
    parser.add_argument("--poll-seconds", type=float, default=0.2)
    parser.add_argument(
        "--prediction-log-dir",
        default=os.environ.get("SERVING_PREDICTION_LOG_DIR") or None,
        help="append each prediction to <dir>/<model>/<YYYY-MM-DD>.jsonl (off when unset)",
    )
    parser.add_argument(
        "--suppression-list",
        default=os.environ.get("SERVING_SUPPRESSION_LIST") or None,
        help="the portal's suppression list file: listed customers are not profiled (its "
        "hashing key from DSAR_SUPPRESSION_KEY or DSAR_SUPPRESSION_KEY_FILE)",
    )
    args = parser.parse_args()
    try:
        app = create_app(
            routing_path=args.routing,
            allow_faults=args.allow_faults,
            poll_seconds=args.poll_seconds,
            prediction_log_dir=args.prediction_log_dir,
            suppression_list=args.suppression_list,
        )
    except SuppressionListInvalid as error:
        parser.exit(2, f"python -m serving: {error}\n")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
