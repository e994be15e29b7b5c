"""Run the account example: ``python -m examples.account [EVENT_STORE_URL]``.

Opens an account, deposits, withdraws once with and once without enough money, and
prints the balance and the stream (default store: ``sqlite:///./account-example.db``;
a ``postgresql://`` URL works the same).  Run it twice: the account is already open
the second time, which is refused, and the rest carries on from the stored balance.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from examples.account.account import Account, AccountAlreadyOpened
from strangler_events.eventstore.factory import open_event_store
from strangler_events.repository import Repository, handle

DEFAULT_URL = "sqlite:///./account-example.db"


async def run(url: str, account_id: str = "acc-1") -> list[str]:
    """The example's story, as the lines it prints."""
    store = open_event_store(url)
    await store.init()
    out: list[str] = []
    try:
        accounts = Repository(store, Account, "account", snapshot_every=5)
        try:
            await handle(accounts, account_id, lambda a: a.open("ada"))
        except AccountAlreadyOpened as exc:
            out.append(f"refused: {exc}")
        await handle(accounts, account_id, lambda a: a.deposit(100))
        await handle(accounts, account_id, lambda a: a.withdraw(30))
        done = await handle(accounts, account_id, lambda a: a.withdraw(500))
        out.append(f"balance of {account_id}: {done.aggregate.balance}")
        for event in await store.read_stream(accounts.stream(account_id)):
            out.append(f"{event.version:>3} {event.type} {event.data}")
    finally:
        await store.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    for line in asyncio.run(run(args[0] if args else DEFAULT_URL)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
