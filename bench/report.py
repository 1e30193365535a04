"""Benchmark of check + render of a large run: time to read, check and render report.html, and
the page's size.

    .venv/bin/python bench/report.py              # 10^6 ops
    .venv/bin/python bench/report.py --ops 100000

The run directory is built from the mutex checker's synthetic history (bench/checker.py), put on
a clock of 10 minutes, with violations injected and a fault every 30 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.checker import generate  # noqa: E402
from checkers.history import Op  # noqa: E402
from harness.run.analyse import recheck  # noqa: E402

SPAN_S = 600  # the run's length on its clock: 10 minutes, a fault every 30 s


def build(run_dir: Path, events: int, inject: int, seed: int = 1) -> int:
    """Write config.json and history.jsonl of a large run; returns the op count."""
    ops, _ = generate(events, info=0.02, inject=inject, seed=seed)
    scale = SPAN_S * 10**9 // max(o.time for o in ops)  # synthetic time units to ns
    ops = [
        Op(o.index, o.time * scale, o.process, o.type, o.f, o.key, o.value, o.error) for o in ops
    ]
    end = max(o.time for o in ops)
    faults = []
    t = 30 * 10**9
    while t + 10 * 10**9 < end:
        value = {"topology": "halves", "reach": [["n1", "n2", "c0"], ["n3", "n4", "n5", "c1"]]}
        faults += [
            (t, "invoke", "start-partition", None),
            (t + 10**6, "info", "start-partition", value),
            (t + 10 * 10**9, "invoke", "stop-partition", None),
            (t + 10 * 10**9 + 10**6, "info", "stop-partition", {"healed": True}),
        ]
        t += 30 * 10**9
    rows = [o.to_dict() for o in ops]
    rows += [
        {"time": ft, "process": "nemesis", "type": ty, "f": f, **({"value": v} if v else {})}
        for ft, ty, f, v in faults
    ]
    rows.sort(key=lambda r: r["time"])
    with open(run_dir / "history.jsonl", "w") as fh:
        for i, r in enumerate(rows):
            r["index"] = i
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    config = {
        "backend": "synthetic",
        "workload": "mutex",
        "nemesis": ["partition"],
        "nemesis_interval": 10,
        "concurrency": 4,
        "ttl_ms": 3000,
        "duration_s": end / 1e9,
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    return len(rows)


def phases(run_dir: Path) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of each step ``harness check`` takes: read, check, render."""
    from checkers.columns import read_history
    from harness.run.analyse import analyse, checkers_for
    from reports.render import render_run

    out = {}

    def step(name, fn):
        t, c = time.perf_counter(), time.process_time()
        got = fn()
        out[name] = (time.perf_counter() - t, time.process_time() - c)
        return got

    got = step("read", lambda: read_history(run_dir / "history.jsonl"))  # as harness check
    config = json.loads((run_dir / "config.json").read_text())
    res = step("check", lambda: analyse(checkers_for(config, got), got, config=config))
    (run_dir / "results.json").write_text(json.dumps(res))
    step("render", lambda: render_run(run_dir, got.ops))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ops", type=int, default=10**6, help="about this many ops")
    ap.add_argument("--inject", type=int, default=50, help="violations to inject")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        n = build(d, args.ops, args.inject)
        t, c = time.perf_counter(), time.process_time()
        results = recheck(d)
        took, cpu = time.perf_counter() - t, time.process_time() - c
        size = (d / "report.html").stat().st_size
        print(
            f"{n:,} ops: read + check + render {took:.2f} s (CPU {cpu:.2f} s); report.html "
            f"{size / 1e6:.2f} MB; {results['summary'][:90]}"
        )
        steps = phases(d)
        print(
            "  by step: " + ", ".join(f"{k} {w:.2f} s (CPU {c:.2f})" for k, (w, c) in steps.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
