# syntax=docker/dockerfile:1
# tfo-agent container image: a Rust builder stage, then a minimal runtime (distroless
# cc: glibc, libgcc, CA certificates, no shell, no package manager).
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg TFO_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t telemetryflow/tfo-agent:0.2.0 .
#
# Multi-arch: nothing names an architecture; each platform's stages run natively (or
# emulated), and the BPF objects are committed, so no clang is needed.
# Reproducible: Cargo.lock (--locked), a pinned toolchain, SOURCE_DATE_EPOCH and no host
# paths in the binary; for a release pin both base images by digest, e.g.
#   --build-arg RUST_IMAGE=rust:1.95-slim-bookworm@sha256:... --build-arg RUNTIME_IMAGE=...@sha256:...
# The same binary and command line are tested without a container engine by
# crates/tfo-agent/tests/deploy.rs (docs/install.md, "Container").

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:latest

FROM ${RUST_IMAGE} AS builder
ARG TFO_GIT_COMMIT=unknown
ARG SOURCE_DATE_EPOCH=0
ENV TFO_GIT_COMMIT=${TFO_GIT_COMMIT} \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    RUSTFLAGS="--remap-path-prefix=/src=. --remap-path-prefix=/usr/local/cargo=cargo"
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tfo-agent \
    && install -D -m 0755 target/release/tfo-agent /out/usr/bin/tfo-agent \
    && install -d -m 0755 /out/var/lib/tfo-agent

FROM ${RUNTIME_IMAGE}
ARG TFO_GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="tfo-agent" \
      org.opencontainers.image.description="TelemetryFlow Agent: host, Kubernetes and eBPF telemetry shipped as OTLP" \
      org.opencontainers.image.version="0.2.0" \
      org.opencontainers.image.revision="${TFO_GIT_COMMIT}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="TelemetryFlow"
COPY --from=builder /out/ /
COPY configs/tfo-agent.yaml /etc/tfo-agent/tfo-agent.yaml
# The buffer and agent id: mount a volume (or the node's /var/lib/tfo-agent) here so a
# new container keeps both.
VOLUME ["/var/lib/tfo-agent"]
# Self-metrics and health listen on loopback by default (configs/tfo-agent.yaml).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/bin/tfo-agent", "--config", "/etc/tfo-agent/tfo-agent.yaml", "health"]
ENTRYPOINT ["/usr/bin/tfo-agent"]
CMD ["--config", "/etc/tfo-agent/tfo-agent.yaml", "run"]
