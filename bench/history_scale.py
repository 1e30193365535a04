"""Benchmark of ``harness check`` of a very large run, end to end (read, check, results.json,
report.html), at several sizes side by side: wall and CPU seconds and peak RSS of a child process
that runs it, with the machine's load.

    .venv/bin/python bench/history_scale.py                        # 10^6 and 10^7 events
    .venv/bin/python bench/history_scale.py --sizes 1e5,1e6 --rounds 3
    .venv/bin/python bench/history_scale.py --repo /tmp/wt-before  # another checkout's harness
    .venv/bin/python bench/history_scale.py --repo /tmp/wt-before --repo .  # both, side by side
    .venv/bin/python bench/history_scale.py --sizes 1e7 --one-key  # also all its ops on one key
    .venv/bin/python bench/history_scale.py --sizes 1e8 --rounds 1  # 10 copies of the 10^7 one

The run directories are bench/report.py's synthetic mutex runs (10 minutes on the clock, a
partition every 30 s, 50 violations injected), built once per size under ``--dir`` and kept there
for the next invocation; a size over 10^7 is the 10^7 history copied one copy after another (each
with its own clients and keys), since generating holds every op at once. ``--one-key`` also checks
each history with every op's key made the same (the worst case for memory: the passes over one key
are never split by key). Figures are medians of ``--rounds``; the verdict and violation count of
each round are printed so that two checkouts can be compared. With ``--repo`` given twice, the two
checkouts' rounds alternate (A, B, A, B, ...: the machine's drift falls on both) and each size ends
with B's ratios to A.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import build  # noqa: E402


def parse_sizes(text: str) -> list[int] | None:
    """Event counts from ``1e6,1e7``; None when that is not what was given."""
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except (ValueError, OverflowError):
        return None
    return sizes if sizes and min(sizes) > 0 else None


TILE = 10**7  # larger sizes are copies of this one's history (generating holds every op at once)
FIELD = re.compile(rb'"(index|time|process|key)":("[^"]*"|\d+)')
PROCESS = re.compile(rb'"process":(\d+)')


def run_dir(base: Path, events: int) -> Path:
    if events > TILE:
        return tiled_dir(base, events)
    d = base / f"mutex-{events}"
    if not (d / "config.json").exists():
        d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        n = build(d, events, inject=50)
        print(f"built {d} ({n:,} ops) in {time.perf_counter() - t:.0f} s", flush=True)
    return d


def tiled_dir(base: Path, events: int) -> Path:
    """The 10^7 history copied ``ceil(events / 10^7)`` times, one after another: each copy's
    times start past the last one's end and its clients and keys are its own (so the copies'
    holds never meet, and the violations are the copy's times the count of copies)."""
    src = run_dir(base, TILE)
    copies = -(-events // TILE)
    d = base / f"mutex-{events}-tiled"
    if not (d / "config.json").exists():
        d.mkdir(parents=True, exist_ok=True)
        config = json.loads((src / "config.json").read_text())
        shift = int(config["duration_s"] * 1e9) + 10**9
        t = time.perf_counter()
        with open(d / "history.jsonl", "wb") as fo:
            rows = top = 0
            with open(src / "history.jsonl", "rb") as fi:  # the first copy as it is, counted
                for line in fi:
                    fo.write(line)
                    rows += 1
                    if m := PROCESS.search(line):
                        top = max(top, int(m[1]))
            step = 10 ** len(str(top))  # each copy's clients above the last one's
            for c in range(1, copies):
                add = {b"index": c * rows, b"time": c * shift, b"process": c * step}

                def moved(m: re.Match[bytes], c: int = c, add: dict = add) -> bytes:
                    name, value = m[1], m[2]
                    if name == b"key":
                        return b'"key":' + value[:-1] + b'.%d"' % c
                    if value.startswith(b'"'):  # the nemesis's process
                        return m[0]
                    return b'"%s":%d' % (name, int(value) + add[name])

                with open(src / "history.jsonl", "rb") as fi:
                    fo.writelines(FIELD.sub(moved, line) for line in fi)
        config["duration_s"] += (copies - 1) * shift / 1e9
        (d / "config.json").write_text(json.dumps(config))  # last: the directory is complete
        print(f"built {d} ({copies} copies) in {time.perf_counter() - t:.0f} s", flush=True)
    return d


def one_key_dir(base: Path, events: int) -> Path:
    """``run_dir``'s history with every op on one key (built once, kept beside it)."""
    src = run_dir(base, events)
    d = base / f"mutex-{events}-one-key"
    if not (d / "config.json").exists():
        d.mkdir(parents=True, exist_ok=True)
        key = re.compile(rb'"key":"[^"]*"')
        with open(src / "history.jsonl", "rb") as fi, open(d / "history.jsonl", "wb") as fo:
            for line in fi:
                fo.write(key.sub(b'"key":"lock-0"', line))
        shutil.copy(src / "config.json", d / "config.json")  # last: the directory is complete
    return d


def one_check(repo: Path, d: Path) -> dict[str, float | str | int]:
    """``harness check`` of ``d`` in a child process: wall, CPU (user + system), peak RSS."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from harness.run.analyse import recheck; recheck(Path(sys.argv[2]))"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, str(repo), str(d)],
        check=True,
        cwd=repo,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads((d / "results.json").read_text())
    mutex = res.get("checkers", {}).get("mutex", {})
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss_mb": after.ru_maxrss / 1024,  # the largest child so far: rounds of one size only
        "load": load,
        "valid": str(res.get("valid")),
        "violations": int(mutex.get("violation_count", -1)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1e6,1e7", help="event counts, comma separated")
    ap.add_argument("--rounds", type=int, default=3, help="checks per size (medians)")
    ap.add_argument("--dir", default="/tmp/lockharness-bench", help="where the runs are kept")
    ap.add_argument("--one-key", action="store_true", help="also each history on one key")
    ap.add_argument(
        "--repo",
        action="append",
        help="the checkout whose harness checks (twice: A and B side by side); default: this one",
    )
    args = ap.parse_args()
    repos = [Path(r).resolve() for r in (args.repo or [str(ROOT)])]
    if len(repos) > 2:
        print("--repo: give one checkout, or two to compare", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("--rounds: give a count of at least 1", file=sys.stderr)
        return 2
    sizes = parse_sizes(args.sizes)
    if sizes is None:
        print(
            f"--sizes {args.sizes!r}: give event counts separated by commas, e.g. 1e6,1e7",
            file=sys.stderr,
        )
        return 2
    base = Path(args.dir)
    dirs = {f"{n:,}": run_dir(base, n) for n in sizes}
    if args.one_key:
        dirs |= {f"{n:,} 1 key": one_key_dir(base, n) for n in sizes}
    names = ["A", "B"][: len(repos)] if len(repos) > 1 else [""]
    for name, repo in zip(names, repos, strict=True):
        print(f"harness check{' ' + name if name else ''}: {repo}")
    print(f"medians of {args.rounds}; load = 1-min load average at each check's start")
    print(f"{'events':>16} {'':>2} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'load':>5}  verdict")
    for n, d in dirs.items():
        rows: dict[Path, list[dict]] = {r: [] for r in repos}
        for _ in range(args.rounds):
            for repo in repos:  # alternating: a drift in the machine's load falls on both
                # peak RSS of children is a running maximum: each check in a process of its own
                code = [sys.executable, __file__, "--_one", str(repo), str(d)]
                out = subprocess.run(code, check=True, capture_output=True, text=True).stdout
                rows[repo].append(json.loads(out))
        meds = {}
        for name, repo in zip(names, repos, strict=True):
            rs = rows[repo]
            med = meds[repo] = {
                k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss_mb", "load")
            }
            verdicts = sorted({f"{r['valid']} ({r['violations']} violations)" for r in rs})
            print(
                f"{n:>16} {name:>2} {med['wall']:>8.2f} {med['cpu']:>8.2f} {med['rss_mb']:>8.0f}"
                f" {med['load']:>5.1f}  {', '.join(verdicts)}",
                flush=True,
            )
        if len(repos) == 2:
            a, b = meds[repos[0]], meds[repos[1]]
            print(
                f"{n:>16} B/A wall {b['wall'] / a['wall']:.2f}x, cpu {b['cpu'] / a['cpu']:.2f}x,"
                f" peak RSS {b['rss_mb'] / a['rss_mb']:.2f}x",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--_one":
        print(json.dumps(one_check(Path(sys.argv[2]), Path(sys.argv[3]))))
        sys.exit(0)
    sys.exit(main())
