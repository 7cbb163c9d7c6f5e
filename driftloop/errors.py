"""Errors that users see: one line that names the problem and, where possible, the fix."""

from __future__ import annotations


class DriftloopError(Exception):
    """Base class: the message is printed as is by the CLI, without a traceback."""


class SpecError(DriftloopError):
    """The model spec does not validate."""


class DataError(DriftloopError):
    """The data named by a spec cannot be loaded or does not match the spec."""


class RegistryError(DriftloopError):
    """The MLflow tracking server or registry cannot do what was asked."""


class ModelLoadError(DriftloopError):
    """A registered model version cannot be loaded for serving."""
