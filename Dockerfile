# Image for docker-compose.yml / Kubernetes. Not used by the tests.
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && mkdir -p /vendor && cp node_modules/htmx.org/dist/htmx.min.js /vendor/

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY --from=assets /vendor ./static/vendor
RUN pip install --no-cache-dir -c requirements.lock -e . \
    && useradd --system --home /data audit-timeline && mkdir -p /data && chown audit-timeline /data
USER audit-timeline
ENV AUDIT_TIMELINE_DATA_DIR=/data AUDIT_TIMELINE_HOST=0.0.0.0
EXPOSE 8000
CMD ["audit-timeline", "serve"]
