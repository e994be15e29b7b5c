"""The checkout example on the real broker and a real database, in the test's process:
the outbox relay, the saga runner and the participants as tasks, each startable and
stoppable on its own (a participant "down" is a stopped consumer), plus what tests read
back: instances, stock levels, the participants' ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from examples.checkout import inventory, ledger, services
from examples.checkout.orders import order_placed, place
from examples.checkout.saga import CATEGORIES, ORDERS, checkout_saga
from gateway.capture.outbox import open_store
from gateway.capture.relay import Relay
from gateway.tasks import spawn
from strangler_events.consumer import ResilientConsumer
from strangler_events.database.factory import open_database
from strangler_events.database.port import Database
from strangler_events.inbox import Inbox
from strangler_events.saga import TERMINAL, Instance, Retry, SagaDefinition
from strangler_events.saga.runner import SagaRunner
from strangler_events.saga.store import SagaStore
from tests.eventually import GiveUp, eventually

DECLINED = "4000000000000002"
CHECKOUT_CATEGORIES = [c for pair in CATEGORIES.values() for c in pair]


class CheckoutEnv:
    """``async with CheckoutEnv(url, bootstrap) as env: await env.start_all()``."""

    def __init__(
        self,
        url: str,
        bootstrap: str,
        *,
        definition: SagaDefinition | None = None,
        release_failures: int = 0,
        stock: dict[str, int] | None = None,
        relay: bool = True,
        scale: int = 1,
    ) -> None:
        self.url = url
        self.bootstrap = bootstrap
        self.definition = definition or checkout_saga(
            step_timeout=30.0, compensation_retry=Retry(attempts=5, backoff=0.1)
        )
        self.release_failures = release_failures
        self.with_relay = relay
        self.scale = scale  # runners and consumers per participant; topics' partitions
        self.stock = stock if stock is not None else {"book": 10_000}
        self.database: Database = open_database(url)
        self.databases: list[Database] = []  # one pool per extra runner or consumer
        self.store = SagaStore(self.database)
        self.relay: Relay | None = None
        self.runners: list[SagaRunner] = []
        self.consumers: dict[str, list[ResilientConsumer]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def runner(self) -> SagaRunner | None:
        return self.runners[0] if self.runners else None

    async def __aenter__(self) -> CheckoutEnv:
        await self.store.init()
        await services.prepare(self.database)
        await Inbox(self.database, "-").init()  # once: concurrent CREATE TABLEs race
        await inventory.stock(self.database, self.stock)
        if self.scale > 1:
            await partitioned(self.bootstrap, self.scale)
        if self.with_relay:
            self.relay = await services.relay(self.url, self.bootstrap)
            self.tasks["relay"] = spawn(self.relay.run(), name="test-relay")
        else:  # a process of its own relays: the outbox table must be there first
            outbox = open_store(self.url)
            await outbox.init()
            await outbox.close()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for name in list(self.consumers):
            await self.stop_participant(name)
        await self.stop_saga()
        if self.relay is not None:
            self.relay.stopping.set()
            await asyncio.wait_for(self.tasks.pop("relay"), 20)
            await self.relay.sink.stop()
            await self.relay.store.close()
        for database in [self.database, *self.databases]:
            await database.close()

    def _database(self, n: int) -> Database:
        if n == 0:
            return self.database
        database = open_database(self.url)
        self.databases.append(database)
        return database

    async def start_saga(self, **options: Any) -> SagaRunner:
        async def one(n: int) -> SagaRunner:
            runner = SagaRunner(
                self.definition,
                self._database(n),
                self.bootstrap,
                delays=(0.1, 0.5, 1.0),
                **options,
            )
            await runner.start()
            self.tasks[f"saga-{n}"] = spawn(runner.run(), name=f"test-saga-{n}")
            return runner

        self.runners = list(await asyncio.gather(*(one(n) for n in range(self.scale))))
        return self.runners[0]

    async def stop_saga(self) -> None:
        for n, runner in enumerate(self.runners):
            await runner.stop()
            await asyncio.wait_for(self.tasks.pop(f"saga-{n}"), 20)
        self.runners = []

    async def start_participant(self, name: str) -> None:
        self.consumers[name] = []
        for n in range(self.scale):
            (consumer,) = services.participants(
                self._database(n),
                self.bootstrap,
                only=[name],
                decline_cards=[DECLINED],
                release_failures=self.release_failures,
                delays=(0.1, 0.5, 1.0),
            )
            await consumer.start()
            self.consumers[name].append(consumer)
            self.tasks[f"{name}-{n}"] = spawn(consumer.run(), name=f"test-{name}-{n}")

    async def stop_participant(self, name: str) -> None:
        for n, consumer in enumerate(self.consumers.pop(name)):
            await consumer.stop()
            await asyncio.wait_for(self.tasks.pop(f"{name}-{n}"), 20)

    async def start_all(self) -> None:
        await asyncio.gather(
            self.start_saga(), *(self.start_participant(name) for name in services.PARTICIPANTS)
        )

    def check_alive(self) -> None:
        for name, task in self.tasks.items():
            if task.done():
                crash = None if task.cancelled() else task.exception()
                raise GiveUp(f"{name} stopped: {crash!r}") from crash

    async def place(
        self, count: int, declined: Collection[int] = (), amount: float = 20.0
    ) -> list[str]:
        """Place ``count`` orders (those numbered in ``declined`` with the declined
        card), in batches; their ids."""
        ids = [f"o-{uuid.uuid4().hex[:10]}" for _ in range(count)]
        orders = [
            order_placed(
                ident,
                sku="book",
                quantity=1,
                amount=amount,
                card=DECLINED if n in declined else "4242424242424242",
            )
            for n, ident in enumerate(ids)
        ]
        for start in range(0, len(orders), 200):
            await place(self.database, *orders[start : start + 200])
        return ids

    async def instances(self, ids: Sequence[str]) -> dict[str, Instance]:
        wanted = set(ids)
        found = await self.store.instances(self.definition.name, limit=1_000_000)
        return {i.id: i for i in found if i.id in wanted}

    async def until_terminal(
        self, ids: Sequence[str], timeout: float = 60.0
    ) -> dict[str, Instance]:
        async def all_terminal() -> dict[str, Instance] | None:
            self.check_alive()
            counts = await self.store.counts()  # cheap: read the instances only when done
            if any(n for (_, state), n in counts.items() if state not in TERMINAL):
                return None
            found = await self.instances(ids)
            if len(found) == len(ids) and all(i.state in TERMINAL for i in found.values()):
                return found
            return None

        result: dict[str, Instance] = await eventually(
            all_terminal, timeout=timeout, interval=0.2, message=f"{len(ids)} checkouts terminal"
        )
        return result

    async def until_state(self, ident: str, state: str, timeout: float = 30.0) -> Instance:
        async def reached() -> Instance | None:
            self.check_alive()
            found = (await self.instances([ident])).get(ident)
            return found if found is not None and found.state == state else None

        result: Instance = await eventually(
            reached, timeout=timeout, interval=0.1, message=f"{ident} {state}"
        )
        return result

    async def handled(self) -> dict[tuple[str, str], int]:
        return await ledger.handled(self.database)

    async def available(self) -> dict[str, int]:
        return await inventory.available(self.database)


async def partitioned(bootstrap: str, partitions: int) -> None:
    """The example's topics with ``partitions`` partitions each (consumers of one group
    then share the work)."""
    names = [services.TEMPLATE.format(aggregate=c) for c in (ORDERS, *CHECKOUT_CATEGORIES)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in names])
    finally:
        await admin.close()


def steps(inst: Instance, *kinds: str) -> list[tuple[str, str]]:
    """The (kind, type) of the timeline entries of these kinds, in order."""
    return [(e["kind"], e.get("type", "")) for e in inst.timeline if e["kind"] in kinds]
