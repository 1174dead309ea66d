"""`sample`, `evaluate` and `bench` at two revisions, alternating in one run: is the new one slower?

    git worktree add /tmp/old REV
    pip install --no-deps --no-build-isolation --target /tmp/oldpkg /tmp/old
    python benchmarks/ab_speed.py --old /tmp/oldpkg --rounds 3 --data-root ../shared/datasets

"old" runs this interpreter with PYTHONPATH=OLD (its ddpm_deploy wins over the editable install),
"new" runs the checkout's. Each command's wall time includes process start and imports, as a user
sees it; rounds alternate old/new so a busy machine slows both alike. Prints the median per command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def commands(data_root: str, out: str) -> dict[str, list[str]]:
    return {
        "sample -n 400": ["sample", "-n", "400", "--batch", "100", "--out", out],
        "evaluate -n 1000": [
            "evaluate",
            "-n",
            "1000",
            "--no-two-sample",
            "--data-root",
            data_root,
            "--json",
        ],  # fmt: skip
        "bench ort b100": [
            "bench",
            "--backend",
            "ort",
            "--batch",
            "100",
            "--steps",
            "20",
            "--rounds",
            "1",
        ],  # fmt: skip
    }


def run(args: list[str], pythonpath: str | None) -> float:
    env = dict(os.environ, TQDM_DISABLE="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ddpm_deploy", *args], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="a --target install of the old revision")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-root", default=os.environ.get("DDPM_DEPLOY_DATA", "data"))
    args = parser.parse_args()
    data_root = os.path.abspath(args.data_root)
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.rounds):
            for name, cmd in commands(data_root, out).items():
                for side, path in (("old", args.old), ("new", None)):
                    times.setdefault((name, side), []).append(run(cmd, path))
    rows = {}
    for name in commands(data_root, "."):
        old, new = (statistics.median(times[(name, s)]) for s in ("old", "new"))
        rows[name] = {
            "old_s": round(old, 2),
            "new_s": round(new, 2),
            "new/old": round(new / old, 3),
        }
        print(f"{name:<18} old {old:7.2f} s   new {new:7.2f} s   new/old {new / old:.3f}")
    print(json.dumps({"rounds": args.rounds, "median_wall_seconds": rows}))


if __name__ == "__main__":
    main()
