"""`python -m serving --routing routing.json --port 8600`: run the model server."""

import argparse
import os

import uvicorn

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
    args = parser.parse_args()
    app = create_app(
        routing_path=args.routing, allow_faults=args.allow_faults, poll_seconds=args.poll_seconds
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
