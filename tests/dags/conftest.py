"""DAG integrity tests parse the DAG folder with the session's Airflow home."""

from __future__ import annotations

from tests.airflow.env import configure

configure()
