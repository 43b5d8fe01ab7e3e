# syntax=docker/dockerfile:1
# Every Postline image, one per service, from this one file. The build context is the
# repository root and the build argument SERVICE picks the service:
#
#   docker build --build-arg SERVICE=ingress -t postline-ingress .
#
# SERVICE is one of ingress, scheduler, sender, bounce, reports, or simulator (the destination
# simulator, development only). The builder installs exactly what uv.lock pins for that one
# workspace member (`uv sync --frozen --package postline-<SERVICE>`), so an image carries its
# own service's dependencies and nothing else: ClickHouse support (clickhouse-connect) is in
# the reports and bounce images only, the embedded engine (chdb) in none.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim
ARG SERVICE

# The console's charting library, from npm by its lock file (the reports image only).
FROM ${NODE_IMAGE} AS console-assets
WORKDIR /console
COPY services/reports/console/package.json services/reports/console/package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev

FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
ARG UV_VERSION=0.13.9
RUN test -n "${SERVICE}" \
    || { echo "build with --build-arg SERVICE=<ingress|scheduler|sender|bounce|reports|simulator>" >&2; exit 1; }
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Third-party dependencies first, from the lock alone: this layer is reused until uv.lock or
# the root pyproject.toml changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "postline-${SERVICE}"
# Then the workspace members. --no-editable installs them into the venv as regular packages,
# so the runtime stage needs the venv only.
COPY packages/ packages/
COPY services/ services/
COPY tools/ tools/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "postline-${SERVICE}"

# What every image shares: the venv, a fixed non-root uid, the OCI labels.
FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG SERVICE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="postline-${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.vendor="Postline" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# A fixed numeric uid, so Kubernetes can check runAsNonRoot without resolving a name; reports'
# ingest journal's directory is the user's (a volume mounted there starts owned by it).
RUN groupadd --system --gid 10001 postline \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin postline \
    && mkdir -p /var/lib/postline/journal && chown 10001:10001 /var/lib/postline/journal
COPY --from=builder /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001

# One short stage per service: what it listens on inside a container (every interface; the
# local defaults are loopback), the ports it exposes, its entry point.
FROM runtime AS ingress
LABEL org.opencontainers.image.description="Postline ingress: SMTP relay and the send API (HTTP JSON + gRPC)"
ENV POSTLINE_SMTP_LISTEN=0.0.0.0:2525 \
    POSTLINE_HTTP_LISTEN=0.0.0.0:8025 \
    POSTLINE_GRPC_LISTEN=0.0.0.0:50051
EXPOSE 2525 8025 50051
ENTRYPOINT ["python", "-m", "postline.ingress"]

FROM runtime AS scheduler
LABEL org.opencontainers.image.description="Postline scheduler: policy, per-domain speed, retries, routes"
ENV POSTLINE_GRPC_LISTEN=0.0.0.0:50052 \
    POSTLINE_HEALTH_LISTEN=0.0.0.0:9102
EXPOSE 50052 9102
ENTRYPOINT ["python", "-m", "postline.scheduler"]

FROM runtime AS sender
LABEL org.opencontainers.image.description="Postline sender: SMTP delivery to destination MX hosts"
ENV POSTLINE_HEALTH_LISTEN=0.0.0.0:9103
EXPOSE 9103
ENTRYPOINT ["python", "-m", "postline.sender"]

FROM runtime AS bounce
LABEL org.opencontainers.image.description="Postline bounce: reply and bounce classification, suppression list"
ENV POSTLINE_SMTP_LISTEN=0.0.0.0:2526 \
    POSTLINE_GRPC_LISTEN=0.0.0.0:50053 \
    POSTLINE_HEALTH_LISTEN=0.0.0.0:9104
EXPOSE 2526 50053 9104
ENTRYPOINT ["python", "-m", "postline.bounce"]

FROM runtime AS reports
LABEL org.opencontainers.image.description="Postline reports: ClickHouse reports, web console and reports API"
COPY --from=console-assets /console/node_modules /app/console/node_modules
ENV POSTLINE_HTTP_LISTEN=0.0.0.0:8080 \
    POSTLINE_GRPC_LISTEN=0.0.0.0:50054 \
    POSTLINE_CONSOLE_ASSETS=/app/console/node_modules
EXPOSE 8080 50054
ENTRYPOINT ["python", "-m", "postline.reports"]

FROM runtime AS simulator
LABEL org.opencontainers.image.description="Postline destination simulator (development and tests only)"
EXPOSE 2600 2601
ENTRYPOINT ["python", "-m", "postline.simulator"]
CMD ["--smtp", "0.0.0.0:2600", "--control", "0.0.0.0:2601"]

# The image built: the stage named by SERVICE (the last stage is what `docker build` makes).
FROM ${SERVICE}
