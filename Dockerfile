# The harness itself, with Debian's servers: for macOS and Windows users and Kubernetes jobs.
# It runs the local runtime inside the container, which needs NET_ADMIN and SYS_ADMIN (its own
# network namespace and iptables, for partitions):
#
#   docker build -t lockharness .
#   docker run --rm --cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
#       -v "$PWD/store:/work/store" lockharness run -b redlock -n partition
#
# (--privileged also works where the host has every capability; where one is missing, as on
# machines without CAP_SYS_RESOURCE, runc refuses to start a privileged container.)
#
# Offline (no registry, no network inside the build), from the image `harness images build
# harness` makes from Debian packages, with the Python dependencies as wheels in ./wheels
# made beforehand by the Python of that Debian suite:
#   /usr/bin/python3 -m pip wheel --wheel-dir wheels . "setuptools>=68" wheel
#
#   docker build --network host --build-arg BASE=lockharness/harness:bookworm -t lockharness .
ARG BASE=debian:bookworm-slim
FROM ${BASE}

ENV DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
# Skipped when the base already has them (lockharness/harness:SUITE).
RUN if ! command -v redis-server >/dev/null; then \
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
      && apt-get update \
      && apt-get install -y --no-install-recommends redis-server etcd-server zookeeper \
           libslf4j-java postgresql mariadb-server iptables iproute2 gcc libc6-dev python3-venv \
      && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d; \
    fi

COPY . /opt/lockharness/src
RUN python3 -m venv /opt/lockharness/venv \
    && if [ -d /opt/lockharness/src/wheels ]; then \
         /opt/lockharness/venv/bin/pip install --no-cache-dir --no-index \
           --find-links /opt/lockharness/src/wheels /opt/lockharness/src; \
       else \
         /opt/lockharness/venv/bin/pip install --no-cache-dir /opt/lockharness/src; \
       fi \
    && /opt/lockharness/venv/bin/python -c "import harness.clock as c; c.build_shim()"

ENV PATH=/opt/lockharness/venv/bin:/usr/lib/postgresql/15/bin:$PATH
WORKDIR /work
ENTRYPOINT ["harness"]
CMD ["--help"]
