# syntax=docker/dockerfile:1.7
# One image recipe for every Python component of the workspace; build arguments say which. From the
# repository root, e.g.
#   docker build --build-arg PACKAGE=import-svc --build-arg MEMBER_DIR=services/import-svc \
#     --build-arg ENV_PREFIX=IMPORT_SVC_ --build-arg PORT=8102 \
#     --build-arg APT_PACKAGES="tesseract-ocr tesseract-ocr-eng" -t corral/import-svc:dev .
# docker-compose.yml holds the arguments of each component (deploy/README.md lists them too).
# The Salesforce emulator keeps a Dockerfile of its own: no crm-common, two ports, its own settings.
ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- build: resolve from uv.lock into /app/.venv -------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# The uv workspace package (its `[project] name`) and its directory in the repository.
ARG PACKAGE
ARG MEMBER_DIR
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Third-party dependencies first, in their own layer: uv needs the lockfile and every workspace
# member's pyproject.toml to read the workspace, but none of the sources yet.
COPY pyproject.toml uv.lock ./
COPY libs/crm-common/pyproject.toml libs/crm-common/
COPY services/records-svc/pyproject.toml services/records-svc/
COPY services/import-svc/pyproject.toml services/import-svc/
COPY services/merge-svc/pyproject.toml services/merge-svc/
COPY services/sync-svc/pyproject.toml services/sync-svc/
COPY gateway/pyproject.toml gateway/
COPY tools/salesforce-emulator/pyproject.toml tools/salesforce-emulator/
COPY tools/devtools/pyproject.toml tools/devtools/
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${PACKAGE}" && test -n "${MEMBER_DIR}" \
    && uv sync --frozen --no-dev --package ${PACKAGE} --no-install-workspace

# Then the workspace code this component needs.
COPY libs/crm-common libs/crm-common
COPY ${MEMBER_DIR} ${MEMBER_DIR}
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package ${PACKAGE}
# The workspace code is installed editable (see below), so compile it here: the runtime
# filesystem is read-only and PYTHONDONTWRITEBYTECODE is set.
RUN python -m compileall -q libs/crm-common/src ${MEMBER_DIR}/src

# ---- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# Debian packages the component shells out to. import-svc: tesseract-ocr tesseract-ocr-eng for
# business-card OCR (pytesseract runs it; zxing-cpp's wheel is self-contained, so no libzbar).
ARG APT_PACKAGES=""
RUN if [ -n "$APT_PACKAGES" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends $APT_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN groupadd --system --gid 10001 corral \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin corral
WORKDIR /app
# Root-owned and read-only for the process: the app writes only to /tmp and mounted volumes.
# <member>/alembic.ini and <member>/migrations/ come with the member directory: the `<script>-migrate`
# command finds them relative to its editable source tree, which is why the workspace members stay
# editable installs at their repository paths.
COPY --from=builder /app /app
# The command the container runs (the package's script), the prefix of its settings and its port.
ARG SCRIPT
ARG ENV_PREFIX
ARG PORT
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ${ENV_PREFIX}HOST=0.0.0.0 \
    ${ENV_PREFIX}PORT=${PORT} \
    CORRAL_COMMAND=${SCRIPT} \
    CORRAL_PORT_VARIABLE=${ENV_PREFIX}PORT
USER 10001:10001
EXPOSE ${PORT}
# No curl in slim images: python is already there. The port is read at run time, so a port set by
# the environment (compose, Kubernetes) is the one probed.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ[os.environ['CORRAL_PORT_VARIABLE']], timeout=4)"]
# exec: the script is PID 1 and gets the stop signal. Compose and Kubernetes may name another
# command (`<script>-migrate`).
CMD ["/bin/sh", "-c", "exec \"$CORRAL_COMMAND\""]
