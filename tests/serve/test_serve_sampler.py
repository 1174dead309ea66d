"""`triton-repo` on a sampler file (export-sampler): ddpm_sampler, the whole sampler as one model on
Triton's ONNX Runtime backend; a request is rows of (seed, index[, y]) and gets (x0, image).

nvidia-pytriton's tritonserver ships only the Python backend, so the ONNX Runtime backend test runs
where a full Triton is installed (the NGC container's /opt/tritonserver, or $DDPM_DEPLOY_TRITONSERVER
naming its bin/tritonserver) and skips elsewhere. Here the configuration is parsed with Triton's own
ModelConfig protobuf, and loaded and served by pytriton's real tritonserver with only the platform
swapped for a Python-backend model that runs the same file on onnxruntime as the ONNX Runtime
backend does (every request of a dynamic batch concatenated into one run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ddpm_deploy.serve.load import free_ports

from tests.helpers import assert_one_line_error, run_cli
from tests.serve.test_serve import parse

REQUESTS = [(3, [0, 1, 2, 3], [-1, -1, 4, 10]), (8, [2, 3, 4, 5], [-1, -1, -1, 0])]  # seed, i, y


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The default model's sampler file, its repository, and `sample`'s images of seeds 3 and 8."""
    root = tmp_path_factory.mktemp("sampler_repo")
    result = run_cli("export-sampler", "-o", root / "sampler.onnx")
    assert result.exit_code == 0, result.output
    result = run_cli("triton-repo", root / "sampler.onnx", "-o", root / "repo", "--kind", "cpu",
                     "--queue-delay-us", "1000000")  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


def expected_images(root: Path, seed: int, indices: list[int], classes: list[int]) -> np.ndarray:
    """What `sample --model sampler.onnx --seed SEED` draws for these images: the same file on
    onnxruntime, fed by the runtime (tests/export/test_sampler_targets.py: equal to `sample`)."""
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.graph_feeds import graph_feeds

    sampler = load_denoiser("ort", root / "sampler.onnx")
    feeds = graph_feeds(sampler, seed, 0, len(indices), np.array(classes))
    feeds["index"] = np.array(indices, np.int64)
    return sampler.session.run(["image"], feeds)[0]


def test_a_sampler_file_becomes_one_ddpm_sampler_model(files):
    from tritonclient.grpc import model_config_pb2 as pb

    assert [p.name for p in (files / "repo").iterdir()] == ["ddpm_sampler"]
    config = parse(files / "repo" / "ddpm_sampler" / "config.pbtxt")
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds == 1_000_000
    inputs = {i.name: (i.data_type, list(i.dims), list(i.reshape.shape)) for i in config.input}
    scalar = (pb.TYPE_INT64, [1], [])  # one seed per row: the file's seed int64[S] gets S = N
    assert inputs == {"seed": scalar, "index": scalar, "y": scalar}
    outputs = {o.name: (o.data_type, list(o.dims)) for o in config.output}
    assert outputs == {"x0": (pb.TYPE_FP32, [1, 28, 28]), "image": (pb.TYPE_UINT8, [28, 28, 1])}
    assert "sampler_graph" in config.parameters["ddpm_deploy.card"].string_value
    model = files / "repo" / "ddpm_sampler" / "1" / "model.onnx"
    assert model.read_bytes() == (files / "sampler.onnx").read_bytes()


def test_rows_of_several_seeds_in_one_run_equal_each_seed_alone(files):
    """What Triton's dynamic batcher hands the file: the rows of several requests, seed per row."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(files / "sampler.onnx"), providers=["CPUExecutionProvider"])
    merged = {"seed": [], "index": [], "y": []}
    for seed, indices, classes in REQUESTS:
        merged["seed"] += [seed] * len(indices)
        merged["index"] += indices
        merged["y"] += classes
    got = session.run(["image"], {k: np.array(v, np.int64) for k, v in merged.items()})[0]
    want = [expected_images(files, *request) for request in REQUESTS]
    np.testing.assert_array_equal(got, np.concatenate(want))


def test_a_noise_input_sampler_file_takes_x_t_per_row(tmp_path):
    result = run_cli("export-sampler", "--noise", "input", "-o", tmp_path / "s.onnx")
    assert result.exit_code == 0, result.output
    assert run_cli("triton-repo", tmp_path / "s.onnx", "-o", tmp_path / "r").exit_code == 0
    config = parse(tmp_path / "r" / "ddpm_sampler" / "config.pbtxt")
    assert [(i.name, list(i.dims)) for i in config.input] == [("noise", [1, 28, 28]), ("y", [1])]


@pytest.mark.parametrize("args", [["--engine", "x.engine"], ["--trt-accelerator"]])
def test_a_sampler_file_refuses_denoiser_options(files, tmp_path, args):
    (tmp_path / "x.engine").write_bytes(b"x")
    args = [str(tmp_path / a) if a.endswith(".engine") else a for a in args]
    result = run_cli("triton-repo", files / "sampler.onnx", "-o", tmp_path / "r", *args)
    assert_one_line_error(result, "is a sampler file", "served whole on the ONNX Runtime backend")
    assert not (tmp_path / "r").exists()


# --- a real tritonserver ---------------------------------------------------------------------

# The Python-backend stand-in for the ONNX Runtime backend: one onnxruntime run per dynamic batch.
STAND_IN = """import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb
from pathlib import Path

class TritonPythonModel:
    def initialize(self, args):
        path = str(Path(__file__).parent / "model.onnx")
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        rows = [len(pb.get_input_tensor_by_name(r, "index").as_numpy()) for r in requests]
        feeds = {i.name: np.concatenate([pb.get_input_tensor_by_name(r, i.name).as_numpy()
                                         for r in requests]).reshape(sum(rows), *i.shape[1:])
                 for i in self.session.get_inputs()}
        outs = self.session.run(["x0", "image"], feeds)
        cut = np.cumsum(rows)[:-1]
        return [pb.InferenceResponse([pb.Tensor("x0", x0), pb.Tensor("image", image)])
                for x0, image in zip(np.split(outs[0], cut), np.split(outs[1], cut))]
"""


def full_triton() -> Path | None:
    """A tritonserver beside an onnxruntime backend: $DDPM_DEPLOY_TRITONSERVER, the NGC
    container's, or (should a later wheel carry one) nvidia-pytriton's."""
    candidates = [os.environ.get("DDPM_DEPLOY_TRITONSERVER"), "/opt/tritonserver/bin/tritonserver"]
    try:
        from ddpm_deploy.hardware.triton_dist import triton_dist

        candidates.append(str(triton_dist() / "bin" / "tritonserver"))
    except Exception:  # noqa: BLE001 - no pytriton: only the other candidates
        pass
    for binary in filter(None, candidates):
        path = Path(binary)
        if path.is_file() and (path.parent.parent / "backends" / "onnxruntime").is_dir():
            return path
    return None


class Triton:
    def __init__(self, binary: Path, repo: Path, backends: Path, env: dict, log: Path):
        from ddpm_deploy.serve.server import is_ready

        http, grpc, metrics = free_ports(3)
        self.url, self.log = f"127.0.0.1:{http}", log
        cmd = [str(binary), f"--model-repository={repo}", f"--backend-directory={backends}",
               f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}",
               "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--allow-gpu-metrics=false",
               "--disable-auto-complete-config", "--strict-readiness=true", f"--log-file={log}"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        deadline = time.monotonic() + 180
        while not is_ready(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("tritonserver did not get ready:\n" + log.read_text()[-3000:])
            time.sleep(0.5)

    def stop(self):
        """SIGTERM (a drain), then SIGKILL for whatever is left in the server's process group
        (Python backend stubs can outlive it)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def ask(url: str, seed: int, indices: list[int], classes: list[int]) -> np.ndarray:
    import tritonclient.http as http

    client = http.InferenceServerClient(url, network_timeout=300, connection_timeout=300)
    inputs = []
    for name, column in [("seed", [seed] * len(indices)), ("index", indices), ("y", classes)]:
        tensor = http.InferInput(name, [len(indices), 1], "INT64")
        tensor.set_data_from_numpy(np.array(column, np.int64).reshape(-1, 1))
        inputs.append(tensor)
    return client.infer("ddpm_sampler", inputs).as_numpy("image")


def served_equal_local(files: Path, url: str, exact: bool) -> None:
    """Two requests of other seeds sent together, merged in one batch (1 s queue delay): each gets
    the images `sample` draws for its seed; byte for byte from this onnxruntime, else (another
    ONNX Runtime build, whose fusions may differ) >= 99.9% of pixels equal, none one level off."""
    import tritonclient.http as http

    got = {}
    threads = [
        threading.Thread(target=lambda r=r: got.__setitem__(r[0], ask(url, *r))) for r in REQUESTS
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, indices, classes in REQUESTS:
        want = expected_images(files, seed, indices, classes)
        levels = np.abs(got[seed].astype(int) - want)
        ok = levels.max() == 0 if exact else (levels == 0).mean() >= 0.999 and levels.max() <= 1
        assert ok, (seed, (levels == 0).mean(), levels.max())
    stats = http.InferenceServerClient(url).get_inference_statistics("ddpm_sampler")
    (model,) = stats["model_stats"]
    assert (model["inference_count"], model["execution_count"]) == (8, 1), model


@pytest.mark.slow
def test_served_on_the_onnx_runtime_backend(files, tmp_path):
    binary = full_triton()
    if binary is None:
        pytest.skip(
            "no tritonserver with the onnxruntime backend here (nvidia-pytriton's has only the "
            "Python backend): run in the Triton container or set DDPM_DEPLOY_TRITONSERVER"
        )
    backends = binary.parent.parent / "backends"
    server = Triton(binary, files / "repo", backends, dict(os.environ), tmp_path / "triton.log")
    try:
        served_equal_local(files, server.url, exact=False)
    finally:
        server.stop()


@pytest.mark.slow
def test_the_config_loads_in_tritonserver_with_a_python_stand_in(files, tmp_path):
    from ddpm_deploy.hardware.triton_dist import libpython_dir, triton_dist
    from ddpm_deploy.serve.server import prepare_backends, server_env

    from ddpm_deploy.errors import UserError

    try:
        dist = triton_dist()
        libpython_dir()
    except UserError as e:
        pytest.skip(str(e))
    repo = tmp_path / "repo"
    shutil.copytree(files / "repo", repo)
    config = repo / "ddpm_sampler" / "config.pbtxt"
    text = config.read_text()
    assert 'platform: "onnxruntime_onnx"' in text
    config.write_text(text.replace('platform: "onnxruntime_onnx"', 'backend: "python"'))
    (repo / "ddpm_sampler" / "1" / "model.py").write_text(STAND_IN)
    backends = prepare_backends(dist, tmp_path / "work")
    server = Triton(dist / "bin" / "tritonserver", repo, backends, server_env(dist),
                    tmp_path / "triton.log")  # fmt: skip
    try:
        served_equal_local(files, server.url, exact=True)
    finally:
        server.stop()
