# runpool-executor image: what a Cloud Run Job execution runs.
#   docker build -f deploy/docker/executor.Dockerfile -t runpool-executor .
# Small on purpose (a slim Debian base, one C binary and its shared
# libraries): far below the ~1.2 GB and ~80 s cold start of a Python
# executor image. Add the tools your sessions need (python3, git, ...) in an
# image FROM this one (keep USER numeric there too). Not built by CI (no
# container engine there).
#
# Base pinned to an exact Debian point release; pin the digest as well for
# reproducible builds: --build-arg DEBIAN=debian:12.12-slim@sha256:...
ARG DEBIAN=debian:12.12-slim

FROM ${DEBIAN} AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libcjson-dev libcurl4-openssl-dev libssl-dev \
      libmicrohttpd-dev libarchive-dev libzstd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=MinSizeRel \
      -DRP_BUILD_TESTS=OFF -DRP_BUILD_BENCH=OFF \
    && cmake --build /build --target runpool-executor runpool-dump-env \
    && mkdir -p /out \
    && install -s -m 0755 /build/bin/runpool-executor /build/bin/runpool-dump-env /out/

FROM ${DEBIAN}
RUN apt-get update && apt-get install -y --no-install-recommends \
      libcjson1 libcurl4 libssl3 libarchive13 libzstd1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 sandbox \
    && useradd --create-home --uid 10001 --gid 10001 sandbox \
    && mkdir -p /workspace && chown 10001:10001 /workspace
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# The session's workspace (docs/workspace.md): a new session starts here, and
# the executor restores the session's snapshot into it before the command and
# saves it after (the worker's --workspace sends the same). A saved cwd outside
# it that no longer exists in this fresh container is recreated (empty).
ENV RUNPOOL_WORKSPACE=/workspace
ENTRYPOINT ["/usr/local/bin/runpool-executor"]
