"""`juju run-action mlflow-server/0 move-to-workspace experiments=... namespace=...`.

The action runs in the MLflow container (actions.yaml: workload-context true)
and hands the move to templates/move_to_workspace.py under the interpreter
of the container's `mlflow` command. Here that interpreter is a stand-in that
answers as the script does, echoing the request it got: what the charm sends
and how it turns every answer into results or a clear failure. The script
itself runs for real in tests/e2e/test_move_to_workspace.py.
"""

import json
import stat
import sys

import pytest
from scenario import ActionFailed

import world

ON = {"enable_workspaces": True}
DB_URI = "mysql+pymysql://mysql:password@10.152.183.9:3306/database"
MOVE = {"experiments": "1,wine", "namespace": "alice"}


def _executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def mlflow_container(tmp_path, monkeypatch):
    """The MLflow container's env: the database Secret's variable, and an `mlflow`
    command whose interpreter answers with `answer` (default: the request, echoed)."""
    bin_dir = tmp_path / "image-bin"
    bin_dir.mkdir()
    answer_file = tmp_path / "answer.json"
    interpreter = _executable(
        bin_dir / "python3.12",
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "request = json.load(sys.stdin)\n"
        f"answer = json.loads(open({str(answer_file)!r}).read()) if os.path.exists({str(answer_file)!r}) else None\n"
        "if answer is None:\n"
        "    answer = {'ok': True, 'report': {'dry-run': request['dry_run'], 'request': json.dumps(request),\n"
        "              'script': sys.argv[1], 'pythonpath': os.environ.get('PYTHONPATH', ''), 'skipped': ''}}\n"
        "print(json.dumps(answer))\n"
        "sys.exit(answer.pop('exit', 0))\n",
    )
    _executable(bin_dir / "mlflow", f"#!{interpreter}\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", DB_URI)
    monkeypatch.setenv("PYTHONPATH", "lib:venv:/opt/mlflow/lib")

    def answer(payload):
        answer_file.write_text(json.dumps(payload))

    return answer


def _run(ctx, tmp_path, params, leader=True, config=ON):
    ctx.run(ctx.on.action("move-to-workspace", params=params), world.state(tmp_path, leader=leader, config=config))
    return ctx.action_results


def _fails(ctx, tmp_path, params, **kwargs) -> str:
    with pytest.raises(ActionFailed) as failed:
        _run(ctx, tmp_path, params, **kwargs)
    return failed.value.message


def test_dry_run_sends_the_request_and_returns_the_scripts_report(ctx, tmp_path, mlflow_container):
    results = _run(ctx, tmp_path, {**MOVE, "dry-run": True})
    request = json.loads(results["request"])
    assert request == {
        "experiments": "1,wine",
        "namespace": "alice",
        "dry_run": True,
        "artifacts_destination": "s3://mlflow/",  # the bucket the server proxies in this mode
        "workspace_store_uri": "kubernetes://",
    }
    assert results["dry-run"] == "true" and results["skipped"] == "none"
    assert results["script"].endswith("templates/move_to_workspace.py")
    # MLflow imports the image's packages, not the charm's (dispatch's lib:venv).
    assert results["pythonpath"] == "/opt/mlflow/lib"
    assert "password" not in json.dumps(results) and "minio123" not in json.dumps(results)


def test_dry_run_defaults_to_false(ctx, tmp_path, mlflow_container):
    assert json.loads(_run(ctx, tmp_path, MOVE)["request"])["dry_run"] is False


def test_mode_off_fails_naming_the_option(ctx, tmp_path, mlflow_container):
    message = _fails(ctx, tmp_path, MOVE, config={})
    assert "enable_workspaces=true" in message


def test_a_non_leader_fails(ctx, tmp_path, mlflow_container):
    assert "leader" in _fails(ctx, tmp_path, MOVE, leader=False)


@pytest.mark.parametrize(
    ("params", "wrong"),
    [
        ({"experiments": "1", "namespace": "Alice"}, "namespace"),
        ({"experiments": "1", "namespace": "default"}, "namespace"),
        ({"experiments": " ,", "namespace": "alice"}, "experiments"),
    ],
)
def test_bad_params_fail_naming_the_param(ctx, tmp_path, mlflow_container, params, wrong):
    assert _fails(ctx, tmp_path, params).startswith(f"{wrong}:")


def test_outside_the_mlflow_container_it_fails_saying_where_it_runs(ctx, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_BACKEND_STORE_URI", raising=False)
    assert "runs in the MLflow container" in _fails(ctx, tmp_path, MOVE)


def test_a_namespace_the_script_refuses_fails_with_its_reason(ctx, tmp_path, mlflow_container):
    reason = "namespace 'kubeflow' is not an MLflow workspace: Workspace 'kubeflow' not found"
    mlflow_container({"ok": False, "message": reason, "exit": 2})
    assert _fails(ctx, tmp_path, {**MOVE, "namespace": "kubeflow"}) == f"move-to-workspace: {reason}"


def test_a_script_that_dies_without_a_report_fails_clearly(ctx, tmp_path, mlflow_container):
    mlflow_container({"exit": 1})
    assert "exited with 1 and no report" in _fails(ctx, tmp_path, MOVE)
