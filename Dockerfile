# rokt-mock in a container, for partner CI (docs/ci.md).
#
#   docker build -t rokt-mock .
#   docker run --rm -p 8080:8080 -e ROKT_MOCK_ADMIN_TOKEN=change-me rokt-mock
#
# Inside the container the mock binds 0.0.0.0, so it refuses to start without an admin token:
# pass ROKT_MOCK_ADMIN_TOKEN (never bake one into the image). Every other setting is a
# ROKT_MOCK_* variable as well (docs/configuration.md). Change the port with ROKT_MOCK_PORT,
# not --port, so the health check follows. The image also runs the contract kit:
# `docker run ... rokt-mock contract doctor --sender CMD`.

# Stage 1: build the wheel from the checkout (.dockerignore keeps the context to its sources).
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# Stage 2: the wheel and its dependencies, nothing else; runs as an unprivileged user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    ROKT_MOCK_PORT=8080
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && groupadd --gid 10001 rokt \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/rokt \
        --shell /usr/sbin/nologin rokt
USER 10001:10001
# The journal goes to .rokt-mock/journal.sqlite3 under here (ROKT_MOCK_JOURNAL changes it).
WORKDIR /home/rokt
EXPOSE 8080
# slim has no curl: ask the health probe with Python's urllib (any non-2xx or no answer fails).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; t = os.environ.get('ROKT_MOCK_ADMIN_TOKEN'); u.urlopen(u.Request('http://127.0.0.1:' + os.environ.get('ROKT_MOCK_PORT', '8080') + '/__admin/health', headers={'X-Rokt-Mock-Admin-Token': t} if t else {}), timeout=2)"]
ENTRYPOINT ["rokt-mock"]
CMD ["serve", "--host", "0.0.0.0"]
