# syntax=docker/dockerfile:1
# Container images of the two binaries, one target each:
#
#   docker build --target operator  -t ghcr.io/switchyard-dev/switchyard-operator:0.1.0 .
#   docker build --target dataplane -t ghcr.io/switchyard-dev/switchyard-dataplane:0.1.0 .
#
# Both are built in one Rust stage (rustls with ring: no OpenSSL; SQLite is compiled in by
# libsqlite3-sys) and copied onto distroless/cc (glibc, libgcc and the CA certificates the
# upstream TLS verifier reads; no shell, no package manager), running as the fixed non-root
# uid/gid 65532, with nothing to write outside the volumes the manifests mount (config/,
# charts/switchyard), so the root filesystem can be read-only.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
# make: the data plane's allocator (jemalloc, via tikv-jemalloc-sys) is built from source.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Release profile of the workspace, with the debug line tables dropped from the image
# (symbols stay, so backtraces still name functions).
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    CARGO_TERM_COLOR=never
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin switchyard-operator --bin switchyard-dataplane \
 && install -D -m 0755 target/release/switchyard-operator /out/switchyard-operator \
 && install -D -m 0755 target/release/switchyard-dataplane /out/switchyard-dataplane

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/switchyard-operator /usr/local/bin/switchyard-operator
USER 65532:65532
# Health and metrics, data-plane channel (TLS), REST facade (TLS).
EXPOSE 8080 8443 8444
ENTRYPOINT ["/usr/local/bin/switchyard-operator"]

FROM gcr.io/distroless/cc-debian12:nonroot AS dataplane
COPY --from=build /out/switchyard-dataplane /usr/local/bin/switchyard-dataplane
USER 65532:65532
# API, health and metrics.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchyard-dataplane"]
