"""Run the legacy monolith: ``python -m examples.legacy_monolith --port 9001 --db legacy.db``
(or ``--db postgresql://...``)."""

from __future__ import annotations

import argparse

import uvicorn

from examples.legacy_monolith.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.legacy_monolith")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--db", default="./legacy.db", help="a SQLite path, or a postgresql:// URL")
    args = parser.parse_args()
    try:
        uvicorn.run(create_app(args.db), host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
