"""One artifact round trip as a notebook makes it, run with the image's MLflow.

bench/artifacts.py and test_big_artifacts.py run it through harness.run_artifact_client.

    python artifact_client.py <file> <experiment-name> <artifact-location or ""> <download-dir>

It knows only its environment (the PodDefault's, plus keys for the direct
path) and prints one JSON line: upload and download seconds, timed around
the MLflow calls alone, and whether the bytes came back intact.
"""

import filecmp
import json
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402


def main(path: Path, experiment: str, location: str, download_dir: Path) -> dict:
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, location or None)
    run = client.create_run(experiment_id)
    started = time.perf_counter()
    client.log_artifact(run.info.run_id, str(path))
    uploaded = time.perf_counter()
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path=path.name, dst_path=str(download_dir)
    )
    downloaded = time.perf_counter()
    intact = filecmp.cmp(path, local, shallow=False)
    Path(local).unlink()
    client.set_terminated(run.info.run_id)
    return {
        "upload_s": uploaded - started,
        "download_s": downloaded - uploaded,
        "intact": intact,
        "artifact_uri": client.get_run(run.info.run_id).info.artifact_uri,
    }


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]))
    print("ARTIFACT-REPORT " + json.dumps(result, sort_keys=True))
