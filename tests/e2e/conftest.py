"""A real server for the browser tests, and Debian's Chromium driven by Playwright.

The server serves the demo models from models/ when they have been built; otherwise the tiny
random T5 and a tiny classifier that has learned the test's sentences by heart.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from takeoff.config import ServerConfig
from tests.feedback_models import save_feedback_classifier
from tests.server.conftest import TEST_DEFAULTS, ThreadServer

ROOT = Path(__file__).resolve().parents[2]
DEMO_REWRITER = ROOT / "models" / "feedback-rewriter"
DEMO_CLASSIFIER = ROOT / "models" / "feedback-classifier"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def demo_models_built() -> bool:
    return all((path / "config.json").is_file() for path in (DEMO_REWRITER, DEMO_CLASSIFIER))


@pytest.fixture(scope="session")
def coach_server(tiny_t5_dir, tmp_path_factory):
    if demo_models_built():
        models = dict(model=str(DEMO_REWRITER), classifier=str(DEMO_CLASSIFIER))
    else:
        classifier = save_feedback_classifier(tmp_path_factory.mktemp("e2e-classifier"))
        models = dict(model=str(tiny_t5_dir), classifier=str(classifier))
    server = ThreadServer(ServerConfig(**dict(TEST_DEFAULTS, **models))).start()
    yield server
    server.stop()


def chromium_path(playwright) -> str | None:
    """$TAKEOFF_CHROMIUM, Debian's chromium, or Playwright's own (None: use Playwright's)."""
    if os.environ.get("TAKEOFF_CHROMIUM"):
        return os.environ["TAKEOFF_CHROMIUM"]
    if DEBIAN_CHROMIUM.exists():
        return str(DEBIAN_CHROMIUM)
    if Path(playwright.chromium.executable_path).exists():
        return None
    # A browser test that cannot find its browser must fail, never skip: `make test` installs one.
    pytest.fail("no Chromium for the browser tests: run `make test` (scripts/ensure-browser "
                "installs one) or `apt-get install -y chromium`")


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(playwright),
                                                   args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser, coach_server):
    context = await browser.new_context(base_url=coach_server.url,
                                        viewport={"width": 1100, "height": 900})
    await context.grant_permissions(["clipboard-read", "clipboard-write"],
                                    origin=coach_server.url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    await context.close()
