"""Run the order service: ``python -m examples.order_service --port 9002 --db sqlite:///orders.db
--bootstrap 127.0.0.1:9092 [--on-position-mismatch stop|rebuild] [--legacy http://127.0.0.1:9001]
[--events URL] [--publish]``."""

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
    parser.add_argument("--legacy", help="the monolith's URL, to claim order id blocks from")
    parser.add_argument("--events", help="the event store URL (default: --db)")
    parser.add_argument(
        "--publish", action="store_true", help="also write the events into --events' outbox"
    )
    parser.add_argument("--id-block", type=int, default=100, help="order ids claimed at a time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s order-service %(message)s")
    app = create_app(
        args.db,
        args.bootstrap,
        args.topic,
        on_position_mismatch=args.on_position_mismatch,
        legacy=args.legacy,
        events_url=args.events,
        publish=args.publish,
        id_block=args.id_block,
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
