# driftloop Airflow image: the official Apache Airflow image of the pinned version, plus what
# driftloop's DAGs and plugins need (the `airflow` extra and the light core of driftloop:
# settings, spec, expectations) and its Airflow package `driftloop_airflow` (in the wheel), with
# the DAGs baked in. No kfp SDK (runs are
# submitted over KFP's REST API), no MLflow, no scikit-learn.
#
# Build from the repository root:  docker build -f docker/airflow.Dockerfile -t "$DRIFTLOOP_AIRFLOW_IMAGE" .
# (image names and tags: docker/images.env; the Airflow version must match pyproject.toml)

ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
# Build-stage bases (overridable: `make images` on a machine without a registry builds local
# ones, scripts/images/bases.sh).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- build: the locked requirement set of the `airflow` extra, and driftloop as a wheel -----
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-emit-project --extra airflow -o /tmp/requirements.txt
# README.md is the wheel's description: copied after the dependency layer, whose cache
# then lasts until pyproject.toml or uv.lock change.
COPY README.md ./
COPY driftloop ./driftloop
COPY serving ./serving
COPY kfp_pipelines ./kfp_pipelines
COPY driftloop_airflow ./driftloop_airflow
RUN uv build --wheel --out-dir /tmp/dist

# --- runtime: the official image, as its own user ------------------------------------------
FROM ${AIRFLOW_IMAGE}
# The requirement set pins apache-airflow==3.3.2 itself (the version this image ships), so
# pip cannot upgrade or downgrade Airflow; every other pin is the one the dev environment
# tests against. Hash-checked.
COPY --from=build /tmp/requirements.txt /tmp/driftloop-requirements.txt
COPY --from=build /tmp/dist/ /tmp/dist/
RUN pip install --no-cache-dir --require-hashes -r /tmp/driftloop-requirements.txt \
 && pip install --no-cache-dir --no-deps /tmp/dist/driftloop-*.whl
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
# The compiled retrain pipeline the KFP hook submits (connection driftloop_kfp, extra
# `pipeline_package`): the very package scripts/minikube-up.sh uploads.
COPY --chown=airflow:0 kfp_pipelines/retrain_pipeline.yaml /opt/airflow/pipelines/retrain_pipeline.yaml
ENV AIRFLOW__CORE__LOAD_EXAMPLES=False
