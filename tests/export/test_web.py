"""`export-web`: the page's samplers in headless Chromium equal the numpy runtime on the same x_T.

The browser tests need Debian's chromium and chromium-driver, selenium (the dev extra) and
`npm ci --prefix web` (ONNX Runtime Web); they skip with the reason where one is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ddpm_deploy.export import web, web_browser
from ddpm_deploy.runtime.guidance import Guided
from ddpm_deploy.runtime.samplers import ddim_step, sample
from ddpm_deploy.runtime.timesteps import timesteps_for

from ddpm_deploy.errors import UserError
from ddpm_deploy.images import to_uint8
from ddpm_deploy.onnx_model import read_card
from tests.helpers import REPO

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow

SHIPPED = REPO / "ddpm_deploy" / "models" / "fashion_mnist.onnx"
TOL = 1e-3  # max |difference| of the float samples, browser against numpy


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


class FixedNoise:
    """x_T given: a deterministic sampler draws nothing else."""

    def __init__(self, x: np.ndarray):
        self.x, self.draws = x, 0

    def standard_normal(self, shape, dtype=np.float32):
        self.draws += 1
        assert self.draws == 1 and tuple(shape) == self.x.shape
        return self.x.astype(dtype)


def numpy_samples(model: Path, xT, labels, guidance, **kwargs) -> np.ndarray:
    from ddpm_deploy.runtime.backends import load_denoiser

    denoiser = load_denoiser("ort", model)
    guided = Guided(denoiser, None if labels is None else np.asarray(labels, np.int64), guidance)
    return sample(guided, denoiser.schedule, len(xT), FixedNoise(xT), shape=xT.shape[1:], **kwargs)


def write_xt(folder: Path, name: str, shape, seed: int) -> np.ndarray:
    xT = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    (folder / name).write_bytes(xT.astype("<f4").tobytes())
    return xT


def compare(page: dict, expected: np.ndarray) -> float:
    """Max |difference| of the float samples; also the uint8 pixels (channels last) within 1 level."""
    assert page["title"] == "done", page
    result = page["result"]
    got = np.array(result["samples"], np.float32).reshape(expected.shape)
    diff = float(np.abs(got - expected).max())
    pixels = np.array(result["images"], np.int16)
    want = to_uint8(expected).transpose(0, 2, 3, 1).reshape(len(expected), -1).astype(np.int16)
    assert pixels.shape == want.shape
    assert np.abs(pixels - want).max() <= 1
    return diff


def test_the_page_runs_registered_samplers_only():
    """samplers.js's SAMPLERS is export/web.py's PAGE_SAMPLERS, a subset of the runtime's registry."""
    import re

    from ddpm_deploy.runtime.samplers import SAMPLERS

    js = (web.template_dir() / "samplers.js").read_text()
    listed = re.search(r"export const SAMPLERS = \[([^\]]*)\]", js).group(1)
    assert [name.strip().strip('"') for name in listed.split(",")] == list(web.PAGE_SAMPLERS)
    assert set(web.PAGE_SAMPLERS) <= set(SAMPLERS)


def test_page_timesteps_are_the_runtime_s():
    """samplers.js timestepsFor(T, s) is runtime/samplers.py timesteps_for(T, s) for every s."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = (
        f"import {{ timestepsFor }} from {json.dumps((web.template_dir() / 'samplers.js').as_uri())};"
        "const out = {}; for (const T of [1000, 50]) for (let s = 1; s <= T; s++)"
        " out[`${T}/${s}`] = timestepsFor(T, s); console.log(JSON.stringify(out));"
    )
    proc = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for key, ts in got.items():
        T, s = map(int, key.split("/"))
        assert ts == timesteps_for(T, s).tolist(), key


@pytest.mark.slow
def test_page_equals_numpy_ddim_with_guidance(site):
    folder, url, driver = site
    xT = write_xt(folder, "xt_ddim.bin", (3, 1, 28, 28), seed=5)
    page = web_browser.run_page(
        driver, f"{url}?n=3&seed=4&sampler=ddim&steps=10&guidance=2&xt=xt_ddim.bin"
    )
    labels = page["result"]["labels"]
    assert len(labels) == 3 and all(0 <= y < 10 for y in labels)
    expected = numpy_samples(SHIPPED, xT, labels, 2.0, sampler="ddim", steps=10)
    diff = compare(page, expected)
    print(f"ddim 10 steps, guidance 2, max |diff| = {diff:.2e}")
    assert diff <= TOL


@pytest.mark.slow
def test_page_default_sampler_equals_numpy(site):
    """The page's defaults are the runtime's for this model (its own sampler spec when its card has
    one, else the runtime's default sampler, steps and spacing; the default guidance) and match it."""
    from ddpm_deploy.runtime.guidance import DEFAULT_GUIDANCE
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings

    folder, url, driver = site
    config = json.loads((folder / "config.json").read_text())
    d = config["defaults"]
    own = SamplerSettings().for_model(read_card(SHIPPED))
    assert (d["sampler"], d["steps"], d["guidance"], d["analytic"]) == (
        own.sampler, own.steps, DEFAULT_GUIDANCE, own.analytic,
    )  # fmt: skip
    xT = write_xt(folder, "xt_dpm.bin", (2, 1, 28, 28), seed=6)
    page = web_browser.run_page(driver, f"{url}?n=2&class=sneaker&xt=xt_dpm.bin")
    assert page["result"]["labels"] == [7, 7] and page["result"]["guidance"] == DEFAULT_GUIDANCE
    # cross-origin isolated: as many threads as the CPU has, up to 4 (one where it is not)
    assert page["result"]["threads"] == min(4, os.cpu_count() or 1)
    assert page["result"]["ep"] == "wasm"
    expected = numpy_samples(SHIPPED, xT, [7, 7], DEFAULT_GUIDANCE, **own.sampler_kwargs())
    diff = compare(page, expected)
    print(f"the model's defaults ({own.sampler}, t = {d['timesteps']}), max |diff| = {diff:.2e}")
    assert diff <= TOL


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


@pytest.mark.slow
def test_distilled_card_sampler_runs_its_own_timesteps(tmp_path, browser):
    """A card that names its sampler (a distilled model) gets exactly it: DDIM over its timesteps,
    the last step to alpha_bar = 1, at its guidance (1: one plain call)."""
    own = {"sampler": "ddim", "timesteps": [999, 749, 499, 249], "clip": True, "guidance": 1.0}
    model = with_card(SHIPPED, tmp_path / "distilled.onnx", sampler=own)
    out = tmp_path / "site"
    record = web.export_web(str(model), out)
    assert record["defaults"]["timesteps"] == own["timesteps"]
    xT = write_xt(out, "xt.bin", (2, 1, 28, 28), seed=7)
    with web_browser.served(out) as url:
        page = web_browser.run_page(browser, f"{url}?n=2&class=3&xt=xt.bin")
    assert page["result"]["timesteps"] == own["timesteps"] and page["result"]["guidance"] == 1.0

    from ddpm_deploy.runtime.backends import load_denoiser

    denoiser = load_denoiser("ort", model)
    guided = Guided(denoiser, np.array([3, 3]), 1.0)
    x = xT.copy()
    ts = own["timesteps"] + [-1]
    for t, t_prev in zip(ts, ts[1:], strict=False):
        eps = guided(x, np.full(2, t, np.int64))
        x = ddim_step(x, eps, t, t_prev, denoiser.schedule, None, clip=True)
    diff = compare(page, x)
    print(f"card's ddim [999, 749, 499, 249], guidance 1, max |diff| = {diff:.2e}")
    assert diff <= TOL


@pytest.mark.slow
def test_learned_sampler_with_analytic_steps_matches_numpy(tmp_path, browser):
    """A learned spec (runtime/sampler_spec.py): two analytic steps from the card's Gaussian
    statistics (float16 directions decoded in JavaScript), then DPM-Solver++(2M) with a learned
    correction on every step, at guidance 2 (the statistics of each image's class) and with no
    class (those of all images): the page equals numpy on the same x_T."""
    from ddpm_deploy.runtime.gaussian import fit

    rng = np.random.default_rng(3)
    stats = fit(rng.uniform(-1, 1, (200, 1, 28, 28)), rng.integers(0, 10, 200), 10, rank=8)
    own = {"sampler": "dpm++2m", "timesteps": [999, 900, 700, 400, 120, 0], "clip": True,
           "analytic": 2, "mix": [0.0, 0.1, -0.05, 0.2, 0.1, 0.3], "guidance": 2.0}  # fmt: skip
    model = with_card(SHIPPED, tmp_path / "learned.onnx", sampler=own, gaussian=stats.to_card())
    out = tmp_path / "site"
    record = web.export_web(str(model), out)
    assert record["defaults"]["analytic"] == 2 and record["defaults"]["mix"] == own["mix"]
    xT = write_xt(out, "xt.bin", (3, 1, 28, 28), seed=11)
    kwargs = {"sampler": "dpm++2m", "timesteps": own["timesteps"], "analytic": 2, "mix": own["mix"]}
    with web_browser.served(out) as url:
        for query, labels, w in (("class=5", [5, 5, 5], 2.0), ("class=none", None, 2.0)):
            page = web_browser.run_page(browser, f"{url}?n=3&{query}&xt=xt.bin")
            diff = compare(page, numpy_samples(model, xT, labels, w, **kwargs))
            print(f"learned spec, {query}: max |diff| = {diff:.2e}")
            assert diff <= TOL


def rgb_model(path: Path) -> tuple[Path, dict]:
    """A tiny class-conditional 3x32x32 "denoiser" (eps = tanh(a x + b t + c y), per channel) and
    a card for it: the page must not assume one channel or 28 pixels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, 3, 1, 1)).astype(np.float32), "a")
    b = numpy_helper.from_array(np.float32(1 / 500).reshape(1, 1, 1, 1), "b")
    c = numpy_helper.from_array(np.float32(0.05).reshape(1, 1, 1, 1), "c")
    shape4 = numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shape4")
    nodes = [
        helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["tf", "shape4"], ["t4"]),
        helper.make_node("Cast", ["y"], ["yf"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["yf", "shape4"], ["y4"]),
        helper.make_node("Mul", ["x", "a"], ["ax"]),
        helper.make_node("Mul", ["t4", "b"], ["bt"]),
        helper.make_node("Mul", ["y4", "c"], ["cy"]),
        helper.make_node("Add", ["ax", "bt"], ["s1"]),
        helper.make_node("Add", ["s1", "cy"], ["s2"]),
        helper.make_node("Tanh", ["s2"], ["eps"]),
    ]
    graph = helper.make_graph(
        nodes,
        "rgb",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32]),
            helper.make_tensor_value_info("t", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("y", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [a, b, c, shape4],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    card = json.loads(json.dumps(read_card(SHIPPED)))
    card.update(image={"shape": [3, 32, 32], "range": [-1.0, 1.0]}, dataset="cifar10")
    card["classes"] = [f"class {i}" for i in range(10)]
    return path, card


@pytest.mark.slow
def test_rgb_32px_page_equals_numpy(tmp_path, browser):
    import onnxruntime as ort

    from ddpm_deploy.card import card_schedule

    model, card = rgb_model(tmp_path / "rgb.onnx")
    out = tmp_path / "site"
    web.write_site(out, model, card, ort_web_or_skip())
    xT = write_xt(out, "xt.bin", (2, 3, 32, 32), seed=8)
    with web_browser.served(out, isolated=False) as url:
        page = web_browser.run_page(
            browser, f"{url}?n=2&class=2&sampler=ddim&steps=5&guidance=2&xt=xt.bin"
        )
    result = page["result"]
    assert (result["channels"], result["height"], result["width"]) == (3, 32, 32)
    assert result["threads"] == 1  # not cross-origin isolated: one thread

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    class Tiny:
        def __init__(self):
            self.card = card

        def __call__(self, x, t, y=None):
            y = np.full(len(x), 10, np.int64) if y is None else y
            return session.run(None, {"x": x, "t": t, "y": y})[0]

    guided = Guided(Tiny(), np.array([2, 2]), 2.0)
    expected = sample(guided, card_schedule(card), 2, FixedNoise(xT), sampler="ddim", steps=5,
                      shape=(3, 32, 32))  # fmt: skip
    diff = compare(page, expected)
    print(f"3x32x32 ddim 5 steps, guidance 2, max |diff| = {diff:.2e}")
    assert diff <= TOL


@pytest.mark.parametrize(
    "query, message",
    [
        ("?class=10&steps=1", "class 10 is out of range: this model has classes 0..9"),
        ("?class=hat&steps=1", 'unknown class "hat"'),
        ("?n=0&steps=1", "n (the number of images) must be a whole number between 1 and 64, got 0"),
        ("?n=65&steps=1", "between 1 and 64, got 65"),
        ("?n=2&steps=1&xt=nothing.bin", "cannot load x_T nothing.bin: HTTP 404"),
        # query values are decimal integers only, and x_T only a file beside the page
        ("?n=1e1&steps=1", "must be a whole number between 1 and 64, got 1e1"),
        ("?seed=0x10&steps=1", "seed must be a whole number between 0 and 4294967295, got 0x10"),
        ("?n=%2B7&steps=1", "between 1 and 64, got +7"),
        (
            "?n=2&steps=1&xt=http://127.0.0.1:8766/xt.bin",
            "xt must be the name of a file beside this page",
        ),  # fmt: skip
        (
            "?n=2&steps=1&xt=//evil.example/xt.bin",
            "xt must be the name of a file beside this page",
        ),  # fmt: skip
        ("?n=2&steps=1&xt=../xt.bin", "xt must be the name of a file beside this page"),
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
    web_browser.run_page(driver, url + "?n=1&steps=1")
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
    (out / "model.onnx").unlink()
    with web_browser.served(out) as url:
        page = web_browser.run_page(browser, url + "?n=1&steps=1")
    assert page["title"] == "error" and page["result"] is None and not page["grid_visible"]
    assert page["error"] == "cannot load the model model.onnx: HTTP 404 File not found"


def test_page_screenshot(site, tmp_path):
    """The page after a small run: the grid is drawn and the screenshot is a real picture."""
    import imageio.v3 as iio

    folder, url, driver = site
    page = web_browser.run_page(driver, f"{url}?n=4&steps=4&seed=1")
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
    assert json.loads((out / "card.json").read_text()) == read_card(SHIPPED)
    assert not list(out.glob(".ddpm-deploy-run-*"))


def test_export_web_names_npm_ci_when_ort_web_is_absent(tmp_path):
    with pytest.raises(UserError, match="npm ci --prefix web") as e:
        web.export_web("fashion_mnist", tmp_path / "site", node_modules=tmp_path / "none")
    assert "\n" not in str(e.value) and not (tmp_path / "site").exists()


def test_export_web_refuses_a_card_sampler_the_page_cannot_run(tmp_path):
    bad = {"sampler": "ddim", "timesteps": [249, 499], "guidance": 1.0}
    model = with_card(SHIPPED, tmp_path / "bad.onnx", sampler=bad)
    with pytest.raises(UserError, match="descending"):
        web.export_web(str(model), tmp_path / "site")


def test_webgpu_without_an_adapter_falls_back_to_wasm_with_a_note(tmp_path, browser):
    out = tmp_path / "site"
    web.export_web("fashion_mnist", out, webgpu=True)
    assert (out / "ort" / "ort-wasm-simd-threaded.asyncify.wasm").is_file()
    with web_browser.served(out) as url:
        page = web_browser.run_page(browser, url + "?n=1&steps=1&ep=webgpu")
    assert page["title"] == "done" and page["result"]["ep"] == "wasm"
    assert "no usable WebGPU: running on WebAssembly" in page["note"]


def test_webgpu_without_its_files_falls_back_with_a_note(site):
    folder, url, driver = site
    page = web_browser.run_page(driver, url + "?n=1&steps=1&ep=webgpu")
    assert page["title"] == "done" and page["result"]["ep"] == "wasm"
    assert "export-web --webgpu" in page["note"]


@pytest.mark.slow
def test_webgpu_on_swiftshader_equals_numpy(tmp_path, browser):
    """The WebGPU execution provider, on Chromium's software Vulkan (no GPU here): same images."""
    out = tmp_path / "site"
    web.export_web("fashion_mnist", out, webgpu=True)
    xT = write_xt(out, "xt.bin", (1, 1, 28, 28), seed=9)
    with web_browser.served(out) as url, web_browser.chromium(software_webgpu=True) as driver:
        page = web_browser.run_page(driver, f"{url}?n=1&class=5&sampler=ddim&steps=2&guidance=2&ep=webgpu&xt=xt.bin")  # fmt: skip
    if page["title"] == "done" and page["result"]["ep"] != "webgpu":
        pytest.skip(f"no software WebGPU adapter in this Chromium: {page['note']}")
    assert page["result"]["ep"] == "webgpu" and page["note"] is None
    expected = numpy_samples(SHIPPED, xT, [5], 2.0, sampler="ddim", steps=2)
    # WebGPU's kernels round differently (measured 3.9e-3 here): the other criterion,
    # the uint8 pixels within 1 level (compare() checks all of them), and the floats within 1e-2
    diff = compare(page, expected)
    print(f"webgpu (SwiftShader) ddim 2 steps, guidance 2, max |diff| = {diff:.2e}")
    assert diff <= 1e-2


# the command: thin, one line for bad input


def test_cli_export_web_writes_the_folder(tmp_path):
    from tests.helpers import run_cli

    ort_web_or_skip()
    result = run_cli("export-web", "--model", "fashion_mnist", "-o", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert "serve.py" in result.output and (tmp_path / "site" / "index.html").is_file()


def test_cli_export_web_bad_input_is_one_line(tmp_path):
    from tests.helpers import assert_one_line_error, run_cli

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
    ort_web_or_skip()
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from ddpm_deploy.cli import main\n"
        f"main(['export-web', '-o', {str(tmp_path / 'site')!r}], standalone_mode=False)\n"
        "print('heavy:', sorted(m for m in ('torchvision', 'onnx', 'safetensors') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "heavy: []" in proc.stdout and (tmp_path / "site" / "index.html").is_file()
