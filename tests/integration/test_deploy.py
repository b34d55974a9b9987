"""mlflow-server on a real Juju 2.9 + MicroK8s cluster, the tutorial's flow.

    tox -e integration                      # a fresh model; deploys the Kubeflow peers it lacks
    tox -e integration -- --model kubeflow  # next to an existing Kubeflow (the model is kept)
    MLFLOW_CHARM=./mlflow-server_amd64.charm tox -e integration   # skip the build

The charm is built with `charmcraft pack` (or taken from MLFLOW_CHARM) and
deployed with the oci-image of metadata.yaml's upstream-source, next to
charmed-osm-mariadb-k8s as mlflow-db. minio, istio-pilot (with its ingress
gateway) and admission-webhook are used when the model has them, deployed from
the Charmed Kubeflow 1.6 channels (the release the tutorial was written for,
on Juju 2.9) when it does not. Skipped, with the reason, where no Juju 2.9
controller answers (see conftest.py).
"""

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest
import yaml

pytest.importorskip("pytest_operator", reason="pytest-operator lives in its own env: run `tox -e integration`")

ROOT = Path(__file__).resolve().parents[2]
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
APP = METADATA["name"]
DB_APP = "mlflow-db"
IMAGE = METADATA["resources"]["oci-image"]["upstream-source"]
PORT = yaml.safe_load((ROOT / "config.yaml").read_text())["options"]["mlflow_port"]["default"]
POD_DEFAULT = f"{APP}-minio"

DB_CHARM = ("charmed-osm-mariadb-k8s", "latest/stable")
# Kubeflow peers, deployed only when the model lacks them:
# application -> (charm, channel, trust, config)
KUBEFLOW: Dict[str, Tuple[str, str, bool, Dict[str, str]]] = {
    "minio": ("minio", "ckf-1.6/stable", False, {}),
    "istio-pilot": ("istio-pilot", "1.11/stable", True, {"default-gateway": "kubeflow-gateway"}),
    "istio-ingressgateway": ("istio-gateway", "1.11/stable", True, {"kind": "ingress"}),
    "admission-webhook": ("admission-webhook", "1.6/stable", False, {}),
}
RELATIONS = (
    (f"{APP}:db", f"{DB_APP}:mysql"),
    (f"{APP}:object-storage", "minio:object-storage"),
    (f"{APP}:ingress", "istio-pilot:ingress"),
    (f"{APP}:pod-defaults", "admission-webhook:pod-defaults"),
)
SETTLE_SECONDS = 30 * 60
GATEWAY_SECONDS = 10 * 60


async def _charm_file(ops_test) -> Path:
    given = os.environ.get("MLFLOW_CHARM")
    if given:
        return Path(given).resolve()
    return await ops_test.build_charm(ROOT)


@pytest.mark.asyncio
@pytest.mark.abort_on_fail
async def test_deploy_relate_and_settle_active(ops_test):
    model = ops_test.model
    if APP in model.applications:
        pytest.fail(f"model {ops_test.model_name} already has {APP}: run against a model without it")

    await model.deploy(str(await _charm_file(ops_test)), application_name=APP, resources={"oci-image": IMAGE})
    if DB_APP not in model.applications:
        await model.deploy(DB_CHARM[0], application_name=DB_APP, channel=DB_CHARM[1])
    # An existing istio-pilot comes with its own gateway, whatever its name.
    wanted = [app for app in KUBEFLOW if app not in model.applications]
    if "istio-pilot" in model.applications and "istio-ingressgateway" in wanted:
        wanted.remove("istio-ingressgateway")
    for app in wanted:
        charm, channel, trust, config = KUBEFLOW[app]
        await model.deploy(charm, application_name=app, channel=channel, trust=trust, config=config)
    if "istio-ingressgateway" in wanted:
        await model.add_relation("istio-pilot:istio-pilot", "istio-ingressgateway:istio-pilot")
    for ours, theirs in RELATIONS:
        await model.add_relation(ours, theirs)

    # Kubeflow applications that were there already are not ours to wait for.
    await model.wait_for_idle(apps=[APP, DB_APP, *wanted], status="active", timeout=SETTLE_SECONDS)
    unit = model.applications[APP].units[0]
    assert unit.workload_status == "active", unit.workload_status_message


@pytest.mark.asyncio
async def test_get_minio_credentials_action(ops_test):
    unit = ops_test.model.applications[APP].units[0]
    action = await (await unit.run_action("get-minio-credentials")).wait()

    assert action.status == "completed", action.data.get("message")
    results = action.results
    minio_config = await ops_test.model.applications["minio"].get_config()
    same_access_key = results.get("access-key") == minio_config["access-key"]["value"]
    assert same_access_key, "the action's access-key is not minio's access-key config"
    assert len(results.get("secret-access-key") or "") >= 8, "no secret-access-key in the action's results"


def _kubernetes_client():
    """lightkube from KUBECONFIG or ~/.kube/config, else from `microk8s config`."""
    from lightkube import Client, KubeConfig
    from lightkube.core.exceptions import ConfigError

    try:
        return Client(field_manager="mlflow-server-tests")
    except ConfigError:
        pass
    try:
        text = subprocess.run(["microk8s", "config"], capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        pytest.fail(f"no kubeconfig and no `microk8s config` ({type(e).__name__}): set KUBECONFIG")
    return Client(config=KubeConfig.from_dict(yaml.safe_load(text)), field_manager="mlflow-server-tests")


def _gateway_address(client, namespace: str) -> str:
    """The Istio ingress gateway's address: its load balancer IP, else its cluster IP."""
    from lightkube.resources.core_v1 import Service

    for ns in (namespace, "istio-system"):
        for service in client.list(Service, namespace=ns):
            if (service.spec.selector or {}).get("istio") != "ingressgateway":
                continue
            ingress = (
                (service.status.loadBalancer.ingress or []) if service.status and service.status.loadBalancer else []
            )
            for entry in ingress:
                if entry.ip or entry.hostname:
                    return entry.ip or entry.hostname
            return service.spec.clusterIP
    pytest.fail(f"no Istio ingress gateway service (selector istio=ingressgateway) in {namespace} or istio-system")


async def _dex_credentials(ops_test) -> Optional[Tuple[str, str]]:
    app = ops_test.model.applications.get("dex-auth")
    if app is None:
        return None
    config = await app.get_config()
    return config["static-username"]["value"], config["static-password"]["value"]


def _log_in_to_dex(client, page, credentials: Optional[Tuple[str, str]]):
    """Full Kubeflow puts Dex in front of the gateway: log in as dex-auth's static user."""
    if "/dex/" not in str(page.url):
        return page
    if credentials is None:
        pytest.fail("the gateway sends us to Dex, but the model has no dex-auth application to read a login from")
    username, password = credentials
    return client.post(str(page.url), data={"login": username, "password": password})


@pytest.mark.asyncio
async def test_dashboard_through_the_gateway(ops_test):
    import httpx

    address = _gateway_address(_kubernetes_client(), ops_test.model_name)
    credentials = await _dex_credentials(ops_test)
    deadline = asyncio.get_running_loop().time() + GATEWAY_SECONDS
    last = "no answer"
    # The VirtualService takes a while to reach the gateway after the relation.
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        while asyncio.get_running_loop().time() < deadline:
            try:
                page = _log_in_to_dex(client, client.get(f"http://{address}/mlflow/"), credentials)
                health = client.get(f"http://{address}/mlflow/health")
            except httpx.HTTPError as e:
                last = type(e).__name__
            else:
                if page.status_code == 200 and "<title>MLflow</title>" in page.text and health.text.strip() == "OK":
                    return
                last = f"/mlflow/ answered HTTP {page.status_code}, /mlflow/health {health.status_code}"
            await asyncio.sleep(10)
    pytest.fail(f"the MLflow UI never answered through the gateway at http://{address}/mlflow/: {last}")


@pytest.mark.asyncio
async def test_pod_default_for_notebooks_exists(ops_test):
    from lightkube.generic_resource import create_namespaced_resource

    pod_default_kind = create_namespaced_resource("kubeflow.org", "v1alpha1", "PodDefault", "poddefaults")
    namespace = ops_test.model_name
    pod_default = _kubernetes_client().get(pod_default_kind, POD_DEFAULT, namespace=namespace)

    spec = pod_default["spec"]
    assert spec["selector"]["matchLabels"] == {POD_DEFAULT: "true"}
    env = {item["name"]: item.get("value") for item in spec["env"]}
    assert env["MLFLOW_TRACKING_URI"] == f"http://{APP}.{namespace}.svc.cluster.local:{PORT}"
    assert {"MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)


# --- every Kubeflow profile (kubeflow-profiles-rbac.yaml granted) ----------------

PROFILE = "mlflow-it-profile"
NOTEBOOK_CHECK = (
    "import os, mlflow, boto3\n"
    "assert 'AWS_SECRET_ACCESS_KEY' in os.environ and os.environ['AWS_SECRET_ACCESS_KEY']\n"
    "mlflow.search_experiments()\n"
    "boto3.client('s3', endpoint_url=os.environ['MLFLOW_S3_ENDPOINT_URL']).list_objects_v2(Bucket='mlflow')\n"
    "print('NOTEBOOK-ENV-OK')\n"
)


def _granted_rbac(namespace: str):
    """kubeflow-profiles-rbac.yaml, bound to this model's operator."""
    from lightkube import codecs

    docs = list(yaml.safe_load_all((ROOT / "kubeflow-profiles-rbac.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "ClusterRoleBinding":
            doc["subjects"][0]["namespace"] = namespace
    return [codecs.from_dict(doc) for doc in docs]


@pytest.mark.asyncio
async def test_a_profile_namespace_gets_mlflow_without_kubectl(ops_test):
    """Granted access, a profile namespace gets the Secret and PodDefault, and a
    pod there that ticks the box runs MLflow and MinIO calls with the merged env."""
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.resources.core_v1 import Namespace, Pod, Secret

    client = _kubernetes_client()
    pod_default_kind = create_namespaced_resource("kubeflow.org", "v1alpha1", "PodDefault", "poddefaults")
    for obj in _granted_rbac(ops_test.model_name):
        client.apply(obj, force=True)
    labels = {"app.kubernetes.io/part-of": "kubeflow-profile"}
    client.apply(Namespace.from_dict({"metadata": {"name": PROFILE, "labels": labels}}), force=True)
    try:
        unit = ops_test.model.applications[APP].units[0]
        action = await (await unit.run_action("sync-profiles")).wait()
        assert action.status == "completed", action.data.get("message")

        secret = client.get(Secret, POD_DEFAULT, namespace=PROFILE)
        assert set(secret.data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        env = client.get(pod_default_kind, POD_DEFAULT, namespace=PROFILE)["spec"]["env"]
        assert all("value" not in e for e in env if e["name"].startswith("AWS_"))

        pod = Pod.from_dict(
            {
                "metadata": {"name": "mlflow-notebook-check", "namespace": PROFILE, "labels": {POD_DEFAULT: "true"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "check", "image": IMAGE, "command": ["python3", "-c", NOTEBOOK_CHECK]}],
                },
            }
        )
        client.create(pod)
        for _ in range(60):
            phase = client.get(Pod, pod.metadata.name, namespace=PROFILE).status.phase
            if phase in ("Succeeded", "Failed"):
                break
            await asyncio.sleep(5)
        logs = "\n".join(client.log(pod.metadata.name, namespace=PROFILE))
        assert phase == "Succeeded" and "NOTEBOOK-ENV-OK" in logs, logs[-2000:]
    finally:
        client.delete(Namespace, PROFILE)
