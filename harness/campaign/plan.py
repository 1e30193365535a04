"""Every run of a campaign: (cell, repetition) with a seed derived from the campaign seed, its
place in the store, the ``harness run`` command that performs it, and the shard slices.

A run's seed depends only on the campaign seed, the cell's key and the repetition, so any run
can be re-run alone (the command is recorded) and a shard computes the same seeds as the whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..run.config import RunConfig, parse_backoff
from .spec import Campaign, Cell, SpecError, option_text

RUNS_DIR = "runs"
SHARD_ENV = ("JOB_COMPLETION_INDEX", "HARNESS_SHARD_INDEX")


def derive_seed(campaign_seed: int, cell_key: str, repetition: int) -> int:
    """A run's seed: 31 bits of sha256(campaign seed, cell key, repetition)."""
    blob = f"{campaign_seed}\0{cell_key}\0{repetition}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


def settings_tag(run: dict[str, Any]) -> str:
    """A short hash of the settings every run shares: a run is only taken as done by a
    campaign with the same time limit, concurrency ... (its store's name holds it)."""
    blob = json.dumps({k: run[k] for k in sorted(run)}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:6]


@dataclass(frozen=True)
class PlannedRun:
    index: int  # position in the whole campaign (shards slice on it)
    cell: Cell
    repetition: int  # 0-based
    seed: int
    settings: str = ""  # settings_tag of the campaign's run settings

    @property
    def id(self) -> str:
        return f"{self.cell.slug}/r{self.repetition}-s{self.seed}-{self.settings}"

    def store(self, campaign_dir: Path) -> Path:
        """The run's own store: nothing else writes there, so it is found again on resume."""
        return Path(campaign_dir) / RUNS_DIR / self.id

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "cell": self.cell.key,
            "repetition": self.repetition,
            "seed": self.seed,
        }


def plan(campaign: Campaign) -> list[PlannedRun]:
    """Every run, cell by cell in the spec's order, repetitions in order."""
    seed = campaign.campaign_seed
    tag = settings_tag(campaign.run)
    runs = []
    for cell in campaign.cells():
        for rep in range(campaign.repeat):
            runs.append(PlannedRun(len(runs), cell, rep, derive_seed(seed, cell.key, rep), tag))
    return runs


def parse_shard(text: str | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``I/N`` (I from 0 to N-1) -> (I, N); ``env/N`` takes I from $JOB_COMPLETION_INDEX
    (Kubernetes Indexed Jobs) or $HARNESS_SHARD_INDEX. None -> (0, 1): the whole campaign."""
    if text is None:
        return 0, 1
    environ = os.environ if environ is None else environ
    accepted = "I/N with 0 <= I < N (e.g. 0/3), or env/N to read I from $JOB_COMPLETION_INDEX"
    i_text, sep, n_text = text.partition("/")
    if not sep:
        raise SpecError(f"--shard takes {accepted} (got {text!r})")
    if i_text.strip() == "env":
        name = next((v for v in SHARD_ENV if environ.get(v, "").strip()), None)
        if name is None:
            raise SpecError(f"--shard {text}: neither {' nor '.join(SHARD_ENV)} is set")
        i_text = environ[name]
    try:
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise SpecError(f"--shard takes {accepted} (got {text!r})") from None
    if not (n >= 1 and 0 <= i < n):
        raise SpecError(f"--shard takes {accepted} (got {i}/{n})")
    return i, n


def shard(runs: list[PlannedRun], i: int, n: int) -> list[PlannedRun]:
    """The I-th of N slices: every N-th run from the I-th, so cells spread over the shards."""
    return [r for r in runs if r.index % n == i]


def run_config(cell: Cell, run: dict[str, Any], seed: int, store: Path) -> RunConfig:
    """The RunConfig of one run of ``cell``. A workload's options go to ``workload_opts`` when
    the run configuration has it, else to the run fields of the same names (ttl_ms, hold_ms)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    kw: dict[str, Any] = {
        "backend": cell.backend.name,
        "backend_opts": {k: option_text(v) for k, v in cell.backend.opts},
        "workload": cell.workload.name,
        "nemesis": cell.nemesis.nemeses,
        "nemesis_opts": {k: option_text(v) for k, v in cell.nemesis.opts},
        "seed": seed,
        "store": Path(store),
        **{k: v for k, v in run.items() if k != "backoff"},
    }
    if "backoff" in run:  # the spec's text, as --backoff takes it
        kw["backoff_ms"] = parse_backoff(run["backoff"])
    if cell.backend.runtime != "local":  # the backend's servers in containers
        kw |= {
            "runtime": cell.backend.runtime,
            "images": dict(cell.backend.images),
            "docker_host": cell.backend.docker_host,
        }
    wopts = cell.workload.options
    if "workload_opts" in names:
        kw["workload_opts"] = wopts
    else:
        unknown = sorted(set(wopts) - names)
        if unknown:
            raise SpecError(f"workload {cell.workload.name} takes no option {', '.join(unknown)}")
        kw.update(wopts)
    return RunConfig(**kw)


# ``harness run``'s flag for each run field (the test parses the commands with the real one).
# Workload options go as --workload-opt when the run configuration has ``workload_opts``;
# before that, the mutex's options were run fields with flags of their own.
FLAGS: dict[str, str] = {
    "nemesis_interval": "--nemesis-interval",
    "concurrency": "--concurrency",
    "keys": "--keys",
    "time_limit": "--time-limit",
    "ops": "--ops",
    "rate": "--rate",
    "seed": "--seed",
    "netns": "--netns",
    "client_groups": "--client-groups",
    "model": "--model",
    "backoff_ms": "--backoff",
    "ttl_ms": "--ttl",
    "hold_ms": "--hold",
    "wait_ms": "--wait",
    "renew_ms": "--renew-every",
    "runtime": "--runtime",
    "docker_host": "--docker-host",
    "docker_netns": "--docker-netns",
}
SWITCHES: dict[str, tuple[str, str | None]] = {  # boolean fields: (on, off)
    "fencing": ("--fencing", "--no-fencing"),
    "check_before_write": ("--check-before-write", None),
}
NOT_FLAGS = {"backend", "backend_opts", "workload", "workload_opts", "nemesis", "nemesis_opts"}
NOT_FLAGS |= {"images"}
NOT_FLAGS |= {"store", "render_report", "toxiproxy"}


def run_argv(cfg: RunConfig) -> list[str]:
    """``harness run`` arguments that perform ``cfg`` (without the program name)."""
    argv = ["run", "--backend", cfg.backend]
    for k, v in cfg.backend_opts.items():
        argv += ["--opt", f"{k}={v}"]
    argv += ["--workload", cfg.workload]
    for k, v in (getattr(cfg, "workload_opts", None) or {}).items():
        argv += ["--workload-opt", f"{k}={option_text(v)}"]
    argv += ["--nemesis", ",".join(cfg.nemesis) or "none"]
    for k, v in cfg.nemesis_opts.items():
        argv += ["--nemesis-opt", f"{k}={v}"]
    for k, v in cfg.images.items():
        argv += ["--image", f"{k}={v}"]
    defaults = RunConfig()
    for f in dataclasses.fields(RunConfig):
        v = getattr(cfg, f.name)
        if f.name in NOT_FLAGS or v is None:
            continue
        if v == getattr(defaults, f.name) and f.name != "seed":
            continue  # the run's own default: a shorter command
        if f.name in SWITCHES:
            on, off = SWITCHES[f.name]
            flag = on if v else off
            if flag:
                argv.append(flag)
        elif f.name in FLAGS:
            text = ",".join(map(str, v)) if isinstance(v, tuple | list) else str(v)
            argv += [FLAGS[f.name], f"{v:g}" if isinstance(v, float) else text]
        else:
            raise SpecError(f"harness run has no flag for {f.name}")
    return [*argv, "--store", str(cfg.store)]


def shown_command(argv: list[str]) -> str:
    return shlex.join(["harness", *argv])
