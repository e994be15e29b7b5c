"""Reconciliation: compare a read model with its source of truth per aggregate, classify
what differs, repair it, and report the counts.

``classify`` is pure.  ``reconcile`` reads both sides as JSON lists from HTTP
endpoints (the legacy monolith's API and the new service's), asks the new service
to repair each aggregate that differs (``--repair`` URL template, POST, e.g. its
re-projection from events), and classifies again.

Kinds: *missing* (in the source, not in the read model), *stale* (the read model's
version field is older), *different* (same version, other values), *extra* (in the
read model only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

Rows = Mapping[str, Mapping[str, Any]]


@dataclass
class Discrepancies:
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.stale) + len(self.different) + len(self.extra)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in asdict(self).items()}


def _sort_key(ident: str) -> tuple[int, str]:
    return (0, f"{int(ident):020d}") if ident.isdigit() else (1, ident)


def classify(
    truth: Rows, model: Rows, version_field: str | None = None, fields: Sequence[str] | None = None
) -> Discrepancies:
    out = Discrepancies()
    for ident in sorted(truth.keys() | model.keys(), key=_sort_key):
        if ident not in model:
            out.missing.append(ident)
            continue
        if ident not in truth:
            out.extra.append(ident)
            continue
        a, b = truth[ident], model[ident]
        keys = fields if fields is not None else sorted(a.keys() | b.keys())
        if all(a.get(k) == b.get(k) for k in keys):
            continue
        if version_field and str(b.get(version_field, "")) < str(a.get(version_field, "")):
            out.stale.append(ident)
        else:
            out.different.append(ident)
    return out


async def fetch(client: httpx.AsyncClient, url: str, key: str) -> dict[str, dict[str, Any]]:
    response = await client.get(url)
    response.raise_for_status()
    rows = response.json()
    if not isinstance(rows, list):
        raise ValueError(f"{url}: expected a JSON list, got {type(rows).__name__}")
    return {str(row[key]): row for row in rows}


@dataclass
class Outcome:
    before: Discrepancies
    after: Discrepancies | None
    repaired: int


async def reconcile(
    truth_url: str,
    model_url: str,
    key: str = "id",
    version_field: str | None = None,
    repair_url: str | None = None,
) -> Outcome:
    async with httpx.AsyncClient(timeout=30) as client:
        truth = await fetch(client, truth_url, key)
        model = await fetch(client, model_url, key)
        before = classify(truth, model, version_field)
        if repair_url is None or before.total == 0:
            return Outcome(before, None, 0)
        repaired = 0
        for ident in before.missing + before.stale + before.different + before.extra:
            response = await client.post(repair_url.format(id=ident))
            response.raise_for_status()
            repaired += 1
        after = classify(
            await fetch(client, truth_url, key), await fetch(client, model_url, key), version_field
        )
        return Outcome(before, after, repaired)
