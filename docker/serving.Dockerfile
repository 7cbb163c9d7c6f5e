# driftloop serving image: `driftloop serve` (FastAPI + the ML stack to load the champion).
# Also runs the in-cluster MLflow server (k8s/base/mlflow.yaml): it carries mlflow and the
# psycopg driver, which the upstream MLflow image lacks.
#
# Build from the repository root:  docker build -f docker/serving.Dockerfile -t "$DRIFTLOOP_SERVING_IMAGE" .
# (image names and tags: docker/images.env)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# uv's image (overridable: `make images` on a machine without a registry builds a local one
# from uv's PyPI wheel, scripts/images/bases.sh).
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- build: resolve exactly what uv.lock pins for the `serving` extra -----------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /src
COPY pyproject.toml uv.lock ./
# The dependency layer is cached until pyproject.toml or uv.lock change.
RUN uv export --frozen --no-dev --no-emit-project --extra serving -o /tmp/requirements.txt \
 && uv venv /opt/venv \
 && uv pip install --python /opt/venv/bin/python --require-hashes --no-deps -r /tmp/requirements.txt
# README.md is the wheel's description: copied after the dependency layer, whose cache
# then lasts until pyproject.toml or uv.lock change.
COPY README.md ./
COPY driftloop ./driftloop
COPY serving ./serving
COPY kfp_pipelines ./kfp_pipelines
COPY driftloop_airflow ./driftloop_airflow
RUN uv build --wheel --out-dir /tmp/dist \
 && uv pip install --python /opt/venv/bin/python --no-deps /tmp/dist/*.whl

# --- runtime: the venv, the specs, a non-root user ------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 10001 driftloop \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin driftloop
COPY --from=build /opt/venv /opt/venv
COPY specs /opt/driftloop/specs
COPY docker/healthcheck.py /opt/driftloop/healthcheck.py
# HOME=/tmp: the pods run with a read-only root filesystem and an emptyDir on /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    DRIFTLOOP_SPEC_PATH=/opt/driftloop/specs/iris.yaml \
    DRIFTLOOP_STATE_DIR=/var/lib/driftloop \
    DRIFTLOOP_HOST=0.0.0.0 \
    DRIFTLOOP_PORT=8000
RUN install -d -o driftloop -g driftloop /var/lib/driftloop
USER 10001:10001
WORKDIR /var/lib/driftloop
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/opt/driftloop/healthcheck.py"]
CMD ["driftloop", "serve"]
