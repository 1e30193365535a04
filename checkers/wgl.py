"""A generic linearizability checker (Wing & Gong / Lowe, as in Knossos and Porcupine): the oracle.

P-compositional: each key is checked on its own (linearizability is local). The search tries,
depth first, every op that may come next (all ops that returned before it was invoked are already
linearized), memoizing (linearized set, model state) pairs that led nowhere. Exponential in
concurrency, so it is for small histories and property tests; ``checkers.mutex`` is the fast path.

Op outcomes: ``ok`` must be linearized, ``fail`` took no effect and is dropped, ``info`` (or an
invoke that never completed) may be linearized at any point after its invocation, or never.
Processes are taken to be sequential: a new invocation while one is pending makes the pending
one ``info``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from .history import Op
from .holds import sort_ops
from .pairing import NEVER_RETURNED, pair

NAME = "wgl"
INVALID = object()  # a model step that is not legal in this state
NEVER = 1 << 62  # return position of an op that never returned


@dataclass(frozen=True)
class Model:
    """A sequential specification: ``step(state, call) -> new state or INVALID``."""

    name: str
    fs: frozenset[str]  # the op names this model knows; other ops are ignored
    init: Hashable
    step: Callable[[Any, tuple[Any, ...]], Any]
    # Build the hashable call from (f, process, invoke value, completion value, outcome);
    # None means the op has no effect on the state and can be dropped.
    call: Callable[[str, Any, Any, Any, str], tuple[Any, ...] | None]


def _freeze(v: Any) -> Hashable:
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _mutex_step(owner: Any, c: tuple[Any, ...]) -> Any:
    f, p = c
    if f == "acquire":  # granted again to its owner (its release failed): still one owner
        return p if owner is None or owner == p else INVALID
    return None if owner == p else INVALID


def _mutex_call(f: str, p: Any, inv: Any, out: Any, t: str) -> tuple[Any, ...] | None:
    return (f, p)


def _register_step(v: Any, c: tuple[Any, ...]) -> Any:
    f, x = c
    if f == "write":
        return x
    if f == "read":
        return v if x == v else INVALID
    old, new = x
    return new if v == old else INVALID


def _register_call(f: str, p: Any, inv: Any, out: Any, t: str) -> tuple[Any, ...] | None:
    if f == "read":
        return None if t != "ok" else ("read", _freeze(out))  # an unknown read changes nothing
    if f == "cas":
        pair = _freeze(inv)
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"cas value {inv!r} is not a pair [old, new]")
        return ("cas", pair)
    return ("write", _freeze(inv))


def _counter_step(n: Any, c: tuple[Any, ...]) -> Any:
    f, x = c
    if f == "add":
        return n + x
    return n if x == n else INVALID


def _counter_call(f: str, p: Any, inv: Any, out: Any, t: str) -> tuple[Any, ...] | None:
    if f == "read":
        return None if t != "ok" else ("read", out)
    return ("add", 1 if inv is None else inv)


MODELS: dict[str, Model] = {
    "mutex": Model("mutex", frozenset({"acquire", "release"}), None, _mutex_step, _mutex_call),
    "register": Model(
        "register", frozenset({"read", "write", "cas"}), None, _register_step, _register_call
    ),
    "counter": Model("counter", frozenset({"add", "read"}), 0, _counter_step, _counter_call),
}


@dataclass
class _Entry:
    call: tuple[Any, ...]
    inv: int  # position of the invocation
    ret: int  # position of the completion, NEVER for info
    index: int  # op index of the invocation, for reports


def entries_by_key(ops: Iterable[Op], model: Model) -> dict[Any, list[_Entry]]:
    """Pair invocations with completions (``checkers.pairing``); drop ``fail`` ops and ops the
    model does not know."""
    srt = sort_ops(ops)
    out: dict[Any, list[_Entry]] = {}
    for p, f, key, t, inv, pos in pair(srt, model.fs).pairs:
        if t == "fail":
            continue
        done = srt[pos] if pos != NEVER_RETURNED else None
        iop = srt[inv] if inv >= 0 else None
        if iop is None or iop.type != "invoke" or iop.process != p:
            iop = done  # no invocation: its own completion stands for it
        c = model.call(f, p, iop.value if iop else None, done.value if done else None, t)
        if c is not None:
            ret = pos if t == "ok" else NEVER
            out.setdefault(key, []).append(_Entry(c, inv, ret, iop.index if iop else -1))
    return out


def search(entries: list[_Entry], model: Model, max_states: int = 1_000_000) -> bool | None:
    """True if some linearization exists, False if none, None if ``max_states`` ran out."""
    n = len(entries)
    required = 0
    pred = [0] * n  # pred[i]: ops that returned before op i was invoked
    for i, e in enumerate(entries):
        if e.ret != NEVER:
            required |= 1 << i
        for j, d in enumerate(entries):
            if d.ret < e.inv:
                pred[i] |= 1 << j
    seen: set[tuple[int, Any]] = set()
    # Iterative depth-first search: each frame is (linearized mask, state, next candidate).
    stack: list[list[Any]] = [[0, model.init, 0]]
    seen.add((0, model.init))
    while stack:
        frame = stack[-1]
        done, state, i = frame
        if done & required == required:
            return True
        while i < n:
            bit = 1 << i
            if not done & bit and not pred[i] & ~done:
                nxt = model.step(state, entries[i].call)
                if nxt is not INVALID:
                    key = (done | bit, nxt)
                    if key not in seen:
                        if len(seen) >= max_states:
                            return None
                        seen.add(key)
                        break
            i += 1
        if i >= n:
            stack.pop()
            continue
        frame[2] = i + 1
        stack.append([done | (1 << i), nxt, 0])
    return False


def check(
    ops: Iterable[Op], *, model: str | Model = "mutex", max_states: int = 1_000_000, **_: Any
) -> dict[str, Any]:
    """Check every key of the history against ``model`` (a name in MODELS, or a Model)."""
    if isinstance(model, str):
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; valid: {', '.join(sorted(MODELS))}")
        m = MODELS[model]
    else:
        m = model
    bad: list[Any] = []
    unknown: list[Any] = []
    by_key = entries_by_key(ops, m)
    for key, entries in by_key.items():
        r = search(entries, m, max_states)
        if r is False:
            bad.append(key)
        elif r is None:
            unknown.append(key)
    valid: bool | str = False if bad else ("unknown" if unknown else True)
    if bad:
        summary = f"not linearizable as a {m.name} on {len(bad)} of {len(by_key)} keys"
    elif unknown:
        summary = f"gave up after {max_states} states on {len(unknown)} keys"
    else:
        summary = f"linearizable as a {m.name} on all {len(by_key)} keys"
    return {
        "checker": NAME,
        "model": m.name,
        "valid": valid,
        "summary": summary,
        "keys": len(by_key),
        "failed_keys": bad,
        "unknown_keys": unknown,
    }
