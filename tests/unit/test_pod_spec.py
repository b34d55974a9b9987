import base64

import pytest
import yaml

import mlflow_workload as workload
from helpers import HOSTILE_PASSWORD, config, database, storage
from pod_spec import PodSpecInputs, render_pod_spec, with_revision
from problems import Blocked

IMAGE = {"imagePath": "docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a"}


def render(cfg=None, db=None, st=None, image=IMAGE, units=1):
    inputs = PodSpecInputs(
        "mlflow-server", "kubeflow", image, cfg or config(), db or database(), st or storage(), units=units
    )
    return render_pod_spec(inputs)


def spec_of(**kwargs):
    return with_revision(render(**kwargs), "mlflow-server/0#1")


def secrets(spec):
    return {
        s["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for s in spec["kubernetesResources"]["secrets"]
    }


def container(spec, name="mlflow-server"):
    return next(c for c in spec["containers"] if c["name"] == name)


def test_spec_is_pod_spec_v3_with_the_image_and_port():
    spec = spec_of()
    assert spec["version"] == 3
    server = container(spec)
    assert server["imageDetails"] == IMAGE
    assert server["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    assert server["command"] == workload.server_command(config())


@pytest.mark.parametrize("password", [HOSTILE_PASSWORD, "x: y # z", "'\"", "- [a]", "{b: c}", "&anchor *ref"])
def test_hostile_passwords_survive_rendering_in_secrets(password):
    db = database(password=password, user="u@s:er")
    st = storage(secret_key=password, access_key=password[::-1])
    spec = spec_of(db=db, st=st)
    got = secrets(spec)
    assert got["mlflow-server-db"] == {"MLFLOW_BACKEND_STORE_URI": workload.backend_store_uri(db)}
    assert got["mlflow-server-minio"] == {"AWS_ACCESS_KEY_ID": password[::-1], "AWS_SECRET_ACCESS_KEY": password}
    assert got["mlflow-server-seldon-init-container-s3-credentials"]["RCLONE_CONFIG_S3_SECRET_ACCESS_KEY"] == password


def test_secrets_reach_containers_only_through_secret_references():
    db = database(password="db-S3cret!")
    st = storage(secret_key="minio-S3cret!")
    spec = spec_of(db=db, st=st)
    for c in spec["containers"]:
        plain = [v for v in c["envConfig"].values() if isinstance(v, str)]
        visible = yaml.safe_dump([c.get("command"), c.get("args"), plain])
        assert "S3cret" not in visible and "mysql+pymysql" not in visible
    assert container(spec)["envConfig"]["mlflow-server-db"] == {"secret": {"name": "mlflow-server-db"}}
    assert container(spec)["envConfig"]["mlflow-server-minio"] == {"secret": {"name": "mlflow-server-minio"}}
    seldon = "mlflow-server-seldon-init-container-s3-credentials"
    assert all(seldon not in c["envConfig"] for c in spec["containers"])


def test_init_container_upgrades_the_schema_with_the_db_secret_only():
    init = container(spec_of(), "mlflow-db-upgrade")
    assert init["init"] is True and init["imageDetails"] == IMAGE
    assert init["command"][:2] == ["python3", "-c"]
    assert "upgrade" in init["command"][2] and "MLFLOW_BACKEND_STORE_URI" in init["command"][2]
    assert init["envConfig"] == {"mlflow-server-db": {"secret": {"name": "mlflow-server-db"}}}
    compile(init["command"][2], "db_upgrade.py", "exec")


def test_probes_hit_the_health_endpoint_on_the_configured_port():
    server = container(spec_of(cfg=config(mlflow_port=5555)))
    for probe in ("readinessProbe", "livenessProbe"):
        assert server["kubernetes"][probe]["httpGet"] == {"path": "/health", "port": 5555}


def test_plain_env_carries_endpoint_and_allowed_hosts():
    env = container(spec_of(st=storage(secure=True)))["envConfig"]
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "https://minio.kubeflow:9000"
    assert env["MLFLOW_SERVER_ALLOWED_HOSTS"] == "*"


def test_nodeport_service_off_is_declared_as_cluster_ip():
    # Juju 2.9 never deletes a service the spec stops declaring: off must still declare it, closed.
    (service,) = spec_of()["kubernetesResources"]["services"]
    assert service["name"] == "mlflow-server-nodeport"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 5000, "targetPort": 5000}]


def test_plain_env_and_command_hold_dollars_as_kubernetes_literals():
    spec = spec_of(st=storage(service="mi$(HOME)n$$io", namespace=None))
    assert container(spec)["envConfig"]["MLFLOW_S3_ENDPOINT_URL"] == "http://mi$$(HOME)n$$$$io:9000"
    assert secrets(spec)["mlflow-server-minio"] == workload.s3_credentials_env(storage())  # Secrets stay raw
    init = container(spec, "mlflow-db-upgrade")
    assert init["command"][2] == workload.kubernetes_literal(init["command"][2])  # nothing to escape today


def test_nodeport_service_when_enabled():
    spec = spec_of(cfg=config(enable_mlflow_nodeport=True, mlflow_nodeport=31999, mlflow_port=5001))
    (service,) = spec["kubernetesResources"]["services"]
    assert service["name"] == "mlflow-server-nodeport"
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "mlflow-server"}
    assert service["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 5001, "targetPort": 5001, "nodePort": 31999}
    ]


def test_image_registry_credentials_are_passed_through():
    image = {"imagePath": "registry.example/mlflow:1", "username": "u", "password": "p: #'"}
    assert container(spec_of(image=image))["imageDetails"] == image


def test_rendering_is_byte_stable():
    assert render() == render()
    assert render(cfg=config(workers=3)) != render()


def test_the_pod_carries_the_revision_it_is_given():
    annotations = spec_of()["kubernetesResources"]["pod"]["annotations"]
    assert annotations == {"mlflow-server.charm/spec-revision": "mlflow-server/0#1"}


POOL = ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW")


def test_the_connection_budget_sizes_the_servers_pools_from_the_units():
    one = container(spec_of())["envConfig"]
    assert (one[POOL[0]], one[POOL[1]]) == ("4", "1")  # 100 over 2 pods of 4 workers
    three = container(with_revision(render(units=3), "r"))["envConfig"]
    assert (three[POOL[0]], three[POOL[1]]) == ("1", "1")
    assert not [k for k in container(spec_of(), "mlflow-db-upgrade")["envConfig"] if k in POOL]


MLFLOW_3 = {"imagePath": "ghcr.io/mlflow/mlflow:v3.17.2"}


@pytest.mark.parametrize("image", [MLFLOW_3, {"imagePath": "registry.example/mlflow@sha256:" + "0" * 64}])
def test_a_uvicorn_server_runs_fewer_requests_a_worker_than_its_pool_holds(image):
    # MLflow 3.x's nested sessions deadlock a pool that every running request
    # holds one connection of (src/db_connections.py): 4 + 1 a store, so 5 at most.
    server = container(spec_of(image=image))
    assert server["envConfig"]["UVICORN_LIMIT_CONCURRENCY"] == "5"
    assert (server["envConfig"][POOL[0]], server["envConfig"][POOL[1]]) == ("4", "1")
    # A full worker answers /health with 503: only readiness may act on it.
    assert server["kubernetes"]["readinessProbe"]["httpGet"] == {"path": "/health", "port": 5000}
    assert server["kubernetes"]["livenessProbe"] == {
        "tcpSocket": {"port": 5000},
        "initialDelaySeconds": 60,
        "periodSeconds": 20,
        "timeoutSeconds": 5,
        "failureThreshold": 5,
    }


@pytest.mark.parametrize("cfg,image", [(None, IMAGE), (config(db_connection_budget=0), MLFLOW_3)])
def test_a_gunicorn_server_or_mlflows_own_pools_keep_the_spec_as_it_was(cfg, image):
    server = container(spec_of(cfg=cfg, image=image))
    assert "UVICORN_LIMIT_CONCURRENCY" not in server["envConfig"]
    assert server["kubernetes"]["livenessProbe"]["httpGet"] == {"path": "/health", "port": 5000}


def test_no_budget_renders_no_pool_variables():
    env = container(spec_of(cfg=config(db_connection_budget=0)))["envConfig"]
    assert not [k for k in env if k in POOL]


def test_a_budget_too_small_for_the_units_renders_nothing():
    with pytest.raises(Blocked, match="db_connection_budget=100 is too small for 4 units of 4 workers"):
        render(units=4)


@pytest.mark.parametrize("image,expected", [(IMAGE, True), (MLFLOW_3, False)])
def test_a_gunicorn_server_gets_its_metrics_dir_before_its_workers_boot(image, expected):
    # 2.22.0's workers make the --expose-prometheus dir check-then-create; the
    # server makes it first when the variable names it (mlflow_workload.metrics_dir_env).
    server = container(spec_of(image=image))
    metrics_dir = server["command"][server["command"].index("--expose-prometheus") + 1]
    assert (server["envConfig"].get("prometheus_multiproc_dir") == metrics_dir) is expected
    assert ("prometheus_multiproc_dir" in server["envConfig"]) is expected
