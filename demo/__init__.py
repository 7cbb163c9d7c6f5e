"""The main job, `make demo`: the whole closed loop on the embedded local shape.

A served champion, traffic with feedback, drift appearing, Airflow noticing (``dag.test()``),
Kubeflow Pipelines retraining (local runner), the gate promoting, the server hot-swapping with
no failed request, and bad data refused — with the numbers that show it.

This package sits beside the core library: it drives the server, Airflow and the pipeline
from outside, the way a user does.
"""
