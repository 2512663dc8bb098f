# The gridmap app for deployment beside a PostGIS (see docker-compose.yml).
FROM python:3.11-slim
# pg_dump and pg_restore for `gridmap backup` and `gridmap restore` (the server's major version: 15)
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geo ./geo
COPY api ./api
COPY maps ./maps
COPY cli ./cli
COPY data ./data
RUN pip install --no-cache-dir .
# the sample district is read from the source tree; keep it next to the installed package
ENV PYTHONPATH=/app
# `gridmap init` makes the schema; the sample district only when asked (GRIDMAP_INIT_ARGS="")
ENV GRIDMAP_INIT_ARGS=--no-sample \
    GRIDMAP_INDEX_DIR=/var/lib/gridmap/index \
    WORKERS=2
EXPOSE 8000
# waits up to 60 s for the database (a container starting beside it), then serves; compose restarts
# it if it stops
CMD ["sh", "-c", "gridmap init --wait 60 $GRIDMAP_INIT_ARGS && exec gridmap serve --host 0.0.0.0 --port 8000 --workers $WORKERS"]
