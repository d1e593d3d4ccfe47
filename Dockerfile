# syntax=docker/dockerfile:1
# keyward service image: `docker build -t keyward .`, or `docker compose up --build`.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io registry and build artefacts between builds; the
# binary is copied out of the cached target dir within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin keyward \
    && install -m 0755 target/release/keyward /usr/local/bin/keyward

FROM debian:bookworm-slim
# ca-certificates: TLS to chain RPC endpoints and SMTP servers. Unpinned on purpose:
# it should carry the distribution's current roots.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# /data is created and owned before VOLUME so a fresh named volume inherits the ownership.
RUN groupadd --system --gid 10001 keyward \
    && useradd --system --uid 10001 --gid keyward --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin keyward \
    && mkdir /data && chown keyward:keyward /data
COPY --from=build /usr/local/bin/keyward /usr/local/bin/keyward
ENV KEYWARD_DATA_DIR=/data \
    KEYWARD_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
# Numeric, so runtimes that enforce non-root (Kubernetes runAsNonRoot) can verify it.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["keyward"]
CMD ["serve"]
