"""scripts/minikube-up.sh and minikube-down.sh: shellcheck, and the exact commands they run.

No Minikube runs here. The scripts are run for real with `minikube`, `kubectl`, `helm` and
`curl` replaced by recorders on PATH that log their arguments and answer what a healthy
cluster would (a Job complete, an upload accepted), so the test sees the whole sequence the
script would send to a real cluster: names from docker/images.env and k8s/versions.env,
files that exist, steps in a working order.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from driftloop import naming
from tests.k8s.conftest import BIN, ROOT, SCRIPTS, VERSIONS

UP = SCRIPTS / "minikube-up.sh"
DOWN = SCRIPTS / "minikube-down.sh"
IMAGES = naming.images()

RECORDER = r"""#!/usr/bin/env bash
name="$(basename "$0")"
{ printf '%s' "$name"; printf ' %q' "$@"; printf '\n'; } >> "$FAKE_LOG"
args="$*"
case "$name" in
  minikube)
    [[ "${1:-}" == "-p" && "${3:-}" == "ip" ]] && echo 192.168.49.2 ;;
  kubectl)
    [[ "$args" == *'type=="Complete"'* ]] && echo True
    [[ "$args" == *" logs "* ]] && echo "champion created: version 1" ;;
  curl)
    if [[ "$args" == *"-w"* ]]; then echo -n "${FAKE_UPLOAD_STATUS:-200}"
    elif [[ "$args" == *"/pipelines?page_size"* ]]; then
      echo '{"pipelines": [{"pipeline_id": "p-123", "display_name": "driftloop-retrain"}]}'
    fi ;;
esac
exit 0
"""


def shellcheck(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "shellcheck"), "-x", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_scripts_pass_shellcheck() -> None:
    out = shellcheck(UP, DOWN)
    assert out.returncode == 0, out.stdout + out.stderr


def test_shellcheck_does_flag_a_bad_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    out = shellcheck(bad)
    assert out.returncode != 0 and "SC2086" in out.stdout


@pytest.fixture
def fake_tools(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("minikube", "kubectl", "helm", "curl"):
        path = bindir / tool
        path.write_text(RECORDER)
        path.chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    package = tmp_path / "retrain_pipeline.yaml"
    package.write_text("pipelineInfo: {name: driftloop-retrain}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_MINIKUBE")}
    env.update(PATH=f"{bindir}:{env['PATH']}", FAKE_LOG=str(log),
               DRIFTLOOP_PIPELINE_PACKAGE=str(package))
    return env, log


def run(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def calls(log: Path) -> list[list[str]]:
    return [shlex.split(line) for line in log.read_text().splitlines()]


def index_of(seq: list[list[str]], *needle: str) -> int:
    for i, call in enumerate(seq):
        joined = " ".join(call)
        if all(n in joined for n in needle):
            return i
    raise AssertionError(f"no call with {needle}:\n" + "\n".join(map(" ".join, seq)))


def test_full_bring_up_runs_the_expected_commands_in_order(fake_tools) -> None:
    env, log = fake_tools
    out = run(UP, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    seq = calls(log)
    start = index_of(seq, "minikube", "start")
    assert f"--kubernetes-version={VERSIONS['KUBERNETES_VERSION']}" in seq[start]
    assert "--memory=10240" in seq[start] and "--cpus=4" in seq[start]
    builds = {}
    for call in seq:
        if call[:1] == ["minikube"] and "build" in call:
            builds[call[call.index("-t") + 1]] = call[call.index("-f") + 1]
    assert builds == {image: f"docker/{key.split('_')[1].lower()}.Dockerfile"
                      for key, image in IMAGES.items()}
    apply_overlay = index_of(seq, "kubectl", "apply -k k8s/overlays/minikube")
    bootstrap = index_of(seq, "kubectl", "apply -f k8s/jobs/bootstrap.yaml")
    restart = index_of(seq, "kubectl", "rollout restart",
                       f"deployment/{naming.SERVING_DEPLOYMENT}")
    ref = f"?ref={VERSIONS['KFP_VERSION']}"
    kfp = index_of(seq, "kubectl", "apply -k", f"env/platform-agnostic{ref}")
    index_of(seq, "kubectl", f"cluster-scoped-resources{ref}")
    kfp_settings = index_of(seq, "kubectl", "apply -k k8s/overlays/minikube-kfp")
    upload = index_of(seq, "curl", "pipelines/upload?name=driftloop-retrain")
    secret = index_of(seq, "kubectl", "apply -f k8s/airflow/connections-secret.yaml")
    helm = index_of(seq, "helm", "upgrade --install airflow apache-airflow/airflow")
    assert start < apply_overlay < bootstrap < restart < kfp < kfp_settings < upload < secret
    assert secret < helm
    assert ["--version", VERSIONS["AIRFLOW_CHART_VERSION"]] == \
        seq[helm][seq[helm].index("--version"):][:2]
    assert "k8s/airflow/values.yaml" in seq[helm] and "--wait" in seq[helm]
    assert all("--context" in c and "driftloop" in c for c in seq if c[0] == "kubectl")
    assert f"http://192.168.49.2:{naming.SERVING_NODEPORT}" in out.stdout
    assert f"http://192.168.49.2:{naming.MLFLOW_NODEPORT}" in out.stdout
    assert "[9/9] done" in out.stdout


def test_every_file_the_script_hands_to_kubectl_or_helm_exists(fake_tools) -> None:
    env, log = fake_tools
    assert run(UP, env=env).returncode == 0
    named = [call[i + 1] for call in calls(log) for i, a in enumerate(call[:-1])
             if a in ("-f", "-k") and not call[i + 1].startswith(("github.com", "-"))]
    assert set(named) == {
        "docker/serving.Dockerfile", "docker/trainer.Dockerfile", "docker/airflow.Dockerfile",
        "k8s/overlays/minikube", "k8s/overlays/minikube-kfp", "k8s/jobs/bootstrap.yaml",
        "k8s/airflow/connections-secret.yaml", "k8s/airflow/values.yaml"}
    for path in named:
        assert (ROOT / path).exists(), path


def test_an_existing_pipeline_gets_a_new_version(fake_tools) -> None:
    env, log = fake_tools
    out = run(UP, env={**env, "FAKE_UPLOAD_STATUS": "409"})
    assert out.returncode == 0, out.stderr
    seq = calls(log)
    call = seq[index_of(seq, "curl", "upload_version")]
    assert any("pipelineid=p-123" in a for a in call)
    assert "new version" in out.stdout


def test_a_refused_upload_stops_with_the_status(fake_tools) -> None:
    env, _ = fake_tools
    out = run(UP, env={**env, "FAKE_UPLOAD_STATUS": "500"})
    assert out.returncode == 1
    assert "answered HTTP 500" in out.stderr


def test_core_mode_fits_the_small_minikube_and_skips_kfp_and_airflow(fake_tools) -> None:
    env, log = fake_tools
    out = run(UP, "--core", env=env)
    assert out.returncode == 0, out.stderr
    seq = calls(log)
    start = seq[index_of(seq, "minikube", "start")]
    assert "--memory=4096" in start and "--cpus=2" in start
    joined = "\n".join(map(" ".join, seq))
    assert "helm" not in joined and "kubeflow/pipelines" not in joined
    assert IMAGES["DRIFTLOOP_AIRFLOW_IMAGE"] not in joined
    assert IMAGES["DRIFTLOOP_TRAINER_IMAGE"] in joined  # the bootstrap Job needs it
    assert "[6/6] done" in out.stdout


def test_small_memory_for_the_full_install_is_warned_about(fake_tools) -> None:
    env, _ = fake_tools
    out = run(UP, env={**env, "DRIFTLOOP_MINIKUBE_MEMORY": "4096"})
    assert out.returncode == 0
    assert "below what KFP + Airflow + driftloop need" in out.stderr


def test_a_missing_tool_is_named_with_how_to_get_it(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "dirname").symlink_to("/usr/bin/dirname")
    out = subprocess.run(["/bin/bash", str(UP)], cwd=ROOT, env={"PATH": str(bindir)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "minikube not found on PATH" in out.stderr and "install it" in out.stderr


@pytest.mark.parametrize("script", [UP, DOWN], ids=lambda p: p.name)
def test_help_and_unknown_options(script: Path, fake_tools) -> None:
    env, log = fake_tools
    helped = run(script, "--help", env=env)
    assert helped.returncode == 0 and helped.stdout.startswith("usage:")
    bad = run(script, "--bogus", env=env)
    assert bad.returncode == 2 and "unknown option: --bogus" in bad.stderr
    assert log.read_text() == "", "neither --help nor a bad option may touch the cluster"


def test_down_deletes_the_profile_or_only_stops_it(fake_tools) -> None:
    env, log = fake_tools
    assert run(DOWN, env=env).returncode == 0
    assert run(DOWN, "--stop", env=env).returncode == 0
    assert calls(log) == [["minikube", "delete", "-p", "driftloop"],
                          ["minikube", "stop", "-p", "driftloop"]]
