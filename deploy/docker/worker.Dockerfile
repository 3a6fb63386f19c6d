# runpool-worker image (also carries runpool-executor for the local backend).
# Build from the repository root:
#   docker build -f deploy/docker/worker.Dockerfile -t runpool-worker .
# Not built by CI (no container engine on the build machines).
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libcjson-dev libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DRP_BUILD_TESTS=OFF -DRP_BUILD_BENCH=OFF \
    && cmake --build /build \
    && cmake --install /build --prefix /opt/runpool

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      librdkafka1 libcjson1 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 runpool
COPY --from=build /opt/runpool/bin/ /usr/local/bin/
USER runpool
# SIGTERM drains: in-flight executions finish for up to RUNPOOL_DRAIN_TIMEOUT.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/runpool-worker"]
