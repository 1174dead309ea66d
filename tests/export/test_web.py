"""`export-web`: the page runs the model's sampler graph in headless Chromium and draws the images
`ddpm-deploy sample` draws for the same seed and class.

The browser tests need Debian's chromium and chromium-driver, selenium (the dev extra) and
`npm ci --prefix web` (ONNX Runtime Web); they skip with the reason where one is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ddpm_deploy.export import web, web_browser

from ddpm_deploy.errors import UserError
from ddpm_deploy.files import sha256_file
from ddpm_deploy.onnx_model import read_card
from tests.helpers import REPO, run_cli

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow

SHIPPED = REPO / "ddpm_deploy" / "models" / "fashion_mnist.onnx"


def ort_web_or_skip() -> Path:
    try:
        return web.find_ort_web()
    except UserError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def browser():
    reason = web_browser.missing()
    if reason:
        pytest.skip(reason)
    ort_web_or_skip()
    with web_browser.chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    """The shipped model's page, served with COOP/COEP (threads)."""
    out = tmp_path_factory.mktemp("web") / "site"
    web.export_web("fashion_mnist", out)
    with web_browser.served(out) as url:
        yield out, url, browser


def cli_images(tmp_path: Path, *args) -> np.ndarray:
    """`ddpm-deploy sample ARGS --save npz`'s uint8 images, channels last."""
    out = tmp_path / f"cli{len(list(tmp_path.glob('cli*')))}"
    result = run_cli("sample", *args, "--out", out, "--save", "npz")
    assert result.exit_code == 0, result.output
    return np.load(out / "samples.npz")["images"]


def assert_same_images(page: dict, expected: np.ndarray) -> None:
    """The page's uint8 images are `sample`'s within one grey level. The page's graph takes its
    analytic steps in float32 (WebGPU has no float64; numpy computes them in float64): measured
    99.68% of pixels equal on the shipped model, where ONNX Runtime's float64 graph gives 99.98%."""
    assert page["title"] == "done", page
    got = np.array(page["result"]["images"], np.int16).reshape(len(expected), -1)
    levels = np.abs(got - expected.reshape(len(expected), -1))
    print(f"{(levels == 0).mean():.4%} of pixels equal, at most {levels.max()} level(s) apart")
    assert (levels == 0).mean() >= 0.995 and levels.max() <= 1


def test_page_draws_the_images_sample_draws(site, tmp_path):
    """Random classes, the model's own sampler (3 analytic steps + 4 calls), seed 4."""
    folder, url, driver = site
    page = web_browser.run_page(driver, f"{url}?n=6&seed=4")
    assert_same_images(page, cli_images(tmp_path, "-n", "6", "--seed", "4"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "sampler.onnx" and not (folder / "samplers.js").exists()
    # cross-origin isolated: as many threads as the CPU has, up to 4 (one where it is not)
    assert page["result"]["threads"] == min(4, os.cpu_count() or 1)
    assert page["result"]["ep"] == "wasm" and "4 network calls" in page["status"]


@pytest.mark.parametrize("choice", ["sneaker", "none"])
def test_page_class_choice_is_sample_s(site, tmp_path, choice):
    folder, url, driver = site
    page = web_browser.run_page(driver, f"{url}?n=3&seed=2&class={choice}")
    assert_same_images(page, cli_images(tmp_path, "-n", "3", "--seed", "2", "--class", choice))


def test_page_with_another_sampler_and_guidance(tmp_path, browser):
    """export-web's sampler options build the page's graph: DDIM, 6 steps, guidance 2."""
    out = tmp_path / "site"
    options = ["--sampler", "ddim", "--steps", "6", "--guidance", "2"]
    result = run_cli("export-web", "-o", out, *options)
    assert result.exit_code == 0, result.output
    with web_browser.served(out) as url:
        page = web_browser.run_page(browser, f"{url}?n=3&seed=7&class=3")
    assert "ddim, 6 steps" in page["status"] and "guidance 2" in page["status"]
    expected = cli_images(tmp_path, "-n", "3", "--seed", "7", "--class", "3", *options)
    assert_same_images(page, expected)


def test_rgb_32px_page_is_sample_s(tmp_path, browser):
    """The emoji model (3 x 32 x 32, no analytic steps), from a file `export-sampler` wrote, on a
    page that is not cross-origin isolated (one thread)."""
    sampler = tmp_path / "emoji_sampler.onnx"
    assert run_cli("export-sampler", "emoji", "-o", sampler).exit_code == 0
    out = tmp_path / "site"
    web.export_web(str(sampler), out)
    with web_browser.served(out, isolated=False) as url:
        page = web_browser.run_page(browser, f"{url}?n=2&seed=1&class=2")
    result = page["result"]
    assert (result["channels"], result["height"], result["width"]) == (3, 32, 32)
    assert result["threads"] == 1
    assert_same_images(
        page, cli_images(tmp_path, "--model", "emoji", "-n", "2", "--seed", "1", "--class", "2")
    )


def with_card(src: Path, dst: Path, **fields) -> Path:
    """A copy of an ONNX file whose card has ``fields`` added (None: the card removed)."""
    import onnx

    from ddpm_deploy.card import CARD_KEY

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    if fields.get("card") is not False:
        card = json.loads(props[CARD_KEY])
        card.update({k: v for k, v in fields.items() if k != "card"})
        props[CARD_KEY] = json.dumps(card)
    else:
        props.pop(CARD_KEY)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(dst))
    return dst


@pytest.mark.parametrize(
    "query, message",
    [
        ("?class=10", "class 10 is out of range: this model has classes 0..9"),
        ("?class=hat", 'unknown class "hat"'),
        ("?n=0", "n (the number of images) must be a whole number between 1 and 64, got 0"),
        ("?n=65", "between 1 and 64, got 65"),
        # query values are decimal integers only
        ("?n=1e1", "must be a whole number between 1 and 64, got 1e1"),
        ("?seed=0x10", "seed must be a whole number between 0 and 9007199254740991, got 0x10"),
        ("?n=%2B7", "between 1 and 64, got +7"),
        ("?threads=0", "threads must be a whole number between 1 and 64, got 0"),
    ],
)
def test_bad_input_is_one_message_and_no_images(site, query, message):
    folder, url, driver = site
    page = web_browser.run_page(driver, url + query)
    assert page["title"] == "error" and page["result"] is None and not page["grid_visible"]
    assert message in page["error"] and "\n" not in page["error"]


def test_the_page_fetches_nothing_off_its_origin(site):
    """The Content-Security-Policy (serve.py's header and index.html's meta tag) blocks a fetch to
    another origin even from script on the page, and serve.py sends it."""
    import urllib.request

    folder, url, driver = site
    web_browser.run_page(driver, url + "?n=1")
    # a refused connection fails too: the policy's own violation event tells them apart
    violated = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; let v = null;"
        "document.addEventListener('securitypolicyviolation', (e) => { v = e.effectiveDirective; });"
        "fetch('http://127.0.0.1:9/x.bin').catch(() => {}).finally(() => setTimeout(() => done(v), 200));"
    )
    assert violated == "connect-src", violated
    with urllib.request.urlopen(url) as response:
        assert "connect-src 'self'" in response.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in (folder / "index.html").read_text()


def test_missing_model_file_is_one_message(tmp_path, browser):
    out = tmp_path / "site"
    web.export_web("fashion_mnist", out)
    (out / "sampler.onnx").unlink()
    with web_browser.served(out) as url:
        page = web_browser.run_page(browser, url + "?n=1")
    assert page["title"] == "error" and page["result"] is None and not page["grid_visible"]
    assert page["error"] == "cannot load the sampler file sampler.onnx: HTTP 404 File not found"


def test_page_screenshot(site, tmp_path):
    """The page after a small run: the grid is drawn and the screenshot is a real picture."""
    import imageio.v3 as iio

    folder, url, driver = site
    page = web_browser.run_page(driver, f"{url}?n=4&seed=1")
    assert page["title"] == "done" and page["grid_visible"]
    assert "4 images in" in page["status"] and "images/s" in page["status"]
    driver.save_screenshot(str(tmp_path / "page.png"))
    picture = iio.imread(tmp_path / "page.png")
    assert picture.shape[0] > 400 and picture.std() > 10


# export-web's own checks: one line each, before anything is written


def test_export_web_refuses_a_model_without_a_card(tmp_path):
    model = with_card(SHIPPED, tmp_path / "nocard.onnx", card=False)
    with pytest.raises(UserError, match="lacks model metadata") as e:
        web.export_web(str(model), tmp_path / "site")
    assert "\n" not in str(e.value) and not (tmp_path / "site").exists()


def test_export_web_refuses_a_non_empty_folder_without_force(tmp_path):
    ort_web_or_skip()
    out = tmp_path / "site"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="exists and is not empty.*--force") as e:
        web.export_web("fashion_mnist", out)
    assert "\n" not in str(e.value) and sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    record = web.export_web("fashion_mnist", out, force=True)
    assert (out / "mine.txt").read_text() == "keep"
    assert set(record["files"]) <= {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    card = json.loads((out / "card.json").read_text())
    assert card["sampler_graph"]["timesteps"] == read_card(SHIPPED)["sampler"]["timesteps"]
    assert not list(out.glob(".ddpm-deploy-run-*"))


def test_export_web_names_npm_ci_when_ort_web_is_absent(tmp_path):
    with pytest.raises(UserError, match="npm ci --prefix web") as e:
        web.export_web("fashion_mnist", tmp_path / "site", node_modules=tmp_path / "none")
    assert "\n" not in str(e.value) and not (tmp_path / "site").exists()


def test_export_web_refuses_a_sampler_file_it_cannot_feed(tmp_path):
    ort_web_or_skip()
    noise = tmp_path / "noise.onnx"
    assert run_cli("export-sampler", "-o", noise, "--noise", "input").exit_code == 0
    with pytest.raises(UserError, match="the page feeds seeds"):
        web.export_web(str(noise), tmp_path / "site")
    seeded = tmp_path / "seeded.onnx"
    assert run_cli("export-sampler", "-o", seeded).exit_code == 0
    with pytest.raises(UserError, match="holds its whole sampler already"):
        web.export_web(str(seeded), tmp_path / "site", guidance=2.0)
    assert not (tmp_path / "site").exists()


def test_webgpu_without_an_adapter_falls_back_to_wasm_with_a_note(tmp_path, browser):
    out = tmp_path / "site"
    web.export_web("fashion_mnist", out, webgpu=True)
    assert (out / "ort" / "ort-wasm-simd-threaded.asyncify.wasm").is_file()
    with web_browser.served(out) as url:
        page = web_browser.run_page(browser, url + "?n=1&ep=webgpu")
    assert page["title"] == "done" and page["result"]["ep"] == "wasm"
    assert "no usable WebGPU: running on WebAssembly" in page["note"]


def test_webgpu_without_its_files_falls_back_with_a_note(site):
    folder, url, driver = site
    page = web_browser.run_page(driver, url + "?n=1&ep=webgpu")
    assert page["title"] == "done" and page["result"]["ep"] == "wasm"
    assert "export-web --webgpu" in page["note"]


def test_webgpu_on_swiftshader_draws_sample_s_images(tmp_path, browser):
    """The WebGPU execution provider, on Chromium's software Vulkan (no GPU here): same images."""
    out = tmp_path / "site"
    web.export_web("fashion_mnist", out, webgpu=True)
    with web_browser.served(out) as url, web_browser.chromium(software_webgpu=True) as driver:
        page = web_browser.run_page(driver, f"{url}?n=2&seed=3&class=5&ep=webgpu")
    if page["title"] == "done" and page["result"]["ep"] != "webgpu":
        pytest.skip(f"no software WebGPU adapter in this Chromium: {page['note']}")
    assert page["result"]["ep"] == "webgpu" and page["note"] is None
    assert_same_images(page, cli_images(tmp_path, "-n", "2", "--seed", "3", "--class", "5"))


# the command: thin, one line for bad input


def test_cli_export_web_writes_the_folder(tmp_path):
    ort_web_or_skip()
    result = run_cli("export-web", "--model", "fashion_mnist", "-o", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert "serve.py" in result.output and (tmp_path / "site" / "index.html").is_file()
    config = json.loads((tmp_path / "site" / "config.json").read_text())
    assert config["model_name"] == "fashion_mnist.onnx"  # the page's footer names it
    assert config["model_sha256"] == sha256_file(tmp_path / "site" / "sampler.onnx")


def test_cli_export_web_bad_input_is_one_line(tmp_path):
    from tests.helpers import assert_one_line_error

    model = with_card(SHIPPED, tmp_path / "nocard.onnx", card=False)
    result = run_cli("export-web", "--model", model, "-o", tmp_path / "a")
    assert_one_line_error(result, "lacks model metadata")
    ort_web_or_skip()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    result = run_cli("export-web", "-o", tmp_path / "b")
    assert_one_line_error(result, "exists and is not empty", "--force")
    result = run_cli("export-web", "-o", tmp_path / "c", "--node-modules", tmp_path / "none")
    assert_one_line_error(result, "npm ci --prefix web")


def test_export_web_never_imports_torch(tmp_path):
    """From a model it builds the sampler graph (onnx, no torch); from a sampler file it needs
    onnxruntime alone."""
    ort_web_or_skip()
    sampler = tmp_path / "sampler.onnx"
    assert run_cli("export-sampler", "-o", sampler).exit_code == 0
    for model, heavy in (("fashion_mnist", "['onnx']"), (str(sampler), "[]")):
        site = tmp_path / f"site{heavy}"
        script = (
            "import sys; sys.modules['torch'] = None\n"
            "from ddpm_deploy.cli import main\n"
            f"main(['export-web', '--model', {model!r}, '-o', {str(site)!r}], standalone_mode=False)\n"
            "print('heavy:', sorted(m for m in ('torchvision', 'onnx', 'safetensors') if m in sys.modules))\n"
        )
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"heavy: {heavy}" in proc.stdout and (site / "index.html").is_file()
