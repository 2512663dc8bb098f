# The gridmap app for deployment beside a PostGIS (see docker-compose.yml).
FROM python:3.11-slim
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
EXPOSE 8000
CMD ["sh", "-c", "gridmap init && gridmap serve --host 0.0.0.0 --port 8000"]
