"""Images/s of the export-web page in headless Chromium (WebAssembly, 1 and 2 threads) against the
native runtime (`ddpm-deploy sample`'s run_sampling, ONNX Runtime on the CPU), same model, sampler,
steps, guidance and n, in one run (docs/BENCHMARKS.md, "In the browser").

    .venv/bin/python benchmarks/web_bench.py [-n 16] [--model fashion_mnist] [--screenshot docs/web/page.png]

Needs what tests/export/test_web.py needs: Debian's chromium and chromium-driver, selenium, and
`npm ci --prefix web`. The page's seconds are its own (performance.now() around the sampling loop,
the model already loaded), as `sample`'s are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from ddpm_deploy.export import web, web_browser
from ddpm_deploy.runtime.pipeline import SampleRequest, run_sampling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion_mnist")
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--threads", default="1,2", help="browser thread counts to measure")
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the fastest counts")
    parser.add_argument("--screenshot", default=None, help="save the last page's screenshot here")
    args = parser.parse_args()
    reason = web_browser.missing()
    if reason:
        raise SystemExit(f"cannot run: {reason}")

    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        record = web.export_web(args.model, site)
        d = record["sampler"]  # the page's sampler graph (export/sampler_plan.py)
        steps = len(d["timesteps"])
        setting = f"{d['sampler']}, {steps} steps ({steps - d['analytic']} calls), guidance {d['guidance']:g}, random classes"
        with web_browser.served(site) as url, web_browser.chromium() as driver:
            for threads in [int(t) for t in args.threads.split(",")]:
                url_or_rerun = f"{url}?n={args.n}&seed=0&threads={threads}"
                times = []
                for _ in range(args.repeats):  # the first page load also warms the session up
                    page = web_browser.run_page(driver, url_or_rerun)
                    url_or_rerun = None
                    if page["title"] != "done":
                        raise SystemExit(f"the page failed: {page['error']}")
                    times.append(page["result"]["seconds"])
                threads_run = page["result"]["threads"]
                rows.append({"where": f"Chromium, wasm, {threads_run} thread{'s' if threads_run > 1 else ''}",
                             "seconds": min(times), "runs": times})  # fmt: skip
            browser = f"Chromium {driver.capabilities.get('browserVersion', '?')} headless"
            if args.screenshot:
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(args.screenshot)
        times = []
        for k in range(args.repeats):
            native = run_sampling(
                SampleRequest(
                    model=args.model,
                    n=args.n,
                    seed=0,
                    out=str(Path(tmp) / f"native{k}"),
                    progress=False,
                    frames=1,
                )
            )
            times.append(native["seconds"])
        rows.append({"where": "native: ddpm-deploy sample (ONNX Runtime CPU)",
                     "seconds": min(times), "runs": times})  # fmt: skip

    print(f"# {args.model}, n = {args.n}, {setting}; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} at start; {browser}; {time.strftime('%Y-%m-%d')}")  # fmt: skip
    print("| where | seconds | images/s |")
    print("| --- | ---: | ---: |")
    for row in rows:
        row["images_per_s"] = args.n / row["seconds"]
        print(f"| {row['where']} | {row['seconds']:.2f} | {row['images_per_s']:.2f} |")
    print(json.dumps({"model": args.model, "n": args.n, "setting": setting, "rows": rows}))


if __name__ == "__main__":
    main()
