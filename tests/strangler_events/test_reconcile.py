"""Classifying discrepancies (pure), and reconciling two real HTTP APIs with repair."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from strangler_events.reconcile import classify, reconcile
from tests.harness import UvicornThread


def rows(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(i["id"]): i for i in items}


def test_classify() -> None:
    truth = rows(
        {"id": 1, "v": "a", "at": "2"},
        {"id": 2, "v": "b", "at": "2"},
        {"id": 3, "v": "c", "at": "2"},
        {"id": 10, "v": "d", "at": "1"},
    )
    model = rows(
        {"id": 1, "v": "a", "at": "2"},
        {"id": 2, "v": "x", "at": "2"},
        {"id": 3, "v": "old", "at": "1"},
        {"id": 4, "v": "e", "at": "1"},
    )
    found = classify(truth, model, "at")
    assert (found.missing, found.stale, found.different, found.extra) == (
        ["10"],
        ["3"],
        ["2"],
        ["4"],
    )
    assert found.counts() == {"missing": 1, "stale": 1, "different": 1, "extra": 1}
    without_version = classify(truth, model)
    assert without_version.different == ["2", "3"] and without_version.stale == []


async def test_reconcile_repairs_through_the_model_service() -> None:
    truth = [{"id": n, "v": n} for n in range(1, 21)]
    model: dict[int, dict[str, Any]] = {n: {"id": n, "v": n} for n in range(1, 21)}
    for n in (3, 4):
        model[n]["v"] = -1
    del model[7]

    async def truth_list(request: Request) -> JSONResponse:
        return JSONResponse(truth)

    async def model_list(request: Request) -> JSONResponse:
        return JSONResponse([model[k] for k in sorted(model)])

    async def repair(request: Request) -> JSONResponse:
        n = int(request.path_params["id"])
        model[n] = {"id": n, "v": n}
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/truth", truth_list),
            Route("/model", model_list),
            Route("/repair/{id:int}", repair, methods=["POST"]),
        ]
    )
    with UvicornThread(app) as server:
        base = server.url
        checked = await reconcile(f"{base}/truth", f"{base}/model")
        assert checked.before.counts() == {"missing": 1, "stale": 0, "different": 2, "extra": 0}
        assert checked.after is None
        fixed = await reconcile(
            f"{base}/truth", f"{base}/model", repair_url=f"{base}/repair/{{id}}"
        )
        assert fixed.repaired == 3
        assert fixed.after is not None and fixed.after.total == 0
