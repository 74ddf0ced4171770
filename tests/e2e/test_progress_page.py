"""The progress page in a real headless Chromium: click Enqueue, watch the bar reach 100%."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect, sync_playwright

from services.api import auth
from services.contract import registry as workflow_registry
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


@pytest.fixture
def api_and_worker(new_migrated_database: NewDatabase, tmp_path: Path) -> Iterator[Api]:
    """The API and a worker on a fresh SQLite database."""
    url = new_migrated_database("sqlite")
    worker = start_worker(url, tmp_path)
    api = Api(url, tmp_path)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        yield api
    finally:
        api.stop()
        worker.stop()


@pytest.mark.requires_tool("chromium")
def test_enqueue_from_the_page_and_watch_it_finish(
    browser: Browser, api_and_worker: Api, tmp_path: Path
) -> None:
    api = api_and_worker
    page = browser.new_page()
    page.goto(api.url + "/")
    expect(page.locator("#empty")).to_be_visible()

    page.fill("#input-num-steps", "4")
    page.fill("#input-step-seconds", "0.4")
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


@pytest.mark.requires_tool("chromium")
def test_any_type_from_its_schema_filters_and_steps_on_click(
    browser: Browser, api_and_worker: Api, tmp_path: Path
) -> None:
    api = api_and_worker
    demo = api.enqueue(num_steps=1, step_seconds=0)
    page = browser.new_page()
    page.goto(api.url + "/")

    # The form follows the type: the fan-out's fields, with its schema's bounds and
    # defaults; a partition key only for a type on a partitioned queue.
    page.select_option("#workflow-type", "fanout")
    expect(page.locator("#input-items")).to_have_attribute("max", "200")
    expect(page.locator("#input-items")).to_have_value("5")
    expect(page.locator("#input-num-steps")).to_have_count(0)
    expect(page.locator("#partition-key-label")).to_be_hidden()
    page.select_option("#workflow-type", "fanout_item")
    expect(page.locator("#partition-key-label")).to_be_visible()

    # Input the schema refuses: the API's answer names the field, nothing is enqueued.
    page.select_option("#workflow-type", "fanout")
    page.fill("#input-items", "0")
    page.evaluate("document.getElementById('input-items').removeAttribute('min')")
    page.click("#enqueue-button")
    expect(page.locator("#message")).to_contain_text("input.items", timeout=10_000)

    page.fill("#input-items", "3")
    page.fill("#input-item-seconds", "0.1")
    page.click("#enqueue-button")
    message = page.locator("#message")
    expect(message).to_contain_text("Enqueued", timeout=10_000)
    fanout = message.get_attribute("data-workflow-id")
    assert fanout
    assert api.wait_status(fanout, "SUCCESS", timeout=60)["workflow"] == "fanout"

    # Filters: only the fan-out's own type, then only the demo's queue.
    page.select_option("#filter-type", "fanout")
    expect(page.locator(f'tr[data-workflow-id="{fanout}"]')).to_be_visible()
    expect(page.locator(f'tr[data-workflow-id="{demo}"]')).to_have_count(0)
    expect(page.locator("tbody#workflows td.type")).to_have_text(["fanout"])
    page.select_option("#filter-type", "")
    page.select_option("#filter-queue", "workflow-queue")
    expect(page.locator(f'tr[data-workflow-id="{demo}"]')).to_be_visible()
    expect(page.locator(f'tr[data-workflow-id="{fanout}"]')).to_have_count(0)

    # A click shows the workflow's steps: the demo's one step, done.
    page.click(f'tr[data-workflow-id="{demo}"] td.id')
    expect(page.locator("#steps-of")).to_have_text(demo)
    expect(page.locator("#step-rows td.step-name")).to_contain_text(["step"])
    page.select_option("#filter-queue", "")
    page.click(f'tr[data-workflow-id="{fanout}"] td.id')
    expect(page.locator("#steps-of")).to_have_text(fanout)
    # Its children, started and awaited, are operations of its own.
    expect(page.locator("#step-rows tr")).not_to_have_count(0)
    page.screenshot(path=tmp_path / "types-page.png")


ODD_TYPE = {
    "queue": "workflow-queue",
    "module": "services.worker.workflows",
    "input_schema": {
        "type": "object",
        "properties": {
            # Named like the page's own controls: the form must keep them apart.
            "priority": {"type": "integer", "default": 5},
            "message": {"type": "string"},
            "flag": {"type": "boolean"},
            "mode": {"enum": ["fast", "slow"]},
            "count": {"type": "integer", "minimum": 1},
        },
        "required": ["count"],
        "additionalProperties": False,
    },
}


@pytest.mark.requires_tool("chromium")
def test_the_form_sends_what_was_filled_in_and_leaves_out_the_rest(
    browser: Browser, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    registry = json.loads(workflow_registry.BUILT_IN.read_text())
    registry["workflows"]["odd"] = ODD_TYPE
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    url = new_migrated_database("sqlite")
    api = Api(url, tmp_path, WORKFLOW_REGISTRY=str(path))  # no worker: it stays ENQUEUED
    try:
        api.wait_ready()
        page = browser.new_page()
        page.goto(api.url + "/")
        page.select_option("#workflow-type", "odd")
        expect(page.locator("#input-priority")).to_have_value("5")
        page.fill("#input-message", "hello")
        page.fill("#input-count", "2")
        page.fill("#priority", "3")  # the enqueue option, not the input's property
        page.click("#enqueue-button")
        message = page.locator("#message")
        expect(message).to_contain_text("Enqueued", timeout=10_000)
        workflow_id = message.get_attribute("data-workflow-id")
        assert workflow_id

        assert api.workflow(workflow_id)["priority"] == 3
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            stored = conn.execute(
                sa.text("SELECT inputs FROM workflow_input WHERE workflow_uuid = :id"),
                {"id": workflow_id},
            ).scalar_one()
        engine.dispose()
        # The optional boolean and enum were left "(not set)": left out, not false or "fast".
        assert json.loads(stored)["namedArgs"] == {"priority": 5, "message": "hello", "count": 2}
    finally:
        api.stop()


@pytest.mark.requires_tool("chromium")
def test_the_page_asks_for_a_token_when_the_api_needs_one(
    browser: Browser, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    reader, reader_line = auth.new_token("dashboard", "read")
    operator, operator_line = auth.new_token("ops", "operate")
    (tmp_path / "tokens").write_text(f"{reader_line}\n{operator_line}\n")
    api = Api(
        new_migrated_database("sqlite"),
        tmp_path,
        API_AUTH="tokens",
        API_AUTH_TOKENS_FILE=str(tmp_path / "tokens"),
    )
    try:
        api.wait_ready()
        page = browser.new_page()
        page.goto(api.url + "/")
        sign_in = page.locator("#sign-in")
        expect(sign_in).to_be_visible(timeout=10_000)
        expect(page.locator("#sign-in-reason")).to_contain_text("needs a bearer token")

        # A wrong token: asked again, saying why.
        page.fill("#token", "not-a-token")
        page.click("#sign-in button")
        expect(page.locator("#sign-in-reason")).to_contain_text("not valid", timeout=10_000)

        # A token of role read: the listing and the types load; an enqueue is refused.
        page.fill("#token", reader)
        page.click("#sign-in button")
        expect(sign_in).to_be_hidden()
        expect(page.locator("#empty")).to_be_visible(timeout=10_000)
        expect(page.locator("#workflow-type option")).not_to_have_count(0, timeout=10_000)
        page.click("#enqueue-button")
        expect(page.locator("#message")).to_contain_text(
            "dashboard has the role read; this needs operate", timeout=10_000
        )
        assert (
            api.http.get("/workflows", headers={"Authorization": f"Bearer {operator}"}).json()[
                "workflows"
            ]
            == []
        )

        # The tab keeps the token across a reload; an operate token enqueues.
        page.reload()
        expect(page.locator("#empty")).to_be_visible(timeout=10_000)
        page.evaluate("sessionStorage.clear()")
        page.reload()
        expect(sign_in).to_be_visible(timeout=10_000)
        page.fill("#token", operator)
        page.click("#sign-in button")
        expect(page.locator("#workflow-type option")).not_to_have_count(0, timeout=10_000)
        page.click("#enqueue-button")
        expect(page.locator("#message")).to_contain_text("Enqueued", timeout=10_000)
        # The token went in a header, never in the address.
        assert reader not in page.url and operator not in page.url
    finally:
        api.stop()
