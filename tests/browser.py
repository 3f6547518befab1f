"""A real browser for the tests: Debian's headless Chromium, driven by Selenium
through Debian's chromedriver."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from selenium import webdriver


@contextlib.contextmanager
def chromium(*, width: int = 1200, height: int = 900) -> Iterator[Any]:
    """A headless Chromium window of ``width`` x ``height``; quit on leaving the block."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    arguments = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
    arguments += ["--no-first-run", f"--window-size={width},{height}"]
    for argument in arguments:
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
