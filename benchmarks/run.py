"""Benchmark ``trainkit generate``: wall time, output records per second, peak memory.

Runs the real command line in a child process for each size and samples the resident memory of
the whole process tree (the command and its workers) from /proc, so the figure is what a laptop
would need. Output records are the rows written (all truth tables; later, CSV data rows and XML
``<Child>`` elements too), read from the manifest.

    .venv/bin/python benchmarks/run.py                      # 10k, 100k, 900k people, 2 workers
    .venv/bin/python benchmarks/run.py --sizes 10000 --workers 1
    .venv/bin/python benchmarks/run.py --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _tree_rss_kib(root_pid: int) -> int:
    """Resident memory (KiB) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:
            continue
        pid = int(entry)
        ppid = int(status.split("PPid:")[1].split()[0])
        children.setdefault(ppid, []).append(pid)
        if "VmRSS:" in status:
            rss[pid] = int(status.split("VmRSS:")[1].split()[0])
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_once(children: int, workers: int, seed: int, exe: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="tk-bench-")) / "data"
    cmd = [exe, "generate", "--children", str(children), "--seed", str(seed),
           "--out", str(out), "--workers", str(workers), "--quiet"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"generate failed for {children}: {stderr.strip()}")
    manifest = json.loads((out / "manifest.json").read_text())
    records = sum(manifest["rows"].values())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out.parent)
    return {
        "children": children,
        "workers": workers,
        "seconds": wall,
        "records": records,
        "records_per_second": records / wall,
        "peak_rss_mib": peak / 1024,
        "output_mib": size / 2**20,
    }


def markdown(results: list[dict]) -> str:
    head = (
        "| people | workers | wall time (s) | output records | records / s | peak memory (MiB) "
        "| output size (MiB) |\n|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = "".join(
        f"| {r['children']:,} | {r['workers']} | {r['seconds']:.1f} | {r['records']:,} | "
        f"{r['records_per_second']:,.0f} | {r['peak_rss_mib']:,.0f} | {r['output_mib']:,.1f} |\n"
        for r in results
    )
    return head + rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 900,000: the NHS test-number range holds 909,091 valid numbers, one per simulated child
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 900_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = ap.parse_args()
    exe = shutil.which("trainkit", path=str(Path(sys.executable).parent)) or "trainkit"
    results = []
    for n in args.sizes:
        r = run_once(n, args.workers, args.seed, exe)
        results.append(r)
        print(
            f"{n:>9,} people: {r['seconds']:7.1f} s, {r['records']:>12,} records, "
            f"{r['records_per_second']:>10,.0f} records/s, peak {r['peak_rss_mib']:,.0f} MiB",
            flush=True,
        )
    table = markdown(results)
    print()
    print(table)
    if args.markdown:
        machine = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        args.markdown.write_text(
            "# Benchmarks\n\n"
            "`benchmarks/run.py` runs `trainkit generate` for each size and samples the resident "
            "memory of the command and its worker processes. Output records are all rows written "
            "(truth tables). Re-run it after any change to the generator and update this page.\n\n"
            f"Machine: {machine}.\n\n{table}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
