"""pod_runner turns a pod spec into processes as Kubernetes would: checked on small specs."""

import base64
import sys
from pathlib import Path

import pytest
from pod_runner import (
    InitContainerFailed,
    Pod,
    PodSpecError,
    container_env,
    containers,
    expand,
    merge_pod_default_env,
    secrets,
)

PYTHON_BIN = Path(sys.executable).parent


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spec_of(*containers_, secrets_=()):
    return {"version": 3, "containers": list(containers_), "kubernetesResources": {"secrets": list(secrets_)}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$(A)", "a"),
        ("x$(A)y$(B)", "xayb"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$A", "$A"),
        ("$(A", "$(A"),
    ],
)
def test_expansion_follows_kubernetes(text, expected):
    assert expand(text, {"A": "a", "B": "b"}) == expected


def test_secret_data_is_base64_decoded():
    spec = spec_of(secrets_=[{"name": "s", "data": {"K": b64("p@ss: #'%/ ")}}])
    assert secrets(spec) == {"s": {"K": "p@ss: #'%/ "}}


def test_env_takes_every_key_of_a_secret_and_plain_values_win():
    all_secrets = {"db": {"URI": "mysql://x", "SHARED": "from-secret"}, "other": {"NOT": "used"}}
    container = {
        "name": "c",
        "envConfig": {"PLAIN": 5, "FLAG": True, "SHARED": "plain", "db": {"secret": {"name": "db"}}},
    }
    assert container_env(container, all_secrets) == {
        "PLAIN": "5",
        "FLAG": "true",
        "SHARED": "plain",
        "URI": "mysql://x",
    }


def test_plain_env_expands_from_secrets_and_earlier_values_but_secrets_stay_as_they_are():
    all_secrets = {"s": {"KEY": "k$(PLAIN)$$"}}
    container = {
        "name": "c",
        "envConfig": {
            "s": {"secret": {"name": "s"}},
            "PLAIN": "p$$w$(KEY)",
            "LATER": "$(PLAIN)-$(UNSET)-$(LATER2)",
            "LATER2": "x",
        },
    }
    assert container_env(container, all_secrets) == {
        "KEY": "k$(PLAIN)$$",  # envFrom values are never expanded
        "PLAIN": "p$wk$(PLAIN)$$",
        "LATER": "p$wk$(PLAIN)$$-$(UNSET)-$(LATER2)",  # only what was defined before
        "LATER2": "x",
    }


def test_pod_default_env_is_appended_to_the_container_env_and_expanded():
    merged = merge_pod_default_env({"HOME": "/home/jovyan"}, {"A": "pa$$w0rd$(HOME)x", "B": "$(A)", "C": "$$(A)"})
    assert merged == {"HOME": "/home/jovyan", "A": "pa$w0rd/home/jovyanx", "B": "pa$w0rd/home/jovyanx", "C": "$(A)"}


def test_values_the_charm_escapes_arrive_byte_identical():
    from mlflow_workload import kubernetes_literal

    keys = ["pa$$w0rd$(HOME)x", "$", "$$", "$(A)", "a$$(B)$", "$$$(HOME)"]
    pod_default = {f"K{i}": kubernetes_literal(k) for i, k in enumerate(keys)}
    merged = merge_pod_default_env({"HOME": "/h", "A": "a"}, pod_default)
    assert [merged[f"K{i}"] for i in range(len(keys))] == keys
    container = {
        "name": "c",
        "command": [kubernetes_literal(k) for k in keys],
        "envConfig": {"A": kubernetes_literal("$(HOME)")},
    }
    (run,) = containers(spec_of(container))
    assert list(run.argv) == keys and run.env["A"] == "$(HOME)"


def test_env_naming_an_unknown_secret_is_an_error():
    with pytest.raises(PodSpecError, match="not in the spec"):
        container_env({"name": "c", "envConfig": {"x": {"secret": {"name": "nope"}}}}, {})


def test_command_and_args_expand_from_env_and_init_containers_come_first():
    spec = spec_of(
        {"name": "main", "command": ["echo"], "args": ["$(URI)"], "envConfig": {"s": {"secret": {"name": "s"}}}},
        {"name": "first", "init": True, "command": ["true"]},
        secrets_=[{"name": "s", "data": {"URI": b64("db://u:p@h")}}],
    )
    run = containers(spec)
    assert [c.name for c in run] == ["first", "main"]
    assert run[1].argv == ("echo", "db://u:p@h")


def test_a_container_without_command_is_refused():
    with pytest.raises(PodSpecError, match="entrypoint"):
        containers(spec_of({"name": "main", "args": ["x"]}))


SERVE = """
import http.server, os, pathlib, sys
assert pathlib.Path(os.environ["MARKER"]).read_text() == "migrated", "init container did not run first"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ready" else 404); self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
INIT = "import os, pathlib; pathlib.Path(os.environ['MARKER']).write_text('migrated')"


def _pod_spec(port: int, marker: Path, init_code: str) -> dict:
    env = {"MARKER": str(marker)}
    probe = {"readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}}
    return spec_of(
        {"name": "init", "init": True, "command": ["python3", "-c", init_code], "envConfig": env},
        {
            "name": "main",
            "command": ["python3", "-c", SERVE],
            "args": ["$(PORT)"],
            "envConfig": {**env, "PORT": port},
            "ports": [{"name": "http", "containerPort": port}],
            "kubernetes": probe,
        },
    )


def test_pod_runs_init_to_completion_then_serves_on_its_readiness_probe(tmp_path):
    from servers import free_port

    port = free_port()
    pod = Pod(_pod_spec(port, tmp_path / "marker", INIT), PYTHON_BIN, tmp_path / "pod")
    try:
        pod.run(ready_timeout=30)
        assert pod.readiness == ("/ready", port)
        assert pod.process.poll() is None
    finally:
        pod.stop()
    assert pod.process.poll() is not None


def test_a_failing_init_container_keeps_the_main_container_from_starting(tmp_path):
    pod = Pod(_pod_spec(1, tmp_path / "marker", "raise SystemExit(3)"), PYTHON_BIN, tmp_path / "pod")
    with pytest.raises(InitContainerFailed, match="exited with 3"):
        pod.run(ready_timeout=5)
    assert pod.process is None
