"""The dashboard in a real browser: Debian's chromium driven by Playwright (the system browser, nothing
downloaded). The page loads without console errors, shows a job created through the official SDK, follows
the manual clock when it is advanced through the control API and from the page itself, draws an item's
drafts over its image (as many as the API returns), and shows the SDK's requests in the journal.
Screenshots go to ``artifacts/screenshots/`` (or ``$AVALA_MOCK_ARTIFACTS``)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import avala
import pytest

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer
from helpers import project_named

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("AVALA_MOCK_ARTIFACTS") or Path(__file__).resolve().parent.parent / "artifacts") / "screenshots"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("AVALA_MOCK_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium); .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it and runs this test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_dashboard_follows_an_sdk_job_and_draws_its_drafts(browser):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with LiveServer(ServerConfig(manual_clock=True, seed=7, rate_limit=10**9)) as server:
        client = avala.Client(api_key=server.api_key, base_url=server.base_url)
        job = client.auto_label_jobs.create(project_named(client, "Transit Vehicles").uid, model_type="yolo")
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}") if "/stream/" not in r.url else None)

        started = time.perf_counter()
        page.goto(server.origin + "/_mock/ui/")
        row = page.locator(f'[data-testid="job-row"][data-job-uid="{job.uid}"]')
        expect(row).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator('[data-testid="stream-status"]')).to_have_text("live", timeout=TIMEOUT_MS)
        timings["load to job row"] = time.perf_counter() - started

        # the control API moves the clock: the row follows through the event stream, no reload
        before = int(row.get_attribute("data-processed") or 0)
        server.control("POST", "clock/advance", {"seconds": 6})
        started = time.perf_counter()
        page.wait_for_function("([sel, n]) => +document.querySelector(sel).dataset.processed > n",
                               arg=[f'[data-testid="job-row"][data-job-uid="{job.uid}"]', before], timeout=TIMEOUT_MS)
        timings["control-API advance shown"] = time.perf_counter() - started
        page.screenshot(path=str(ARTIFACTS / "dashboard-jobs.png"), full_page=True)

        # the page moves the clock itself, through the same control API
        mid = int(row.get_attribute("data-processed") or 0)
        page.fill('[data-testid="advance-seconds"]', "12")
        started = time.perf_counter()
        page.click('[data-testid="advance-button"]')
        page.wait_for_function("([sel, n]) => +document.querySelector(sel).dataset.processed > n",
                               arg=[f'[data-testid="job-row"][data-job-uid="{job.uid}"]', mid], timeout=TIMEOUT_MS)
        timings["page advance shown"] = time.perf_counter() - started
        assert server.control("GET", "clock")["epoch"] >= 1767603600.0 + 18  # both moves reached the server
        shown = int(row.get_attribute("data-processed") or 0)
        assert shown <= client.auto_label_jobs.get(job.uid).processed_items  # never ahead of the API
        assert 0 < float(row.locator('[data-testid="job-progress"]').get_attribute("value") or 0) <= 100

        # finish the job, open its gallery: an image with its drafts drawn over it
        server.control("POST", "clock/advance", {"seconds": 3600})
        expect(row).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
        started = time.perf_counter()
        opener = row.locator('[data-testid="open-gallery"]')
        (opener if opener.count() else row).first.click()
        card = page.locator('[data-testid="gallery-item"]').first
        expect(card).to_be_visible(timeout=TIMEOUT_MS)
        image = card.locator('[data-testid="gallery-image"]')
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=TIMEOUT_MS)
        timings["gallery image rendered"] = time.perf_counter() - started
        natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        item_uid = card.get_attribute("data-item-uid")
        gallery = server.control("GET", f"dashboard/jobs/{job.uid}/gallery", params={"limit": 12})
        listed = next(i for i in gallery["items"] if i["uid"] == item_uid)
        assert natural == [listed["width"], listed["height"]] == [1280, 720]
        page.locator('[data-testid="threshold-slider"]').fill(str(gallery["job"]["confidence_threshold"]))
        drawn_kept = card.locator("svg .draft:not(.below)").count()
        api_drafts = _api_draft_count(server, item_uid, job.uid)
        assert drawn_kept == api_drafts == sum(d["accepted"] for d in listed["drafts"])
        assert card.locator("svg .draft").count() == len(listed["drafts"])
        page.screenshot(path=str(ARTIFACTS / "dashboard-gallery.png"), full_page=True)

        # the journal shows the SDK's requests
        journal_row = page.locator('[data-testid="journal-row"][data-operation-id="create_auto_label_job"]')
        expect(journal_row.first).to_be_attached(timeout=TIMEOUT_MS)
        assert page.locator('[data-testid="journal-row"][data-operation-id="list_my_projects"]').count() >= 1
        page.screenshot(path=str(ARTIFACTS / "dashboard-journal.png"), full_page=True)
        page.close()
        client.close()
    assert problems == []
    print("\ndashboard browser timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
          + f"; screenshots in {ARTIFACTS}")


def _api_draft_count(server: LiveServer, item_uid: str, job_uid: str) -> int:
    """The objects of the item's drafts from this job, as GET /datasets/{owner}/{slug}/items/{uid}/ answers."""
    r = server.http.get(f"/api/v1/datasets/acme-robotics/street-scenes/items/{item_uid}/",
                        headers={"X-Avala-Api-Key": server.api_key})
    results = r.json()["annotations"]["results"]
    return sum(len(x["objects"]) for x in results if x.get("source") == "auto_label" and job_uid in str(x))
