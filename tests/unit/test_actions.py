"""actions.yaml and the move-to-workspace action's pure parts.

Juju 2.9 runs a pod-spec charm's action in the workload pod unless its params
hold `workload-context: false`, filled from the action's own `default:`
(worker/uniter/runner/runner.go `RunAction`; state/unit.go
`PrepareActionPayload`). An action that forgets to say where it runs would run
where its code cannot work.
"""

import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

import workspace_move as move

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = yaml.safe_load((ROOT / "actions.yaml").read_text())
IN_MLFLOW_CONTAINER = {"move-to-workspace"}

spec = importlib.util.spec_from_file_location("move_to_workspace", ROOT / "templates" / "move_to_workspace.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_says_where_it_runs(name):
    param = ACTIONS[name]["params"]["workload-context"]
    assert param["type"] == "boolean"
    assert param["default"] is (name in IN_MLFLOW_CONTAINER)


def test_every_action_has_a_handler():
    charm = (ROOT / "src" / "charm.py").read_text()
    for name in ACTIONS:
        assert f"self.on.{name.replace('-', '_')}_action" in charm


def test_move_requires_experiments_and_namespace_and_nothing_else():
    action = ACTIONS["move-to-workspace"]
    assert action["required"] == ["experiments", "namespace"]
    assert action["additionalProperties"] is False
    assert action["params"]["dry-run"] == {**action["params"]["dry-run"], "type": "boolean", "default": False}


# --- parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "wrong"),
    [
        ({"namespace": "alice"}, "experiments"),
        ({"experiments": " , ", "namespace": "alice"}, "experiments"),
        ({"experiments": "1", "namespace": "Alice"}, "namespace"),
        ({"experiments": "1", "namespace": "a" * 64}, "namespace"),
        ({"experiments": "1", "namespace": "../bob"}, "namespace"),
        ({"experiments": "1"}, "namespace"),
        ({"experiments": "1", "namespace": "default"}, "namespace"),
        ({"experiments": "1", "namespace": "alice", "dry-run": "yes"}, "dry-run"),
    ],
)
def test_bad_params_name_the_param(params, wrong):
    with pytest.raises(move.MoveFailed) as failed:
        move.parse_params(params, "s3://mlflow/")
    assert failed.value.message.startswith(f"{wrong}:")


def test_good_params_make_a_request_without_secrets():
    request = move.parse_params({"experiments": " 1, wine ", "namespace": "alice"}, "s3://mlflow/")
    assert request == move.MoveRequest("1, wine", "alice", False, "s3://mlflow/")
    assert set(yaml.safe_load(request.payload())) == {
        "experiments",
        "namespace",
        "dry_run",
        "artifacts_destination",
        "workspace_store_uri",
    }


# --- where the script runs ---------------------------------------------------------


def _command(tmp_path, shebang: str) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mlflow = bin_dir / "mlflow"
    mlflow.write_text(f"{shebang}\nimport sys\n")
    mlflow.chmod(mlflow.stat().st_mode | stat.S_IXUSR)
    return {"PATH": str(bin_dir), move.WORKLOAD_MARKER: "mysql+pymysql://u:p@h/d"}


def test_the_interpreter_is_the_mlflow_commands(tmp_path):
    assert move.mlflow_python(_command(tmp_path, "#!/usr/bin/python3.12")) == "/usr/bin/python3.12"


def test_no_interpreter_outside_the_mlflow_container(tmp_path):
    env = _command(tmp_path, "#!/usr/bin/python3.12")
    del env[move.WORKLOAD_MARKER]
    assert move.mlflow_python(env) is None
    assert move.mlflow_python({"PATH": str(tmp_path), move.WORKLOAD_MARKER: "x"}) is None


def test_the_charms_packages_leave_pythonpath(tmp_path):
    charm = tmp_path / "charm"
    (charm / "venv").mkdir(parents=True)
    environ = {"PYTHONPATH": os.pathsep.join(["lib", "venv", str(charm / "venv"), "/opt/mlflow/lib"]), "X": "1"}
    assert move.script_env(environ, str(charm)) == {"PYTHONPATH": "/opt/mlflow/lib", "X": "1"}
    assert "PYTHONPATH" not in move.script_env({"PYTHONPATH": "lib:venv"}, str(charm))


def test_a_script_error_fails_the_action_with_its_reason_and_no_secret(tmp_path):
    # The test interpreter has no MLflow: the script must say so as its report, not a traceback.
    env = {"PATH": os.environ["PATH"], move.WORKLOAD_MARKER: "mysql+pymysql://u:hunter2@h/d"}
    request = move.MoveRequest("1", "alice", True, "s3://mlflow/")
    with pytest.raises(move.MoveFailed) as failed:
        move.run(request, sys.executable, env, timeout=60)
    assert failed.value.message.startswith("move-to-workspace: ModuleNotFoundError: ")
    assert "hunter2" not in failed.value.message


def test_the_scripts_errors_are_scrubbed_of_the_envs_secrets(monkeypatch):
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", "mysql+pymysql://u:hunter2@h/d")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "minio123")
    text = script.scrub("connect mysql+pymysql://u:hunter2@h/d failed; pw hunter2; key minio123")
    assert "hunter2" not in text and "minio123" not in text and "***" in text


def test_results_are_strings_and_say_none_for_empty_lists():
    assert move.results({"dry-run": True, "experiments-moved": 2, "models": ""}) == {
        "dry-run": "true",
        "experiments-moved": "2",
        "models": "none",
    }


# --- the script's pure parts -------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "where"),
    [
        ("s3://mlflow/1", ("mlflow", "1", "1")),
        ("s3://mlflow/1/abc/artifacts/", ("mlflow", "1/abc/artifacts", "1/abc/artifacts")),
        ("mlflow-artifacts:/1/abc/artifacts", ("mlflow", "1/abc/artifacts", "1/abc/artifacts")),
        ("mlflow-artifacts://mlflow-server:5000/2", ("mlflow", "2", "2")),
        ("s3://other/7", ("other", "7", "7")),
        ("file:///mlruns/1", None),
        ("runs:/abc/model", None),
        ("", None),
    ],
)
def test_locate_finds_the_object_behind_a_stored_uri(uri, where):
    assert script.locate(uri, "mlflow", "") == where


def test_locate_under_a_destination_prefix():
    assert script.locate("mlflow-artifacts:/1", "b", "p/") == ("b", "p/1", "1")
    assert script.locate("s3://b/p/1", "b", "p/") == ("b", "p/1", "1")


def test_moved_uris_are_what_the_proxy_serves_the_workspace():
    assert script.moved_uri("1/abc/artifacts", "alice") == "mlflow-artifacts:/workspaces/alice/1/abc/artifacts"
    assert script.workspace_of("workspaces/alice/1") == "alice"
    assert script.workspace_of("1/workspaces") is None


def test_a_location_moved_already_is_left_and_one_moved_elsewhere_refused():
    assert script._place("mlflow-artifacts:/workspaces/alice/1", ("mlflow", ""), "alice") == (None, None)
    with pytest.raises(ValueError, match="namespace=bob"):
        script._place("mlflow-artifacts:/workspaces/bob/1", ("mlflow", ""), "alice")
    with pytest.raises(ValueError, match="not in the server's artifact store"):
        script._place("file:///tmp/x", ("mlflow", ""), "alice")


def test_roots_to_copy_keeps_the_outermost():
    roots = script.roots_to_copy([("b", "1/r/artifacts", "x"), ("b", "1", "1"), ("b", "10", "10"), ("c", "1/r", "1/r")])
    assert roots == [("b", "1", "1"), ("b", "10", "10"), ("c", "1/r", "1/r")]


def test_selection():
    assert script.split_selection(" all ") is None
    assert script.split_selection("1, wine,,") == ["1", "wine"]


def test_destination_must_be_a_bucket():
    assert script.parse_destination("s3://mlflow/") == ("mlflow", "")
    assert script.parse_destination("s3://mlflow/a/b") == ("mlflow", "a/b/")
    with pytest.raises(script.Refused):
        script.parse_destination("file:///tmp")
