"""Drive a page written by `export-web` in headless Chromium (selenium; the dev extra), for the tests
and benchmarks/web_bench.py. Debian's chromium and chromium-driver: nothing is downloaded."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("DDPM_DEPLOY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DDPM_DEPLOY_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing() -> str | None:
    """Why a browser check cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file() and shutil.which(path) is None:
            return f"{path} not found (apt-get install -y chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def serve_module(site: str | os.PathLike):
    """The serve.py that export-web wrote into ``site`` (one implementation of the server)."""
    spec = importlib.util.spec_from_file_location("ddpm_web_serve", Path(site) / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def served(site: str | os.PathLike, isolated: bool = True):
    """Serve ``site`` on 127.0.0.1 (COOP/COEP headers when ``isolated``); yields the base URL."""
    server, url = serve_module(site).start(site, isolated=isolated)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


# WebGPU without a GPU: Chromium's software Vulkan (SwiftShader) as the adapter; slow, for checks
SOFTWARE_WEBGPU = (
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--use-angle=swiftshader",
)


@contextmanager
def chromium(width: int = 900, height: int = 1000, software_webgpu: bool = False):
    """Headless Chromium; with ``software_webgpu`` it offers WebGPU on SwiftShader, else no GPU."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    gpu = SOFTWARE_WEBGPU if software_webgpu else ("--disable-gpu",)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        *gpu,
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


RESULT = """
const r = window.ddpmResult;
if (!r) return null;
return {images: r.images, width: r.width, height: r.height, channels: r.channels,
        seconds: r.seconds, samples: r.samples.map((a) => Array.from(a)), labels: r.labels,
        timesteps: r.timesteps, ep: r.ep, threads: r.threads, guidance: r.guidance};
"""


def run_page(driver, url: str | None, timeout: float = 300.0) -> dict:
    """Open ``url`` (None: press Generate again on the page already open, its session warm), wait
    until the page says done or error; returns what it shows and computed: {title, error, note,
    status, result (window.ddpmResult with samples as lists, or None), grid_visible}."""
    if url is None:
        driver.execute_script("document.title = 'running'; document.getElementById('go').click();")
    else:
        driver.get(url)
    end = time.monotonic() + timeout
    while driver.title not in ("done", "error"):
        if time.monotonic() > end:
            raise TimeoutError(f"{url}: the page did not finish in {timeout} s ({driver.title!r})")
        time.sleep(0.1)

    def text(element_id: str) -> str | None:
        element = driver.find_element("id", element_id)
        return element.text if element.is_displayed() else None

    return {
        "title": driver.title,
        "error": text("error"),
        "note": text("note"),
        "status": text("status"),
        "grid_visible": driver.find_element("id", "grid").is_displayed(),
        "result": driver.execute_script(RESULT),
    }
