"""Browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium, installed by .ci/run with
apt-get; Playwright never downloads a browser). Without that browser these tests skip and say why.

Screenshots go to test-artifacts/screens/<name>.png (git ignores the folder; CI keeps it)."""

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "screens"


def _chromium_missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does), so no browser tests"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (make test installs requirements-dev.txt)"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = _chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def browser_context(browser):
    """A pt-BR browser in São Paulo's time zone, a kiosk-sized window."""
    context = browser.new_context(
        locale="pt-BR", timezone_id="America/Sao_Paulo", viewport={"width": 1080, "height": 1400}
    )
    context.set_default_timeout(15_000)
    yield context
    context.close()


def watch_errors(page) -> list[str]:
    """Records the page's script errors and console errors in `page.js_errors` (also answered)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.js_errors = errors
    return errors


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    watch_errors(page)
    yield page


def screenshot(page, name: str) -> Path:
    """Saves the page as test-artifacts/screens/<name>.png and answers the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
