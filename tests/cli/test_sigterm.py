"""Issue 35: SIGTERM during a write left the hidden staging folder; every command now ends through
its finally blocks, which remove what was being written."""

import signal
import subprocess
import sys
import time

SCRIPT = """
import time, sys
from ddpm_deploy import images
def slow(*args, **kwargs):
    print("writing", flush=True)
    time.sleep(60)
images.save_gif = slow
import ddpm_deploy.runtime.pipeline as pipeline
pipeline.save_gif = slow
from ddpm_deploy.cli import main
main(["sample", "-n", "2", "--out", sys.argv[1]])
"""


def test_sigterm_while_writing_leaves_nothing_half_written(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"  # inside publish: the staging folder exists
    assert any(p.name.startswith(".ddpm-deploy-run-") for p in out.iterdir())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    time.sleep(0.1)
    assert not out.exists()  # no staging folder, no half-written picture, no folder it made
