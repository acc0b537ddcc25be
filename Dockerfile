# certinel container image.
#
#   docker build -t certinel .
#   docker run --rm -p 10044:10044 certinel
#   curl -s localhost:10044/metrics | grep x509_cert_not_after
#
# Mount your own configuration over /etc/certinel/config.yaml (or a
# ConfigMap at /etc/certinel in Kubernetes) and the certificates to watch,
# read-only. Examples: deploy/kubernetes/.
#
# Plain Dockerfile syntax only (no BuildKit cache mounts), so it builds the
# same with docker, podman/buildah and kaniko.

# ---------------------------------------------------------------------------
# Build stage: the toolchain certinel is developed and tested with.
# Cargo.toml's `rust-version` is the minimum; this tag is the pinned one.
# Bookworm, because the runtime below is Debian 12: the binary links glibc
# dynamically and must not need a newer glibc than the runtime has.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: it is rebuilt only when the
# manifest, the lock file, build.rs or the benchmarks change, not on every
# source edit. Stub crate roots let cargo compile every dependency (and
# build.rs) without the real sources. Cargo refuses a manifest whose
# [[bench]] files are missing, and loads every workspace member, even though
# `cargo build` compiles none of them: so the (small) bench sources, the
# test certificate factory and the bench tools come along; the
# integration-test target has an explicit path and needs nothing.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
COPY testkit ./testkit
COPY bench/tools ./bench/tools
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && echo '//! stub' > src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# The crate itself. COPY keeps the build context's modification times,
# which may be older than the stub build above: touch the crate roots so
# cargo rebuilds certinel instead of keeping the stub binary.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked

# ---------------------------------------------------------------------------
# Runtime stage: distroless "cc" = glibc + libgcc + CA certificates, no
# shell, no package manager. Chosen over debian:bookworm-slim because
# certinel needs nothing else: it links glibc (hence not distroless/static),
# trusts the system roots from /etc/ssl/certs/ca-certificates.crt (shipped
# here) and needs no tool at run time. The :nonroot tag already defaults to
# uid 65532; USER below repeats it numerically so Kubernetes `runAsNonRoot`
# can verify it.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="certinel" \
      org.opencontainers.image.description="Prometheus exporter for X.509 certificate expiry: certificates on disk and as served by TLS endpoints" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

ENV PATH=/usr/local/bin:/usr/bin:/bin

COPY --from=builder /build/target/release/certinel /usr/local/bin/certinel
# The default configuration: watches the image's own CA bundle so the image
# shows real series out of the box. Mount your own over it.
COPY deploy/container/config.yaml /etc/certinel/config.yaml

USER 65532:65532
EXPOSE 10044

# No HEALTHCHECK: distroless has no shell, curl or wget to run one, and
# Kubernetes ignores HEALTHCHECK anyway. Probe the HTTP endpoints instead:
#   livenessProbe:  httpGet { path: /-/healthy, port: 10044 }
#   readinessProbe: httpGet { path: /-/ready,   port: 10044 }
# /-/ready answers 503 until every source has finished its first pass.
# certinel handles SIGTERM itself (graceful shutdown as PID 1), so no init
# process is needed.
ENTRYPOINT ["certinel"]
CMD ["--config.file=/etc/certinel/config.yaml"]
