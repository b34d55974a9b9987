"""The tutorial's Elastic Net wine notebook, as a script a Kubeflow notebook would run.

It knows only its environment (the mlflow-server-minio PodDefault's env) and
the bucket name the tutorial uses. It prints one JSON object: what each step
produced, for the harness to assert on.

    python notebook.py <bucket> <download-dir>
"""

import json
import os
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402
import mlflow.sklearn  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_wine  # noqa: E402
from sklearn.linear_model import ElasticNet  # noqa: E402
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

MODEL_NAME = "ElasticnetWineModel"


def train(alpha: float, l1_ratio: float):
    # Wine from scikit-learn itself (no download): predict the alcohol content
    # from the other twelve measurements.
    data = load_wine(as_frame=True).frame.drop(columns=["target"])
    x, y = data.drop(columns=["alcohol"]), data["alcohol"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42)
    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42).fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "rmse": float(np.sqrt(mean_squared_error(y_test, predicted))),
        "mae": float(mean_absolute_error(y_test, predicted)),
        "r2": float(r2_score(y_test, predicted)),
    }
    return model, x_test, metrics


def main(bucket: str, download_dir: Path) -> dict:
    report = {"mlflow_version": mlflow.__version__, "tracking_uri": mlflow.get_tracking_uri()}
    alpha, l1_ratio = 0.5, 0.5
    model, x_test, metrics = train(alpha, l1_ratio)

    report["runs_before"] = [
        r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
    ]
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", alpha)
        mlflow.log_param("l1_ratio", l1_ratio)
        for name, value in metrics.items():
            mlflow.log_metric(name, value)
        mlflow.sklearn.log_model(model, "model", registered_model_name=MODEL_NAME)
    logged = mlflow.get_run(run.info.run_id)
    report["run_id"] = run.info.run_id
    report["artifact_uri"] = logged.info.artifact_uri
    report["params"] = logged.data.params
    report["metrics"] = logged.data.metrics
    report["expected_metrics"] = metrics
    versions = mlflow.MlflowClient().search_model_versions(f"name='{MODEL_NAME}'")
    report["model_versions"] = sorted(int(v.version) for v in versions)

    # The tutorial's third and fourth cells: list the bucket, download requirements.txt.
    # With proxied artifacts the PodDefault carries no S3 keys: the notebook cannot.
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        import boto3

        minio = boto3.client(
            "s3",
            endpoint_url=os.getenv("MLFLOW_S3_ENDPOINT_URL"),
            config=boto3.session.Config(signature_version="s3v4"),
        )
        files = minio.list_objects_v2(Bucket=bucket).get("Contents", [])
        report["bucket_keys"] = [f["Key"] for f in files]
        requirements = [k for k in report["bucket_keys"] if k.endswith("/requirements.txt")]
        target = download_dir / "requirements.txt"
        minio.download_file(bucket, requirements[0], str(target))
        report["requirements_key"] = requirements[0]
        report["requirements_txt"] = target.read_text()
    else:
        report["bucket_keys"] = None

    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    predictions = loaded.predict(x_test)
    report["predictions"] = [float(p) for p in predictions[:5]]
    report["predictions_match"] = bool(np.allclose(predictions, model.predict(x_test)))
    return report


if __name__ == "__main__":
    result = main(sys.argv[1], Path(sys.argv[2]))
    print("NOTEBOOK-REPORT " + json.dumps(result, sort_keys=True))
