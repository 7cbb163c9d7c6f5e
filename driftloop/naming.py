"""Names shared by the cluster manifests, the deployers, the scripts and the images.

Defined once here (and, for images, in ``docker/images.env``); tests check that the
manifests, the retrain pipeline and the scripts agree with them.
"""

from __future__ import annotations

from pathlib import Path

from driftloop.settings import PROJECT_ROOT

NAMESPACE = "driftloop"
SERVING_DEPLOYMENT = "driftloop-serving"
SERVING_CONTAINER = "serving"
SERVING_PORT = 8000
SERVING_NODEPORT = 30080
MLFLOW_PORT = 5000
MLFLOW_NODEPORT = 30500
#: The env var the Kubernetes deployer pins in the serving pod template (Settings.model_version).
MODEL_VERSION_ENV = "DRIFTLOOP_MODEL_VERSION"
#: Pod-template annotation the deployer sets, so every rollout is visible in `kubectl describe`.
MODEL_VERSION_ANNOTATION = "driftloop.io/model-version"
#: Pod-template annotation naming what the replicas score beside the champion ("3
#: (challenger)"): a change rolls the replicas, which load it through the registry aliases.
SHADOW_ANNOTATION = "driftloop.io/shadow"
#: The ConfigMap of DRIFTLOOP_* settings every driftloop pod reads (k8s/settings).
SETTINGS_CONFIG_MAP = "driftloop-settings"
#: The ServiceAccount manual promote/rollback pods run as (k8s/base/rbac.yaml): it may patch
#: the serving Deployment, nothing else.
PROMOTER_SERVICE_ACCOUNT = "driftloop-promoter"

IMAGES_FILE = PROJECT_ROOT / "docker" / "images.env"


def images(path: Path = IMAGES_FILE) -> dict[str, str]:
    """``docker/images.env`` as a dict: image variable name -> ``repository:tag``."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: line {raw!r} is not KEY=VALUE")
        out[key.strip()] = value.strip().strip('"')
    return out
