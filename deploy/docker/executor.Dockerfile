# runpool-executor image: what a Cloud Run Job execution runs.
#   docker build -f deploy/docker/executor.Dockerfile -t runpool-executor .
# Small on purpose (a slim Debian base, one C binary and three shared
# libraries): far below the ~1.2 GB and ~80 s cold start of a Python
# executor image. Add the tools your sessions need (python3, git, ...) in an
# image FROM this one. Not built by CI (no container engine there).
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libcjson-dev libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=MinSizeRel \
      -DRP_BUILD_TESTS=OFF -DRP_BUILD_BENCH=OFF \
    && cmake --build /build --target runpool-executor \
    && cmake --build /build --target runpool-dump-env \
    && strip /build/bin/runpool-executor /build/bin/runpool-dump-env

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libcjson1 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 sandbox \
    && mkdir -p /workspace && chown sandbox /workspace
COPY --from=build /build/bin/runpool-executor /build/bin/runpool-dump-env /usr/local/bin/
USER sandbox
# A new session starts here; a saved cwd that no longer exists in this fresh
# container is recreated (empty) by the executor.
ENV RUNPOOL_DEFAULT_CWD=/workspace
ENTRYPOINT ["/usr/local/bin/runpool-executor"]
