# runpool-worker image (also carries runpool-executor, for the local
# backend of deploy/k8s/dev/). Build from the repository root (the
# .dockerignore there keeps build trees, .tools and node_modules out of the
# context):
#   docker build -f deploy/docker/worker.Dockerfile -t runpool-worker .
# Not built by CI (no container engine on the build machines).
#
# Base: Debian 12 pinned to an exact point-release tag. For byte-for-byte
# reproducible builds pin the digest too (docker buildx imagetools inspect
# debian:12.12-slim) and pass it: --build-arg DEBIAN=debian:12.12-slim@sha256:...
ARG DEBIAN=debian:12.12-slim

FROM ${DEBIAN} AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libcjson-dev libcurl4-openssl-dev libssl-dev \
      libmicrohttpd-dev libarchive-dev libzstd-dev \
      liblz4-dev libsasl2-dev ca-certificates curl xz-utils patch \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# librdkafka: Debian's 2.0.2 source with the upstream main-loop fix
# (scripts/build-librdkafka, README "Dependencies"); the programs find it
# in /opt/librdkafka/lib through their RUNPATH.
RUN scripts/build-librdkafka /opt/librdkafka \
    && strip --strip-unneeded /opt/librdkafka/lib/librdkafka.so.1
# Only the programs a worker pod runs: no dev broker, no benchmark, no tests.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DRP_BUILD_TESTS=OFF -DRP_BUILD_BENCH=OFF \
      -DRP_LIBRDKAFKA_PREFIX=/opt/librdkafka \
    && cmake --build /build --target runpool-worker runpool-executor \
         runpool-dump-env runpool-produce \
    && mkdir -p /out \
    && install -s -m 0755 /build/bin/runpool-worker /build/bin/runpool-executor \
         /build/bin/runpool-dump-env /build/bin/runpool-produce /out/

FROM ${DEBIAN}
RUN apt-get update && apt-get install -y --no-install-recommends \
      libcjson1 libcurl4 libssl3 libmicrohttpd12 \
      libarchive13 libzstd1 liblz4-1 libsasl2-2 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 runpool \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
         --home-dir /nonexistent --shell /usr/sbin/nologin runpool
COPY --from=build /out/ /usr/local/bin/
COPY --from=build /opt/librdkafka/lib/librdkafka.so.1 /opt/librdkafka/lib/
# Numeric: Kubernetes' runAsNonRoot can only verify a numeric USER.
USER 10001:10001
EXPOSE 9464
# SIGTERM drains: in-flight executions finish for up to --drain-timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/runpool-worker"]
