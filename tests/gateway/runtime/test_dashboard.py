"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a real
``strangler run`` process with a token, two real backends and a rollout waiting for approval.

The page asks for the token, lists the routes with their live weights, shows numbers that
move with traffic and the shadow comparison of that traffic per endpoint, shows the outbox
and, once a real ``strangler outbox relay`` process leads (publishing to the test broker),
the relay's holder and what it published, and "no relay" again when it stops; it refuses a
wrong token (nothing happens), and its approve button moves the weight as
``GET /admin/rollout/api`` reports it.  A screenshot is kept in the test's
temporary directory and copied to ``docs/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.eventually import eventually
from tests.gateway.support import backends, config_text, strangler_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-secret"
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "dashboard.png"
WAIT_MS = 10_000

ROUTES = """\
  - name: api
    match: {prefix: /api}
    split: {v2: 0, legacy: 100}
    shadow: {backend: v2, percent: 100}
    rollout:
      backend: v2
      steps: [{weight: 10, approve: true}, 100]
      interval: 10m
      min_requests: 5
  - name: writes
    match: {prefix: /w}
    split: {legacy: 100}
    capture:
      - {method: PUT, path: "/w/{id}", event: ItemPut, aggregate: item, id: "path:id"}
"""


def settings(tmp: Path, bootstrap: str) -> str:
    return (
        "admin: {listen: '127.0.0.1:ADMIN_PORT', token_env: STRANGLER_DASHBOARD_TOKEN}\n"
        f"rollout_store: {{url: 'sqlite:///{tmp}/rollout.db'}}\n"
        f"shadow_store: {{url: 'sqlite:///{tmp}/shadow.db'}}\n"
        f"outbox: {{url: 'sqlite:///{tmp}/outbox.db', spool: '{tmp}/spool'}}\n"
        f"kafka: {{bootstrap: '{bootstrap}', topic: 'dashboard.{{aggregate}}'}}\n"
    )


@contextmanager
def relay(config: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``strangler outbox relay`` as a real process on the gateway's outbox."""
    argv = [sys.executable, "-m", "gateway.cli", "outbox", "relay", "-c", str(config)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(20)


def rollout(admin: str) -> dict[str, Any]:
    auth = {"authorization": f"Bearer {TOKEN}"}
    answer: dict[str, Any] = httpx.get(f"{admin}/admin/rollout/api", headers=auth).json()
    return answer


async def send(url: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(count):
            assert (await client.get("/api/x")).status_code == 200


async def use_token(page: Page, token: str) -> None:
    await page.fill("#token", token)
    await page.click("#save-token")


async def test_the_dashboard_shows_traffic_and_approves_a_rollout(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `scripts/system-deps.sh test`")
    env = {"STRANGLER_DASHBOARD_TOKEN": TOKEN}
    with backends("legacy", "v2") as servers:
        urls = {n: s.url for n, s in servers.items()}
        text = config_text(urls, ROUTES, settings(tmp_path, kafka_bootstrap))
        with strangler_run(tmp_path, text, env=env, token=TOKEN) as gw:
            async with asyncio.timeout(80), async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                try:
                    page = await browser.new_page(viewport={"width": 1100, "height": 800})
                    with relay(gw.config_path) as publisher:
                        await drive(page, gw.url, gw.admin_url, tmp_path)
                        publisher.terminate()  # it resigns: the page says no relay leads
                        await expect(page.locator("#relay-note")).to_have_text(
                            "No relay: nothing publishes the outbox.", timeout=WAIT_MS
                        )
                finally:
                    await browser.close()


async def relay_shown(page: Page, url: str) -> None:
    """The leading relay with its holder, and what it published after a captured write."""
    row = page.locator("#relay tbody tr")
    await expect(row.locator(".state")).to_have_text("leading", timeout=WAIT_MS)
    await expect(row.locator(".holder")).to_have_text(re.compile(r"^relay-[0-9a-f]{12}$"))
    await expect(row.locator(".heartbeat")).to_have_text(re.compile(r"^\d+\.\d s ago$"))
    await expect(row.locator(".published")).to_have_text("0")
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        assert (await client.put("/w/1", json={"n": 1})).status_code == 200
    await expect(row.locator(".published")).to_have_text("1", timeout=WAIT_MS)
    await expect(row.locator(".last-publish")).to_have_text(re.compile(r" s ago$"))
    await expect(page.locator("#outbox tbody .published")).to_have_text("1", timeout=WAIT_MS)
    await expect(page.locator("#outbox tbody .pending")).to_have_text("0")


async def drive(page: Page, url: str, admin: str, tmp: Path) -> None:
    message = page.locator("#message")
    problems: list[str] = []  # script errors and refused page files (e.g. by the CSP)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(request.url))
    await page.goto(f"{admin}/")
    await expect(message).to_have_text("wrong or missing token", timeout=WAIT_MS)
    await use_token(page, TOKEN)

    # (1) the routes, with their live weights
    legacy = page.locator('#routes tr[data-route="api"][data-backend="legacy"]')
    await expect(legacy.locator(".weight")).to_have_text("100", timeout=WAIT_MS)
    await expect(legacy.locator(".requests")).to_have_text("0")
    await expect(message).to_be_empty()

    # (2) numbers move with traffic
    await send(url, 20)
    await expect(legacy.locator(".requests")).to_have_text("20", timeout=WAIT_MS)
    backend = page.locator('#backends tr[data-route="api"][data-backend="legacy"]')
    await expect(backend.locator(".requests")).to_have_text("20", timeout=WAIT_MS)

    # the shadow copies of that traffic, compared per endpoint
    shadowed = page.locator('#shadow tr[data-route="api"]')
    await expect(shadowed.locator(".compared")).to_have_text(re.compile(r"^[1-9]"), timeout=WAIT_MS)
    await expect(shadowed.locator(".fields")).to_contain_text("backend")

    # the outbox, and the relay that leads and publishes it
    await expect(page.locator("#outbox-note")).to_be_hidden()
    await relay_shown(page, url)

    # (3) a rollout waiting for approval
    started = httpx.post(
        f"{admin}/admin/rollout/api/start", headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert started.json()["phase"] == "waiting_for_approval", started.text
    box = page.locator('#rollouts [data-rollout="api"]')
    await expect(box.locator(".phase")).to_have_text("waiting_for_approval", timeout=WAIT_MS)
    approve = box.locator('button[data-action="approve"]')
    await expect(approve).to_be_enabled()

    # (4) a wrong token is refused and nothing happens
    await use_token(page, "not-the-token")
    await expect(message).to_contain_text("wrong or missing token", timeout=WAIT_MS)
    await approve.click()
    await expect(message).to_contain_text("approve api: wrong or missing token", timeout=WAIT_MS)
    assert (rollout(admin)["phase"], rollout(admin)["weight"]) == ("waiting_for_approval", 0)

    # approve with the right token moves the weight; the page and the API agree
    await use_token(page, TOKEN)
    await expect(message).to_be_empty(timeout=WAIT_MS)
    await approve.click()
    await expect(box.locator(".phase")).to_have_text("progressing", timeout=WAIT_MS)
    await expect(box.locator(".weight")).to_have_text("10")
    state = rollout(admin)
    assert (state["phase"], state["weight"]) == ("progressing", 10)
    v2 = page.locator('#routes tr[data-route="api"][data-backend="v2"] .weight')
    await expect(v2).to_have_text("10", timeout=WAIT_MS)
    await expect(legacy.locator(".weight")).to_have_text("90")

    # traffic until the page shows v2 serving its share (workers follow within a second)
    new = page.locator('#backends tr[data-route="api"][data-backend="v2"]')

    async def v2_shown() -> bool:
        await send(url, 20)
        return await new.count() > 0

    await eventually(v2_shown, timeout=WAIT_MS / 1000, interval=0.5)
    assert problems == []
    shot = tmp / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
