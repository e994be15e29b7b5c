"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a real
``strangler run`` process with a token, two real backends and a rollout waiting for approval.

The page asks for the token, lists the routes with their live weights, shows numbers that
move with traffic and the shadow comparison of that traffic per endpoint, refuses a wrong
token (nothing happens), and its approve button moves the weight as
``GET /admin/rollout/api`` reports it.  A screenshot is kept in the test's
temporary directory and copied to ``docs/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
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
"""


def settings(tmp: Path) -> str:
    return (
        "admin: {listen: '127.0.0.1:ADMIN_PORT', token_env: STRANGLER_DASHBOARD_TOKEN}\n"
        f"rollout_store: {{url: 'sqlite:///{tmp}/rollout.db'}}\n"
        f"shadow_store: {{url: 'sqlite:///{tmp}/shadow.db'}}\n"
    )


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


async def test_the_dashboard_shows_traffic_and_approves_a_rollout(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `scripts/system-deps.sh test`")
    env = {"STRANGLER_DASHBOARD_TOKEN": TOKEN}
    with backends("legacy", "v2") as servers:
        text = config_text({n: s.url for n, s in servers.items()}, ROUTES, settings(tmp_path))
        with strangler_run(tmp_path, text, env=env, token=TOKEN) as gw:
            async with asyncio.timeout(50), async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                try:
                    page = await browser.new_page(viewport={"width": 1100, "height": 800})
                    await drive(page, gw.url, gw.admin_url, tmp_path)
                finally:
                    await browser.close()


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

    # the shadow copies of that traffic, compared per endpoint; no route captures writes
    shadowed = page.locator('#shadow tr[data-route="api"]')
    await expect(shadowed.locator(".compared")).to_have_text(re.compile(r"^[1-9]"), timeout=WAIT_MS)
    await expect(shadowed.locator(".fields")).to_contain_text("backend")
    await expect(page.locator("#outbox-note")).to_have_text("No route captures writes.")

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
