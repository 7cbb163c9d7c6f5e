"""driftloop's Airflow package: hooks, operators, sensors, triggers and a notifier.

An installed package (in the project's wheel), not an Airflow plugin: the DAGs import it like
any library, so the plugins folder stays empty and needs no ``.airflowignore``.

One concept per module, laid out like an Airflow provider. Nothing here imports the ML stack
(scikit-learn, MLflow, the kfp SDK): Airflow talks HTTP to the driftloop server and to
Kubeflow Pipelines, and validates windows with Great Expectations imported lazily.
"""

from __future__ import annotations
