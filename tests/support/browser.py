"""Headless Chromium for page tests: Debian's /usr/bin/chromium driven by Playwright (the
Python package only; Playwright never downloads a browser of its own here).

    browser = await launch(playwright)       # inside `async with async_playwright() as playwright`
    page = await browser.new_page()
    ...
    await save_screenshot(page, "dashboard-province")

`ensure_chromium()` installs the Debian package when it is missing and we are root (as `make test`
and CI run), like ensure_kannel. Screenshots go to $SIPAS_TEST_ARTIFACTS/screenshots, by default
var/artifacts/screenshots under the project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from playwright.async_api import Browser, Page, Playwright

from config.settings import PROJECT_ROOT

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "artifacts_dir", "ensure_chromium", "launch", "save_screenshot"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _usable() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


@lru_cache(maxsize=1)
def ensure_chromium() -> Path | None:
    """Debian's chromium, installed with apt-get when missing and we are root; None otherwise."""
    if _usable():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]

    def run(cmd: list[str]) -> int:
        return subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        ).returncode

    if run(install) != 0:
        run(["apt-get", "update", "-q"])
        run(install)
    return CHROMIUM if _usable() else None


async def launch(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def artifacts_dir() -> Path:
    base = Path(os.environ.get("SIPAS_TEST_ARTIFACTS") or PROJECT_ROOT / "var" / "artifacts")
    path = base / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def save_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A PNG of what the browser shows now: the whole page, or only the window."""
    path = artifacts_dir() / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path
