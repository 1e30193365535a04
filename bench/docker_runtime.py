"""What the Docker runtime costs, on a private engine (dockerd in a namespace of its own).

    .venv/bin/python bench/docker_runtime.py        # as root, after `harness images build`

Prints: the private engine's start and teardown, the import of each cached image into a fresh
engine, and per cluster (redis x1, etcd x3, postgres x1) the time from ``DockerRuntime.start``
to ready, a kill and restart of one node to ready, a ``docker pause`` and ``unpause``, and the
cluster's ``close()``. Figures include the machine's load.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import print_load  # noqa: E402
from harness.containers import images  # noqa: E402
from harness.containers.docker_runtime import DockerRuntime  # noqa: E402
from harness.containers.engine import Engine, PrivateEngine  # noqa: E402
from harness.net.netns import joined  # noqa: E402

CLUSTERS = {"redis": 1, "etcd": 3, "postgres": 1}


def timed(fn) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def main() -> None:
    print_load("docker_runtime")
    for kind in CLUSTERS:
        images.build(kind)
    t = time.monotonic()
    eng = PrivateEngine().start()
    print(f"private engine start:      {time.monotonic() - t:6.2f} s")
    try:
        for kind in CLUSTERS:
            took = timed(lambda k=kind: images.ensure(eng.client, images.tag_for(k)))
            print(f"import {images.tag_for(kind):26} {took:6.2f} s")
        with joined(eng.netns):
            for kind, n in CLUSTERS.items():
                with tempfile.TemporaryDirectory(prefix="bench-docker-") as d:
                    engine = Engine(eng.client, eng.netns, eng.url)
                    rt = DockerRuntime(Path(d), engine, {kind: images.tag_for(kind)})
                    t = time.monotonic()
                    cluster = rt.start(kind, n)
                    up = time.monotonic() - t
                    node = cluster.nodes[0]

                    def restart(c=cluster, nd=node) -> None:
                        c.kill_node(nd)
                        c.start_node(nd)
                        c.wait_ready([nd])

                    again = timed(restart)
                    pause = timed(lambda c=cluster, nd=node: c.pause_node(nd))
                    resume = timed(lambda c=cluster, nd=node: c.resume_node(nd))
                    close = timed(rt.close)
                    print(
                        f"{kind} x{n}: ready {up:5.2f} s, kill+restart {again:5.2f} s, "
                        f"pause {pause * 1000:4.0f} ms, unpause {resume * 1000:4.0f} ms, "
                        f"close {close:5.2f} s"
                    )
    finally:
        t = time.monotonic()
        eng.close()
        print(f"private engine teardown:   {time.monotonic() - t:6.2f} s")


if __name__ == "__main__":
    main()
