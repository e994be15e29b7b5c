"""Run the order service: ``python -m examples.order_service --port 9002 --db sqlite:///orders.db
--bootstrap 127.0.0.1:9092 [--on-position-mismatch stop|rebuild]``."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from examples.order_service.app import create_app
from strangler_events.mismatch import POLICIES


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.order_service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--db", default="sqlite:///./orders.db", help="sqlite:/// or postgresql://")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="events.order")
    parser.add_argument(
        "--on-position-mismatch",
        choices=POLICIES,
        default="stop",
        help="when the stored position does not fit the topic's log (recreated, or events "
        "deleted unread): stop the consumer with the error, or rebuild the read model",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s order-service %(message)s")
    app = create_app(
        args.db, args.bootstrap, args.topic, on_position_mismatch=args.on_position_mismatch
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
