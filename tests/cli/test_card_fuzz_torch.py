"""Generated card mutations through the commands that read a training checkpoint (issue 35, item 5).

The checkpoint twin of test_card_fuzz.py, whose strategy, worker and checks it shares: the card
of a tiny checkpoint (a ResUNet of 18k parameters saved once per session by the project's own
``save_checkpoint``) is edited the same way and written back into the file's safetensors metadata,
and `distill`, `export` and `export-diffusers` run on it in one worker under an address-space cap.
Each run succeeds or exits 1 with one `Error:` line; nothing a refusal wrote is left behind.

`serve` is in neither module: it reads the card through ``ModelChoice.open``, as `sample`, `bench`
and `evaluate` do, and a card that passes starts tritonserver, which serves until a signal; no
option ends it after the card is read, so a run would start a server per card.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpm_deploy.card import make_card
from ddpm_deploy.schedule import Schedule
from tests.cli.test_card_fuzz import BASES, mutated_card, problems, run_jobs

# exports and distils: outside the quick loop (`pytest -m "not slow"`), in every full run
pytestmark = pytest.mark.slow

# The commands import torch, which alone maps 3.2 GB of address space (its CPU kernels and
# libraries, 0.5 GB resident): over test_card_fuzz.py's 3 GB cap before any card is read. An
# `export` maps 4.3 GB at its peak and holds 0.95 GB resident, so these are the caps here; an
# edit asking for what a 1e12 side or width needs is still far past either.
TORCH_CAP = 6 * 1024**3
TORCH_PEAK_RSS = 2 * 1024**3
TORCH_COMMANDS = {
    # an empty --data-root: a card that passes ends at the data's Gaussian statistics (the default
    # --analytic 3), after the teacher is built from the card and before its export or any training
    "distill": ["distill", "{model}", "-o", "{out}", "--data-root", "{empty}", "--threads", "1"],
    # a card that passes is exported (~6 s: torch.onnx's dynamo exporter), the parity unchecked
    "export": ["export", "{model}", "-o", "{out}.onnx", "--no-verify"],
    # a card that passes writes the folder, its eps checked against the checkpoint's
    "export-diffusers": ["export-diffusers", "{model}", "{out}"],
}
# a ResUNet of base 8 at one width (1x28x28, 10 classes), quick to save, build and export
ARCH = {
    "name": "resunet", "base": 8, "mults": [1, 1, 1], "blocks": 1, "attention": True, "groups": 4,
    "dropout": 0.0, "num_classes": 10, "embedding": "sinusoidal-standard", "channels": 1,
    "image_size": 28,
}  # fmt: skip


def checkpoint_bases() -> dict[str, dict]:
    """'plain': the card `train` writes; 'rich': the shipped mnist card on the tiny architecture
    (EMA weights, its own sampler, Gaussian statistics, a learned sampler's record)."""
    training = {"epochs": 1, "batch_size": 8, "lr": 0.001, "seed": 0, "best_loss": 0.5}
    plain = make_card(arch=ARCH, schedule=Schedule(), dataset="mnist", training=training)
    return {"plain": plain, "rich": {**BASES["mnist"], "arch": ARCH}}


CHECKPOINT_BASES = checkpoint_bases()


@pytest.fixture(scope="module")
def base_files(tmp_path_factory) -> dict[str, bytes]:
    """Each base card saved with the same tiny weights (as 'model' and 'ema')."""
    torch = pytest.importorskip("torch")
    from ddpm_deploy.train.checkpoint import save_checkpoint
    from ddpm_deploy.train.resunet import ResUNet, ResUNetConfig

    torch.manual_seed(0)
    state = ResUNet(ResUNetConfig.from_dict(ARCH)).state_dict()
    folder = tmp_path_factory.mktemp("checkpoints")
    files = {}
    for name, card in CHECKPOINT_BASES.items():
        save_checkpoint(folder / f"{name}.safetensors", card, state, ema=state)
        files[name] = (folder / f"{name}.safetensors").read_bytes()
    return files


def with_card(data: bytes, text: str) -> bytes:
    """A safetensors file with its metadata's card replaced by ``text``: the header (its 8-byte
    length, then JSON) rewritten, the tensors' bytes unchanged."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"]["card"] = text
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)  # the tensors stay 8-byte aligned, as safetensors writes them
    return len(new).to_bytes(8, "little") + new + data[8 + size :]


def write_checkpoints(cards: list[tuple[str, str]], files: dict, folder: Path) -> list[Path]:
    out = []
    for i, (name, text) in enumerate(cards):
        path = folder / f"c{i}.safetensors"
        path.write_bytes(with_card(files[name], text))
        out.append(path)
    return out


def run(cards: list[tuple[str, str]], files: dict, folder: Path) -> list[dict]:
    models = write_checkpoints(cards, files, folder)
    return run_jobs(models, folder, TORCH_COMMANDS, TORCH_CAP, TORCH_PEAK_RSS)


# Each worker imports torch and warms torch.onnx's exporter (~15 s) once: fewer, larger examples
# than test_card_fuzz.py's (CARD_FUZZ_EXAMPLES scales both), of distinct cards (a repeat of a card
# that passes would pay for another export)
EXAMPLES = max(1, int(os.environ.get("CARD_FUZZ_EXAMPLES", "5")) // 2)


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(cards=st.lists(mutated_card(CHECKPOINT_BASES), min_size=16, max_size=16, unique=True))
def test_a_mutated_checkpoint_card_is_one_error_line_or_a_run(base_files, cards):
    with tempfile.TemporaryDirectory() as tmp:
        reports = run(cards, base_files, Path(tmp))
    failed = [
        f"{r['command']} on card {cards[r['model']][1][:300]}...: {', '.join(p)}"
        for r in reports
        if (p := problems(r))
    ]
    assert not failed, "\n".join(failed)


def test_the_checkpoint_worker_reaches_each_command_s_end(base_files, tmp_path):
    """The harness: unmutated, a plain checkpoint is exported both ways and distill ends at the
    (empty) data; the rich card's own sampler is refused by export-diffusers; T = 1e12 is one line
    from every command, and what the card says is read from the safetensors header."""
    huge = {**CHECKPOINT_BASES["plain"], "schedule": {"name": "linear", "T": 10**12}}
    cards = [(n, json.dumps(c)) for n, c in [*CHECKPOINT_BASES.items(), ("plain", huge)]]
    reports = run(cards, base_files, tmp_path)
    assert not [(r, p) for r in reports if (p := problems(r))]
    codes = {(r["model"], r["command"]): r["code"] for r in reports}
    assert codes == {
        (0, "distill"): 1, (0, "export"): 0, (0, "export-diffusers"): 0,
        (1, "distill"): 1, (1, "export"): 0, (1, "export-diffusers"): 1,
        (2, "distill"): 1, (2, "export"): 1, (2, "export-diffusers"): 1,
    }  # fmt: skip
    errors = {(r["model"], r["command"]): r["errors"][0] for r in reports if r["code"]}
    assert "IDX files" in errors[0, "distill"]
    assert "own few-step sampler" in errors[1, "export-diffusers"]
    assert all("schedule.T" in errors[2, c] for c in TORCH_COMMANDS)
