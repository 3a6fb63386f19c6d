# runpool-executor image: what a Cloud Run Job execution runs.
#   docker build -f deploy/docker/executor.Dockerfile -t runpool-executor .
# Minimal on purpose: an empty image holding only what an execution uses —
# runpool-executor (near-static: libc and libcjson at start; libcurl and
# libcrypto are dlopened for gs:// and a key file, libarchive for workspace
# snapshots), /bin/sh (dash), their shared libraries, the CA bundle and
# user 10001. libarchive is a minimal build of Debian's source package
# (scripts/build-libarchive, pinned in scripts/deps.sh, fetched from
# deb.debian.org): Debian's libarchive13 would bring libxml2 and ICU.
# scripts/executor-rootfs makes that tree; run on the build machine it
# measures the image: 20.2 MB (bench/README.md, "The executor image";
# 59.1 MB with Debian's libarchive13), against ~75 MB for the
# debian:12-slim base alone. It has no package manager and no tools beyond
# the shell's builtins: for sessions that need python3, git, coreutils ...
# build `--target debian` (the same binaries on debian:12-slim, as before)
# or an image FROM that one (keep USER numeric there too). Not built by CI
# (no container engine there).
#
# Base pinned to an exact Debian point release; pin the digest as well for
# reproducible builds: --build-arg DEBIAN=debian:12.12-slim@sha256:...
ARG DEBIAN=debian:12.12-slim

FROM ${DEBIAN} AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libcjson-dev libcurl4-openssl-dev libssl-dev \
      libmicrohttpd-dev libarchive-dev libzstd-dev \
      curl ca-certificates xz-utils patch \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=MinSizeRel \
      -DRP_BUILD_TESTS=OFF -DRP_BUILD_BENCH=OFF \
    && cmake --build /build --target runpool-executor runpool-dump-env \
    && mkdir -p /out \
    && install -s -m 0755 /build/bin/runpool-executor /build/bin/runpool-dump-env /out/ \
    && RP_LIBARCHIVE_PREFIX=/libarchive-min scripts/executor-rootfs /out /rootfs

# The default image: only the executor's file tree (scripts/executor-rootfs).
FROM scratch AS minimal
COPY --from=build /rootfs/ /
USER 10001:10001
ENV RUNPOOL_DEFAULT_CWD=/workspace
ENTRYPOINT ["/usr/local/bin/runpool-executor"]

# `--target debian`: the same binaries on debian:12-slim, for images that
# add tools with apt-get.

FROM ${DEBIAN} AS debian
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

# The last stage is what a plain `docker build` makes: the minimal image.
FROM minimal
