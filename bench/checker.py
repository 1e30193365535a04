"""Benchmark of the mutex and set checkers on synthetic histories.

    .venv/bin/python bench/checker.py            # 10^4, 10^5, 10^6 events
    .venv/bin/python bench/checker.py --quick    # 10^4, 10^5 only
    .venv/bin/python bench/checker.py --only set # one checker

Histories: many keys (one per ~1000 events), four client processes per key, acquire/write-free
sessions with failed acquires by waiting clients; a share of completions is ``info`` (the process
is then retired and replaced). Violations are injected as overlaps (an acquire returns just
before the previous holder invokes its release) and revocations (a release fails, the next
client acquires). Index order follows arrival at the recorder, which lags the op's time a
little, so the checker has to sort by time. Prints check time (median of 3, wall and CPU: the
machine may be shared), events/s, and the time to parse the same history from JSONL with
``checkers.history.read``.

Set histories: 100 keys, adds by many processes (outcomes 95% ok, 3% info, 2% fail, times
interleaved), one final read per key holding every acknowledged element but the injected lost
ones, and half of the unknown-outcome ones; found = injected lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkers import mutex  # noqa: E402
from checkers import set as set_checker  # noqa: E402
from checkers.history import Op, read  # noqa: E402
from checkers.model import LEASE, LockModel  # noqa: E402

# The lease model with no TTL: every revocation injected is an early grant, so it finds what
# the strict model finds, and its own sweep is timed beside the strict one.
NO_TTL = LockModel(LEASE, "none")

PER_KEY = 4  # client processes per key


def generate(events: int, info: float, inject: int, seed: int = 1) -> tuple[list[Op], int]:
    """A history of about ``events`` ops; returns (ops, violations injected)."""
    rnd = random.Random(seed)
    nkeys = max(10, events // 1000)
    sessions_per_key = max(1, events // (nkeys * 5))
    total = nkeys * sessions_per_key
    marked = set(rnd.sample(range(total), min(inject, total // 3)))
    marked -= {s + 1 for s in marked}  # keep injected sessions apart: one violation each
    raw: list[tuple[int, int, str, str, str, int | None, str | None]] = []
    add = raw.append
    next_pid = 0
    fence = 0
    injected = 0
    for k in range(nkeys):
        key = f"lock-{k}"
        procs = list(range(next_pid, next_pid + PER_KEY))
        next_pid += PER_KEY
        ready = dict.fromkeys(procs, 0)
        free = rnd.randrange(1000, 5000)  # when the lock next becomes free
        last_rel_inv = -1  # release invoke of the latest hold, -1 when there is none
        holder = -1
        revoked = False  # the latest hold's release failed
        for s in range(sessions_per_key):
            sid = k * sessions_per_key + s
            slot = rnd.randrange(PER_KEY)
            p = procs[slot]
            inv = max(ready[p] + 1, free - rnd.randrange(1, 3000))
            ok = max(free, inv + 1) + rnd.randrange(50, 500)
            overlap = sid in marked and not revoked and last_rel_inv >= 0 and p != holder
            if overlap:  # the acquire returns just before the holder invokes its release
                ok = last_rel_inv - 1
                inv = ok - 10
                overlap = ready[p] < inv
                if not overlap:
                    continue
            elif rnd.random() < info:  # acquire outcome unknown: retire the process
                add((inv, p, "invoke", "acquire", key, None, None))
                add((ok, p, "info", "acquire", key, None, "timeout"))
                ready[p] = ok
                procs[slot] = next_pid
                ready[next_pid] = ok
                next_pid += 1
                continue
            injected += overlap or revoked  # this hold breaks into the previous one
            fence += 1
            add((inv, p, "invoke", "acquire", key, None, None))
            add((ok, p, "ok", "acquire", key, fence, None))
            waiter = procs[(slot + 1) % PER_KEY]  # someone else tried meanwhile and gave up
            w_inv = max(ready[waiter] + 1, inv)
            if w_inv < ok:
                add((w_inv, waiter, "invoke", "acquire", key, None, None))
                add((ok + 100, waiter, "fail", "acquire", key, None, "timeout"))
                ready[waiter] = ok + 100
            rel_inv = ok + rnd.randrange(2, 2000)
            rel_done = rel_inv + rnd.randrange(50, 500)
            revoked = sid + 1 in marked and rnd.random() < 0.5
            add((rel_inv, p, "invoke", "release", key, fence, None))
            if revoked:
                add((rel_done, p, "fail", "release", key, fence, "not owner"))
            elif rnd.random() < info:
                add((rel_done, p, "info", "release", key, fence, "timeout"))
                procs[slot] = next_pid
                ready[next_pid] = rel_done
                next_pid += 1
            else:
                add((rel_done, p, "ok", "release", key, fence, None))
            ready[p] = rel_done
            holder = p
            last_rel_inv = rel_inv
            free = max(free, rel_done + 10 if revoked else rel_inv)
    # index = arrival order at the recorder, a little after the op's time
    arrivals = sorted(range(len(raw)), key=lambda i: raw[i][0] + rnd.randrange(0, 300))
    ops = [None] * len(raw)
    for idx, i in enumerate(arrivals):
        t, p, ty, f, key, value, err = raw[i]
        ops[idx] = Op(idx, t, p, ty, f, key, value, err)
    return ops, injected  # type: ignore[return-value]


def generate_set(events: int, lose: int, seed: int = 1) -> tuple[list[Op], int]:
    """A set history of about ``events`` ops; returns (ops, lost updates injected)."""
    rnd = random.Random(seed)
    nkeys = 100
    adds = max(1, (events - 2 * nkeys) // 2)
    ops: list[Op] = []
    kept: dict[int, list[int]] = {k: [] for k in range(nkeys)}
    acked: list[tuple[int, int]] = []
    t = 0
    for el in range(adds):
        k = el % nkeys
        p = el % 1000
        t += 1000
        r = rnd.random()
        outcome = "ok" if r < 0.95 else "info" if r < 0.98 else "fail"
        ops.append(Op(len(ops), t, p, "invoke", "add", k, el))
        ops.append(Op(len(ops), t + rnd.randrange(1, 900), p, outcome, "add", k, el))
        if outcome == "ok":
            acked.append((k, el))
            kept[k].append(el)
        elif outcome == "info" and rnd.random() < 0.5:
            kept[k].append(el)
    lost = set(rnd.sample(acked, min(lose, len(acked))))
    t += 10_000
    for k in range(nkeys):
        value = [el for el in kept[k] if (k, el) not in lost]
        ops.append(Op(len(ops), t, 5000 + k, "invoke", "read", k, None))
        ops.append(Op(len(ops), t + 500, 5000 + k, "ok", "read", k, value))
        t += 1000
    return ops, len(lost)


def timed(fn, repeat: int = 3) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeat`` calls (CPU shows the cost on a busy machine)."""
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return statistics.median(wall), statistics.median(cpu), out


def parse_time(ops: list[Op]) -> float:
    fd, name = tempfile.mkstemp(suffix=".jsonl")
    try:
        with os.fdopen(fd, "w") as fh:
            for op in ops:
                fh.write(json.dumps(op.to_dict(), separators=(",", ":")) + "\n")
        t = time.perf_counter()
        n = len(read(name).ops)
        took = time.perf_counter() - t
        assert n == len(ops)
        return took
    finally:
        os.unlink(name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the 10^6-event histories")
    ap.add_argument("--only", choices=["mutex", "set"], help="benchmark one checker only")
    args = ap.parse_args()
    sizes = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    if args.only != "set":
        bench_mutex(sizes)
    if args.only != "mutex":
        bench_set(sizes)
    return 0


def bench_mutex(sizes: list[int]) -> None:
    print("mutex checker")
    head = f"{'events':>9} {'info':>5} {'injected':>8} {'found':>6} {'check s':>8} {'cpu s':>6}"
    print(head + f" {'events/s':>11} {'lease s':>8} {'ratio':>6} {'parse s':>8}")
    for n in sizes:
        for info in (0.01, 0.05, 0.20):
            for inject in (0, max(1, n // 10_000)):
                ops, injected = generate(n, info, inject)
                secs, cpu, res = timed(lambda ops=ops: mutex.check(ops))
                found = res["violation_count"]  # type: ignore[index]
                lsecs, _, lres = timed(lambda ops=ops: mutex.check(ops, model=NO_TTL))
                parse = f"{parse_time(ops):8.2f}" if inject == 0 and info == 0.05 else " " * 8
                print(
                    f"{len(ops):>9} {info:>5.0%} {injected:>8} {found:>6} {secs:>8.3f} {cpu:>6.2f}"
                    f" {len(ops) / secs:>11,.0f} {lsecs:>8.3f} {lsecs / secs:>5.2f}x {parse}",
                    flush=True,
                )
                if lres["violation_count"] != found:  # type: ignore[index]
                    print(f"  lease model found {lres['violation_count']}", file=sys.stderr)  # type: ignore[index]
                if found != injected:
                    print(f"  mismatch: injected {injected}, found {found}", file=sys.stderr)


def bench_set(sizes: list[int]) -> None:
    print("set checker")
    head = f"{'events':>9} {'lost':>6} {'found':>6} {'check s':>8} {'cpu s':>6} {'events/s':>11}"
    print(head + f" {'parse s':>8}")
    for n in sizes:
        for lose in (0, max(1, n // 1000)):
            ops, injected = generate_set(n, lose)
            secs, cpu, res = timed(lambda ops=ops: set_checker.check(ops))
            found = res["lost_count"]  # type: ignore[index]
            parse = f"{parse_time(ops):8.2f}" if lose == 0 else ""
            print(
                f"{len(ops):>9} {injected:>6} {found:>6} {secs:>8.3f} {cpu:>6.2f}"
                f" {len(ops) / secs:>11,.0f} {parse}",
                flush=True,
            )
            if found != injected or res["valid"] is not (injected == 0):  # type: ignore[index]
                print(f"  mismatch: injected {injected}, found {found}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
