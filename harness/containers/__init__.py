"""Containers: the Docker runtime (``docker_runtime``) and the compose runtime (``compose``), peers
of the local runtime; a Docker engine of the harness's own (in a network namespace it made),
images built from Debian packages without any registry, and leftovers found and removed by
label."""
