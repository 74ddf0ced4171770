"""The progress page in a real headless Chromium: click Enqueue, watch the bar reach 100%."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.conftest import NewDatabase
from tests.support.processes import Api, start_worker, wait_worker_ready
from tests.support.tools import require_tool

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = require_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.mark.requires_tool("chromium")
def test_enqueue_from_the_page_and_watch_it_finish(
    browser: Browser, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("sqlite")
    worker = start_worker(url, tmp_path)
    api = Api(url, tmp_path)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        page = browser.new_page()
        page.goto(api.url + "/")
        expect(page.locator("#empty")).to_be_visible()

        page.fill("#num-steps", "4")
        page.fill("#step-seconds", "0.4")
        page.click("#enqueue-button")
        message = page.locator("#message")
        expect(message).to_contain_text("Enqueued", timeout=10_000)
        workflow_id = message.get_attribute("data-workflow-id")
        assert workflow_id

        row = page.locator(f'tr[data-workflow-id="{workflow_id}"]')
        bar = row.get_by_role("progressbar")
        # Live refresh: the bar is seen part way, then full, without reloading the page.
        page.wait_for_function(
            """id => {
                const row = `tr[data-workflow-id="${id}"]`;
                const bar = document.querySelector(`${row} [role=progressbar]`);
                const value = bar ? Number(bar.getAttribute("aria-valuenow")) : 0;
                return value > 0 && value < 100;
            }""",
            arg=workflow_id,
            timeout=30_000,
        )
        expect(bar).to_have_attribute("aria-valuenow", "100", timeout=30_000)
        expect(row.locator("td.status")).to_have_text("SUCCESS", timeout=30_000)
        expect(bar).to_contain_text("4 / 4")
        page.screenshot(path=tmp_path / "progress-page.png")
        assert api.workflow(workflow_id)["status"] == "SUCCESS"
    finally:
        api.stop()
        worker.stop()
