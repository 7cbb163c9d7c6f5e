"""``driftloop status``, ``history``, ``promote`` and ``rollback`` on a real MLflow store
(two bootstrapped versions), through the same promotion code the pipeline uses.

Every refusal changes nothing: an unknown version, promoting the champion, no reason, no
previous version to roll back to, a server that cannot be reached. The rollback against a
running server is in tests/pipelines/test_live_server.py.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from driftloop.cli import main
from driftloop.registry import connect
from driftloop.settings import Settings
from tests.conftest import IRIS_SPEC


@pytest.fixture(scope="module")
def two_version_store(tmp_path_factory: pytest.TempPathFactory,
                      _migrated_mlflow_db: Path) -> Path:
    """A store with v1 (bootstrap) and v2 (bootstrap --force: champion, v1 previous), made
    once; each test gets a copy of its database (the artifacts stay here)."""
    from driftloop.bootstrap import bootstrap

    state = tmp_path_factory.mktemp("two-versions")
    shutil.copyfile(_migrated_mlflow_db, state / "mlflow.db")
    settings = Settings(state_dir=state, spec_path=IRIS_SPEC)
    bootstrap(settings)
    bootstrap(settings, force=True)
    return state


@pytest.fixture
def two_versions(two_version_store: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A copy of the two-version store; the CLI reads it from DRIFTLOOP_* as a person's
    shell would give it."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.copyfile(two_version_store / "mlflow.db", state / "mlflow.db")
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(state))
    monkeypatch.setenv("DRIFTLOOP_SPEC_PATH", str(IRIS_SPEC))
    return Settings(state_dir=state, spec_path=IRIS_SPEC)


def _aliases(settings: Settings) -> dict[str, str]:
    model = connect(settings).get_registered_model("iris-classifier")
    return {which: str(version) for which, version in model.aliases.items()}


def _tags(settings: Settings, version: str) -> dict[str, str]:
    return dict(connect(settings).get_model_version("iris-classifier", version).tags)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_rollback_then_promote_move_aliases_and_tag_who_when_why(
        two_versions: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _aliases(two_versions) == {"champion": "2", "previous": "1"}
    code, out, _ = _run(capsys, "rollback", "--reason", "v2 misroutes orders", "--by", "ana",
                        "--deploy-target", "none")
    assert code == 0
    assert out.splitlines()[0] == ("rollback: v1 is champion of iris-classifier (was v2; "
                                   "previous now v2)")
    assert _aliases(two_versions) == {"champion": "1", "previous": "2"}
    back = _tags(two_versions, "1")
    assert (back["manual_action"], back["manual_by"], back["manual_reason"]) == \
        ("rollback", "ana", "v2 misroutes orders")
    out_of_service = _tags(two_versions, "2")
    assert (out_of_service["rolled_back_by"], out_of_service["rolled_back_reason"]) == \
        ("ana", "v2 misroutes orders")
    # status and history tell the story.
    code, out, _ = _run(capsys, "status", "--json")
    state = json.loads(out)
    assert state["aliases"]["champion"]["version"] == "1"
    assert state["aliases"]["champion"]["promoted_by"].startswith("rollback by ana at ")
    assert state["aliases"]["previous"]["rolled_back"].endswith(": v2 misroutes orders")
    assert state["aliases"]["challenger"] is None
    assert "error" in state["server"]  # no server here: said, not raised
    code, out, _ = _run(capsys, "history")
    assert code == 0 and out.splitlines()[0] == "iris-classifier: 2 version(s), newest first"
    assert "v1 [champion]" in out and "v2 [previous]" in out
    # Promote v2 again: it is champion, v1 previous, and the reason is on v2.
    code, out, _ = _run(capsys, "promote", "2", "--reason", "fixed upstream", "--by", "bo",
                        "--deploy-target", "none")
    assert code == 0 and _aliases(two_versions) == {"champion": "2", "previous": "1"}
    assert _tags(two_versions, "2")["manual_reason"] == "fixed upstream"


@pytest.mark.parametrize(("argv", "message"), [
    (["promote", "9", "--reason", "x"],
     "model 'iris-classifier' has no version '9' (versions: 2, 1); nothing changed"),
    (["promote", "2", "--reason", "x"], "v2 is already champion of 'iris-classifier'; "
                                        "nothing changed"),
    (["promote", "1", "--reason", "  "],
     "give a reason (--reason): it is recorded on the version"),
])
def test_bad_promotions_are_refused_and_change_nothing(
        two_versions: Settings, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    before = (_aliases(two_versions), _tags(two_versions, "1"), _tags(two_versions, "2"))
    code, _, err = _run(capsys, *argv, "--deploy-target", "none")
    assert code == 1 and err.strip() == f"driftloop: error: {message}"
    assert (_aliases(two_versions), _tags(two_versions, "1"), _tags(two_versions, "2")) == \
        before


def test_rollback_without_a_previous_version_is_refused(
        champion: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(champion.state_dir))
    code, _, err = _run(capsys, "rollback", "--deploy-target", "none")
    assert code == 1
    assert err.strip() == ("driftloop: error: model 'iris-classifier' has no previous "
                           "version to roll back to (champion: v1); nothing changed")
    assert _aliases(champion) == {"champion": "1"}


def test_a_server_that_cannot_be_reached_leaves_the_aliases_and_tags(
        two_versions: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DRIFTLOOP_SERVER_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DRIFTLOOP_ADMIN_TOKEN", "s3cret")
    before = (_aliases(two_versions), _tags(two_versions, "1"), _tags(two_versions, "2"))
    code, _, err = _run(capsys, "rollback", "--reason", "x", "--deploy-target", "local",
                        "--timeout", "3")
    assert code == 1
    assert err.startswith(f"driftloop: error: rollback of v1 not served: serving at "
                          f"http://127.0.0.1:{port} is unreachable")
    assert err.strip().endswith("champion alias restored to v2")
    assert (_aliases(two_versions), _tags(two_versions, "1"), _tags(two_versions, "2")) == \
        before


def test_the_commands_are_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("status", "history", "promote", "rollback"):
        assert command in out
