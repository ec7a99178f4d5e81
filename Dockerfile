# Setlist in a container: the `setlist` binary, the DAG folder, the dbt project and a
# dbt virtualenv, run as a non-root user. docker-compose.yml starts it with PostgreSQL,
# Kafka and MinIO; scripts/deploy-check.sh lints this file and keeps its pins in step
# with scripts/ (dbt versions, the web port).
#
#   docker build -t setlist .
#   docker run --rm -p 127.0.0.1:8080:8080 -e DATABASE_URL=postgres://... setlist
#
# No secret is baked in: DATABASE_URL, SETLIST_API_TOKEN, AWS_* and SNOWFLAKE_* come
# from the environment at run time (README, "Configuration").

# The toolchain the project is developed and tested with (DESIGN.md, "Toolchain"), on
# the same Debian release as the runtime stage, so the binary links the same glibc.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# rdkafka-sys builds librdkafka from source (make, a C/C++ compiler) and links the
# system zlib (pkg-config, zlib1g-dev); aws-lc-sys falls back to cmake.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, from the manifests alone, so a source change reuses this layer:
# stub targets let cargo build every dependency of the binary.
COPY Cargo.toml Cargo.lock ./
COPY orchestrator/Cargo.toml orchestrator/
COPY tasks/Cargo.toml tasks/
COPY web/Cargo.toml web/
COPY bench/Cargo.toml bench/
COPY broker/Cargo.toml broker/
RUN mkdir -p src orchestrator/src tasks/src web/src bench/src broker/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && echo 'fn main() {}' > broker/src/main.rs \
    && touch src/lib.rs orchestrator/src/lib.rs tasks/src/lib.rs web/src/lib.rs \
    && cargo build --release --locked -p setlist --bin setlist \
    && rm -rf src orchestrator/src tasks/src web/src bench/src broker/src
COPY . .
# COPY keeps the files' own mtimes, which can be older than the stubs' build: touch the
# crate roots so cargo rebuilds the workspace crates from the real sources.
RUN touch src/main.rs src/lib.rs orchestrator/src/lib.rs tasks/src/lib.rs web/src/lib.rs \
    && cargo build --release --locked -p setlist --bin setlist \
    && strip target/release/setlist

# ---------------------------------------------------------------------------------------
# dbt in a virtualenv, built on the runtime's own Debian and Python so it can be copied
# over as is; pip and python3-venv stay behind in this stage.
FROM debian:${DEBIAN_RELEASE}-slim AS dbt
# The same pins as scripts/dbt.sh (scripts/deploy-check.sh compares them).
ARG DBT_CORE_VERSION=1.11.16
ARG DBT_POSTGRES_VERSION=1.10.2
ARG DBT_SNOWFLAKE_VERSION=1.10.8
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/dbt \
    && /opt/dbt/bin/pip install --no-cache-dir \
        "dbt-core==${DBT_CORE_VERSION}" \
        "dbt-postgres==${DBT_POSTGRES_VERSION}" \
        "dbt-snowflake==${DBT_SNOWFLAKE_VERSION}" \
    && /opt/dbt/bin/dbt --version

# ---------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# What the binary and dbt need at run time: CA roots for S3 and Snowflake over TLS
# (rustls reads the system store), zlib (librdkafka is linked statically into the
# binary, zlib is not), and the Python the dbt virtualenv was made with. Python also
# runs the HEALTHCHECK, so no curl.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 setlist \
    && useradd --system --uid 10001 --gid setlist --home-dir /var/lib/setlist \
        --create-home --shell /usr/sbin/nologin setlist
COPY --from=dbt /opt/dbt /opt/dbt
COPY --from=build /src/target/release/setlist /usr/local/bin/setlist
# Fails the build here, not at run time, when a shared library is missing.
RUN setlist --version
# DAGs and the dbt project stay root-owned and read-only; dbt writes its logs to /tmp
# and its target folder per task to the temp dir (tasks/src/dbt.rs).
COPY dags /opt/setlist/dags
COPY dbt /opt/setlist/dbt
ENV SETLIST_DAGS_DIR=/opt/setlist/dags \
    SETLIST_DBT=/opt/dbt/bin/dbt \
    SETLIST_DBT_PROJECT=/opt/setlist/dbt \
    DBT_LOG_PATH=/tmp/dbt-logs \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false
# The working folder holds what setlist keeps on disk when it is not told otherwise:
# .setlist/api-token without SETLIST_API_TOKEN, .setlist/lake without SETLIST_STORE_URL.
WORKDIR /var/lib/setlist
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["setlist"]
# Inside a container the web server must listen on every interface to be reachable
# through a published port; the scripts keep 127.0.0.1 on a developer's machine.
CMD ["standalone", "--web", "0.0.0.0:8080"]
