# driftloop trainer image: the base image of the KFP retrain pipeline's components (load,
# validate, train, evaluate, register, deploy) and of the bootstrap Job.
#
# Build from the repository root:  docker build -f docker/trainer.Dockerfile -t "$DRIFTLOOP_TRAINER_IMAGE" .
# (image names and tags: docker/images.env)
#
# The `pipelines` extra carries kfp==2.17.0 with kubernetes 36.x (the uv override in
# pyproject.toml, as in the dev environment). driftloop's components are built with
# install_kfp_package=False and no packages_to_install, so each step runs on exactly this
# venv (`python3` on PATH); pip is seeded anyway for components that do install packages.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# uv's image (overridable: `make images` on a machine without a registry builds a local one
# from uv's PyPI wheel, scripts/images/bases.sh).
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- build: resolve exactly what uv.lock pins for the `pipelines` extra ---------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-emit-project --extra pipelines -o /tmp/requirements.txt \
 && uv venv --seed /opt/venv \
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

# --- runtime --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 10001 driftloop \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/driftloop --shell /bin/sh driftloop
COPY --from=build /opt/venv /opt/venv
COPY specs /opt/driftloop/specs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DRIFTLOOP_SPEC_PATH=/opt/driftloop/specs/iris.yaml \
    DRIFTLOOP_STATE_DIR=/home/driftloop/.driftloop
USER 10001:10001
WORKDIR /home/driftloop
# A batch image: KFP and the bootstrap Job give the command; no long-running service to probe.
CMD ["driftloop", "--help"]
