"""Committing a consumer's offsets to its group without holding up a stop.

aiokafka's ``commit`` retries for as long as the broker answers that the group's
coordinator is not available, so a consumer that is stopping could wait on it without
end.  With an inbox, the stored position (written in the transaction of the effects) is
what a restart resumes from, and an abandoned group commit loses nothing; without one, the
events after the group's last offset are delivered again (at least once, as after a
crash).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

log = logging.getLogger("strangler.consumer")

GRACE = 2.0  # seconds a commit may still take once the consumer is stopping


class Committer(Protocol):
    async def commit(self, offsets: Mapping[Any, int]) -> None: ...


async def commit(
    consumer: Committer, offsets: Mapping[Any, int], stopping: asyncio.Event, grace: float = GRACE
) -> bool:
    """Commit ``offsets``; a failure raises as the commit's own.  Once ``stopping`` is set
    the commit gets ``grace`` seconds more, then is abandoned (False)."""
    task = asyncio.ensure_future(consumer.commit(offsets))
    try:
        if not stopping.is_set():
            waiter = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        if not task.done():
            await asyncio.wait({task}, timeout=grace)
    except BaseException:
        task.cancel()
        raise
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    log.warning("stopping: the group commit of %s did not finish, abandoned", dict(offsets))
    return False
