"""Generated card mutations through every command that reads a model (issue 35, item 5).

Hypothesis edits a shipped model's card (a value replaced by another type, NaN or Infinity, a size
from 0 to 10^12, a key deleted or added), writes it into a copy of the ONNX file's metadata, and
runs `sample`, `triton-repo`, `learn-sampler`, `bench`, `export-web`, `evaluate`, `quantize` and
`export-sampler` on it in one worker process whose address space is capped (RLIMIT_AS). Each run
either succeeds or exits 1 with one `Error:` line: never a traceback, never another exit code,
never an output (or a hidden staging file) left behind by a refusal, and never more memory than
the cap (an allocation past it is a MemoryError: a traceback, a failure).
The tests in test_card_is_input.py pin the named cases; this one looks for the unnamed ones.
test_card_fuzz_torch.py does the same to a checkpoint's card (`distill`, `export`,
`export-diffusers`) and says why `serve` is left out.

Run alone, this module is the worker: ``python -m tests.cli.test_card_fuzz JOBS.json CAP``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 3 * 1024**3  # bytes of address space the worker may map (onnxruntime needs ~1.5 GB)
PEAK_RSS = 1024**3  # resident bytes: every run of a shipped model needs a few hundred MB
COMMANDS = {
    "sample": ["sample", "--model", "{model}", "-n", "1", "--out", "{out}"],
    "triton-repo": ["triton-repo", "{model}", "-o", "{out}"],
    # an empty --data-root: a card that passes ends at the data, before any fitting
    "learn-sampler": ["learn-sampler", "{model}", "-o", "{out}.onnx", "--data-root", "{empty}"],
    "bench": ["bench", "--model", "{model}", "--batch", "1", "--steps", "2", "--rounds", "1"],
    # no node_modules: a card that passes ends at ONNX Runtime Web, before the sampler graph
    "export-web": ["export-web", "--model", "{model}", "-o", "{out}", "--node-modules", "{empty}"],
    # -n above the classifier's 128 features (below, it ends before the card's sampler is read);
    # a card that passes ends at the empty --data-root's real images, before any sampling
    "evaluate": ["evaluate", "--model", "{model}", "-n", "200", "--no-two-sample",
                 "--data-root", "{empty}"],
    # the default setting calibrates on the card's own sampler (one image); a card that passes
    # then ends at the empty --data-root's test images, before the end-to-end gate
    "quantize": ["quantize", "{model}", "-o", "{out}.onnx", "--data-root", "{empty}",
                 "--calibration-batches", "1", "--calibration-batch", "1"],
    # a card that passes writes the card's own sampler, checked against the numpy loop (~1 s)
    "export-sampler": ["export-sampler", "{model}", "-o", "{out}.onnx"],
}  # fmt: skip
SIZES = [0, 1, 2, 3, 7, 8, 1000, 10**4, 10**5, 10**6, 10**9, 10**12, -1, 2**63]
HOSTILE = st.one_of(
    st.sampled_from([None, True, False, "", "x", "1e3", [], {}, [1, 2], {"a": 1}, [None]]),
    st.sampled_from(SIZES),
    st.integers(min_value=0, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),  # json.dumps writes NaN and Infinity
    st.text(max_size=4),
)


def base_cards() -> dict[str, dict]:
    """The shipped cards mutations start from; 'graph' is mnist's as a sampler graph's card."""
    import onnx

    from ddpm_deploy.card import CARD_KEY
    from ddpm_deploy.shipped import resolve_model

    cards = {}
    for name in ("mnist", "emoji"):
        model = onnx.load(str(resolve_model(name)), load_external_data=False)
        cards[name] = json.loads(next(p.value for p in model.metadata_props if p.key == CARD_KEY))
    graph = {k: v for k, v in cards["mnist"].items() if k not in ("gaussian", "sampler")}
    graph["sampler_graph"] = {**cards["mnist"]["sampler"], "noise": "seed", "xor": "bitwise"}
    return {**cards, "graph": graph}


BASES = base_cards()


FREE = ("training", "learned_sampler", "distilled", "diffusers")  # free-form: rarely edited


def paths(value, prefix=()) -> list[tuple]:
    """Every key of every object (and the first entry of every list), three levels deep, but
    seldom inside the free-form sections, whose edits change nothing a command reads."""
    out = []
    if len(prefix) >= 3 or (prefix and prefix[0] in FREE):
        return out
    items = value.items() if isinstance(value, dict) else enumerate(value[:1])
    for key, child in items:
        out.append((*prefix, key))
        if isinstance(child, (dict, list)):
            out += paths(child, (*prefix, key))
    return out


@st.composite
def mutated_card(draw, bases: dict[str, dict] = BASES) -> tuple[str, str]:
    """(base name, card JSON text) after one to three edits of one of ``bases``."""
    name = draw(st.sampled_from(sorted(bases)))
    card = json.loads(json.dumps(bases[name]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(card) or [("format",)]))
        *parents, last = path
        holder = card
        for key in parents:
            holder = holder[key]
        op = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if op == "set":
            holder[last] = draw(HOSTILE)
        elif op == "delete" and isinstance(holder, dict):
            del holder[last]
        elif isinstance(holder, dict):
            holder[draw(st.sampled_from(["extra", "T", "rank", "size", "root"]))] = draw(HOSTILE)
    return name, json.dumps(card)


def write_models(cards: list[tuple[str, str]], folder: Path) -> list[Path]:
    """A copy of each base's ONNX file with the mutated card as its metadata."""
    import onnx

    from ddpm_deploy.card import CARD_KEY
    from ddpm_deploy.shipped import resolve_model

    protos = {n: onnx.load(str(resolve_model("mnist" if n == "graph" else n))) for n in BASES}
    out = []
    for i, (name, text) in enumerate(cards):
        proto = protos[name]
        props = {p.key: p.value for p in proto.metadata_props}
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, {**props, CARD_KEY: text})
        path = folder / f"m{i}.onnx"
        path.write_bytes(proto.SerializeToString())
        onnx.helper.set_model_props(proto, props)
        out.append(path)
    return out


def worker(jobs_file: str, cap: int) -> None:
    """Run each job through the CLI under the address-space cap; print one JSON line per job."""
    import resource

    from click.testing import CliRunner

    from ddpm_deploy.cli import main

    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    for job in json.loads(Path(jobs_file).read_text()):
        result = CliRunner().invoke(main, job["args"], catch_exceptions=True)
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        report = {
            **job,
            "code": result.exit_code,
            "crash": repr(result.exception)[:300] if crashed else None,
            "errors": errors,
            "traceback": "Traceback" in result.output,
            "left": left_behind(job["out"]),
        }
        print(json.dumps(report), flush=True)
    # VmHWM, this process's own high-water mark: ru_maxrss would carry the pytest parent's resident
    # set across fork and exec (Linux keeps it), over 1 GiB in a full run that imported torch
    status = Path("/proc/self/status").read_text()
    peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    print(f"peak {peak * 1024}", flush=True)


def left_behind(out: str) -> list[str]:
    """What a job wrote under its output's name: the output (a file or a folder, with or without
    .onnx) and any hidden staging file or folder (".NAME.xxx") a writer did not clean up."""
    name = os.path.basename(out)
    return sorted(
        p
        for p in os.listdir(os.path.dirname(out))
        if p in (name, f"{name}.onnx") or p.startswith(f".{name}.")
    )


def run_jobs(
    models: list[Path], folder: Path, commands=COMMANDS, cap=MEMORY_CAP, peak_rss=PEAK_RSS
) -> list[dict]:
    """Every command on every model in one worker under ``cap``; its resident peak below
    ``peak_rss``."""
    empty = folder / "empty"
    empty.mkdir()
    jobs = []
    for i, model in enumerate(models):
        for command, template in commands.items():
            out = str(folder / f"out-{i}-{command}")
            args = [a.format(model=model, out=out, empty=empty) for a in template]
            jobs.append({"model": i, "command": command, "args": args, "out": out})
    (folder / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "DDPM_DEPLOY_DATA": str(empty), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.cli.test_card_fuzz", str(folder / "jobs.json"), str(cap)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(reports) == len(jobs), proc.stderr[-3000:]
    peak = int(proc.stdout.split("peak ")[-1])
    assert peak < peak_rss, f"the worker's resident memory peaked at {peak / 2**20:.0f} MiB"
    return reports


def problems(report: dict) -> list[str]:
    out = []
    if report["crash"] or report["traceback"]:
        out.append(f"a traceback ({report['crash']})")
    if report["code"] not in (0, 1):
        out.append(f"exit code {report['code']}")
    if report["code"] == 1 and len(report["errors"]) != 1:
        out.append(f"{len(report['errors'])} Error: lines")
    if report["code"] == 1 and report["left"]:
        out.append(f"an output left behind by a refusal ({report['left']})")
    return out


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=int(os.environ.get("CARD_FUZZ_EXAMPLES", "5")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(cards=st.lists(mutated_card(), min_size=10, max_size=10))
def test_a_mutated_card_is_one_error_line_or_a_run(cards):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reports = run_jobs(write_models(cards, folder), folder)
    failed = [
        f"{r['command']} on card {cards[r['model']][1][:300]}...: {', '.join(p)}"
        for r in reports
        if (p := problems(r))
    ]
    assert not failed, "\n".join(failed)


def test_the_worker_catches_what_the_fuzz_looks_for(tmp_path):
    """The harness itself: a card of T = 1e12 failed every check before the schema (a
    MemoryError: a traceback) and is one line now; an unmutated card runs."""
    ok = BASES["mnist"]
    huge = {**ok, "schedule": {**ok["schedule"], "T": 10**12}}
    models = write_models([("mnist", json.dumps(ok)), ("mnist", json.dumps(huge))], tmp_path)
    reports = run_jobs(models, tmp_path)
    assert not [(r, p) for r in reports if (p := problems(r))]
    sample = [r for r in reports if r["command"] == "sample"]
    assert [r["code"] for r in sample] == [0, 1] and "schedule.T" in sample[1]["errors"][0]
    # the cheap ends the comments in COMMANDS name: past the card, at the empty data root
    ends = {r["command"]: r["errors"] for r in reports if r["model"] == 0}
    assert ends["export-sampler"] == [] and all(
        "IDX files" in ends[c][0] for c in ("evaluate", "quantize", "learn-sampler")
    )


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]))
