from urllib.parse import unquote, urlsplit

import pytest

import mlflow_workload as workload
from helpers import HOSTILE_PASSWORD, config, database, storage
from problems import Blocked


@pytest.mark.parametrize("password", [HOSTILE_PASSWORD, "password", "@:/#%'\" ", "100%", "a b"])
@pytest.mark.parametrize("user", ["mysql", "us@r:name/x"])
def test_backend_store_uri_round_trips_user_and_password(user, password):
    uri = workload.backend_store_uri(database(user=user, password=password))
    parts = urlsplit(uri)
    assert parts.scheme == "mysql+pymysql"
    assert (unquote(parts.username), unquote(parts.password)) == (user, password)
    assert (parts.hostname, parts.port, parts.path) == ("10.152.183.27", 3306, "/database")


def test_backend_store_uri_brackets_ipv6_hosts():
    uri = workload.backend_store_uri(database(host="fd00::1"))
    assert urlsplit(uri).hostname == "fd00::1" and "@[fd00::1]:3306/" in uri


@pytest.mark.parametrize(
    "changes, url",
    [
        ({}, "http://minio.kubeflow:9000"),
        ({"secure": True}, "https://minio.kubeflow:9000"),
        ({"namespace": None}, "http://minio:9000"),
        ({"namespace": None, "service": "10.0.0.7"}, "http://10.0.0.7:9000"),
        ({"namespace": None, "service": "fd00::7"}, "http://[fd00::7]:9000"),
        (
            {"service": "object-store", "namespace": "data", "port": 443, "secure": True},
            "https://object-store.data:443",
        ),
    ],
)
def test_s3_endpoint_url_follows_the_contract(changes, url):
    assert workload.s3_endpoint_url(storage(**changes)) == url


def test_tracking_uri_is_the_service_fqdn():
    assert workload.tracking_uri("mlflow-server", "kubeflow", 5000) == (
        "http://mlflow-server.kubeflow.svc.cluster.local:5000"
    )


def test_server_command_writes_artifacts_to_the_bucket_by_default():
    command = workload.server_command(config(mlflow_port=5001, workers=2))
    assert command[:2] == ["mlflow", "server"]
    assert _flag(command, "--port") == "5001" and _flag(command, "--workers") == "2"
    assert _flag(command, "--default-artifact-root") == "s3://mlflow/"
    assert "--serve-artifacts" not in command and "--backend-store-uri" not in command


def test_server_command_proxies_artifacts_when_asked():
    command = workload.server_command(config(serve_artifacts=True, default_artifact_root="models"))
    assert "--serve-artifacts" in command and _flag(command, "--artifacts-destination") == "s3://models/"
    assert "--default-artifact-root" not in command


def test_server_command_keeps_proxying_a_once_proxied_bucket():
    off = workload.server_command(config(default_artifact_root="models"), proxied_bucket="mlflow")
    assert "--serve-artifacts" in off and _flag(off, "--artifacts-destination") == "s3://mlflow/"
    assert _flag(off, "--default-artifact-root") == "s3://models/"
    on = workload.server_command(config(serve_artifacts=True), proxied_bucket="mlflow")
    assert on == workload.server_command(config(serve_artifacts=True))


def test_a_bucket_change_strands_proxied_artifacts_only_while_serving():
    workload.refuse_stranded_artifacts(config(serve_artifacts=True), None)
    workload.refuse_stranded_artifacts(config(serve_artifacts=True), "mlflow")
    workload.refuse_stranded_artifacts(config(default_artifact_root="models"), "mlflow")
    with pytest.raises(Blocked) as raised:
        workload.refuse_stranded_artifacts(config(serve_artifacts=True, default_artifact_root="models"), "mlflow")
    assert "'mlflow'" in raised.value.message and not raised.value.message.endswith("…")
    longest = "b" * 63
    with pytest.raises(Blocked) as raised:
        workload.refuse_stranded_artifacts(config(serve_artifacts=True, default_artifact_root="models"), longest)
    assert not raised.value.message.endswith("…"), "the action's name must fit in a status"


@pytest.mark.parametrize("value", ["pa$$w0rd$(HOME)x", "$", "a$b", "no dollars"])
def test_pod_defaults_hold_every_value_as_a_kubernetes_literal(value):
    env = workload.pod_defaults(config(), storage(access_key=value, secret_key=value), "mlflow-server", "kubeflow")
    sent = env["minio"]["env"]
    assert sent["AWS_ACCESS_KEY_ID"] == sent["AWS_SECRET_ACCESS_KEY"] == value.replace("$", "$$")


def test_server_command_exposes_prometheus_metrics():
    assert _flag(workload.server_command(config()), "--expose-prometheus") == workload.METRICS_DIR


def test_allowed_hosts_default_accepts_any_host():
    assert workload.allowed_hosts(config(), "mlflow-server", "kubeflow") == "*"


def test_narrowed_allowed_hosts_keep_every_service_name():
    hosts = workload.allowed_hosts(config(allowed_hosts="10.64.140.43.nip.io"), "mlflow-server", "kubeflow").split(",")
    for name in ("mlflow-server", "mlflow-server.kubeflow", "mlflow-server.kubeflow.svc.cluster.local"):
        assert name in hosts and f"{name}:5000" in hosts
    assert "10.64.140.43.nip.io" in hosts and "*" not in hosts
    assert len(hosts) == len(set(hosts))


def test_server_env_sets_cors_origins_only_when_configured():
    env = workload.server_env(config(), storage(), "mlflow-server", "kubeflow")
    assert "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS" not in env
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.kubeflow:9000"
    assert env["MLFLOW_SERVER_ALLOWED_HOSTS"] == "*"
    env = workload.server_env(config(cors_allowed_origins="http://gw"), storage(), "mlflow-server", "kubeflow")
    assert env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] == "http://gw"


def test_notebook_env_matches_the_tutorial():
    env = workload.notebook_env(config(), storage(), "mlflow-server", "kubeflow")
    assert env == {
        "AWS_ACCESS_KEY_ID": "minio",
        "AWS_SECRET_ACCESS_KEY": "minio123",
        "MLFLOW_S3_ENDPOINT_URL": "http://minio.kubeflow:9000",
        "MLFLOW_TRACKING_URI": "http://mlflow-server.kubeflow.svc.cluster.local:5000",
    }


def test_notebook_env_holds_no_keys_without_storage_or_with_proxied_artifacts():
    expected = {"MLFLOW_TRACKING_URI": "http://mlflow-server.kubeflow.svc.cluster.local:5000"}
    assert workload.notebook_env(config(), None, "mlflow-server", "kubeflow") == expected
    proxied = workload.notebook_env(config(serve_artifacts=True), storage(), "mlflow-server", "kubeflow")
    assert proxied == {**expected, **workload.multipart_upload_env(config(serve_artifacts=True))}


def test_telemetry_is_off_in_the_server_env_unless_enabled():
    env = workload.server_env(config(), storage(), "mlflow-server", "kubeflow")
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true"
    env = workload.server_env(config(enable_telemetry=True), storage(), "mlflow-server", "kubeflow")
    assert "MLFLOW_DISABLE_TELEMETRY" not in env and "DO_NOT_TRACK" not in env


def test_worker_timeout_reaches_gunicorn_and_uvicorn_through_their_env_not_a_flag():
    env = workload.server_env(config(worker_timeout=900), storage(), "mlflow-server", "kubeflow")
    assert env["GUNICORN_CMD_ARGS"] == "--timeout 900"
    assert env["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] == "900"
    # MLflow 3.x would pass these to uvicorn as flags, which an older uvicorn refuses;
    # MLFLOW_GUNICORN_OPTS would switch 3.x back to gunicorn.
    assert "MLFLOW_UVICORN_OPTS" not in env and "MLFLOW_GUNICORN_OPTS" not in env
    assert not [a for a in workload.server_command(config(worker_timeout=900)) if "timeout" in a or a == "900"]


def test_proxied_artifacts_upload_in_parts_of_the_configured_size():
    proxied = config(serve_artifacts=True, multipart_upload_chunk_size=64)
    for env in (
        workload.server_env(proxied, storage(), "mlflow-server", "kubeflow"),
        workload.notebook_env(proxied, storage(), "mlflow-server", "kubeflow"),
    ):
        assert env["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "true"
        assert env["MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE"] == str(64 * 1024 * 1024)
        assert env["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"] == str(64 * 1024 * 1024)
        assert not [k for k in env if k.startswith("AWS_")]
    direct = workload.notebook_env(config(), storage(), "mlflow-server", "kubeflow")
    assert not [k for k in direct if "MULTIPART" in k]


@pytest.mark.parametrize("server_mlflow", [(3, 0), (3, 17), (4, 1)])
def test_proxied_notebooks_of_a_3x_server_download_from_presigned_urls_without_asking_first(server_mlflow):
    proxied = config(serve_artifacts=True)
    env = workload.notebook_env(proxied, storage(), "mlflow-server", "kubeflow", server_mlflow)
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "true"
    assert "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD" not in workload.notebook_env(
        config(), storage(), "mlflow-server", "kubeflow", server_mlflow
    )


@pytest.mark.parametrize("server_mlflow", [None, (2, 22)])
def test_notebooks_of_a_2x_or_unnamed_server_are_left_to_ask_it_once(server_mlflow):
    # A 3.x client told to use presigned downloads would ask a 2.x server for each file, get a 404 and warn.
    proxied = config(serve_artifacts=True)
    env = workload.notebook_env(proxied, storage(), "mlflow-server", "kubeflow", server_mlflow)
    assert "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD" not in env
    # The server hands out the URLs whatever the variable says: it is the client's only.
    assert "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD" not in workload.server_env(
        proxied, storage(), "mlflow-server", "kubeflow"
    )


def test_pod_defaults_name_the_minio_poddefault():
    assert list(workload.pod_defaults(config(), storage(), "mlflow-server", "kubeflow")) == ["minio"]


def test_ingress_request_v1_and_v2():
    v1 = workload.ingress_request(config(), "mlflow-server", "kubeflow", "v1")
    assert v1 == {"service": "mlflow-server", "port": 5000, "prefix": "/mlflow/", "rewrite": "/"}
    assert workload.ingress_request(config(), "mlflow-server", "kubeflow", "v2") == {**v1, "namespace": "kubeflow"}


def test_seldon_rclone_env_points_at_minio():
    env = workload.seldon_rclone_env(storage(secure=True))
    assert env["RCLONE_CONFIG_S3_ENDPOINT"] == "https://minio.kubeflow:9000"
    assert env["RCLONE_CONFIG_S3_ACCESS_KEY_ID"] == "minio" and env["RCLONE_CONFIG_S3_SECRET_ACCESS_KEY"] == "minio123"
    assert {k: env[k] for k in ("RCLONE_CONFIG_S3_TYPE", "RCLONE_CONFIG_S3_PROVIDER", "RCLONE_CONFIG_S3_ENV_AUTH")} == {
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Minio",
        "RCLONE_CONFIG_S3_ENV_AUTH": "false",
    }


def _flag(command, name):
    return command[command.index(name) + 1]
