# syntax=docker/dockerfile:1
# The production image of audit-timeline (docker-compose.yml, the Helm chart, deploy/kubernetes).
# Three stages: front-end assets from the pinned npm packages, a virtualenv with the pinned
# Python packages, and a slim runtime with neither npm nor pip that runs as a non-root user.
# Base images are pinned to exact releases; pin them by digest too in your own registry.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS assets
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/vendor-assets scripts/vendor-assets
# htmx (and whatever else scripts/vendor-assets copies) into static/vendor/; no CDN at run time.
RUN scripts/vendor-assets

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY app ./app
# Editable: the app finds migrations/, templates/ and static/ beside app/ (app.PROJECT_DIR).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet -c requirements.lock -e . \
    && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools

FROM ${PYTHON_IMAGE}
RUN python -m pip uninstall --quiet --yes pip setuptools wheel \
    && groupadd --system --gid 10001 audit-timeline \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin audit-timeline \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY alembic.ini ./
COPY --from=assets /src/static/vendor ./static/vendor
# Byte-code compiled now: the root filesystem is read-only in the cluster.
RUN /opt/venv/bin/python -m compileall -q /app/app /app/migrations
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUDIT_TIMELINE_DATA_DIR=/data \
    AUDIT_TIMELINE_HOST=0.0.0.0 \
    AUDIT_TIMELINE_PORT=8000 \
    AUDIT_TIMELINE_LOG_FORMAT=json \
    AUDIT_TIMELINE_REQUIRE_DATABASE_URL=true
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# /healthz: the process serves (not /readyz: a database outage is answered with 503 + Retry-After,
# restarting the container would not help). Over HTTPS when TLS_CERTFILE is set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('AUDIT_TIMELINE_TLS_CERTFILE')); u.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('AUDIT_TIMELINE_PORT', '8000') + '/healthz', timeout=4, context=ssl._create_unverified_context() if tls else None)"]
CMD ["audit-timeline", "serve"]
