# Run by the move-to-workspace action (src/workspace_move.py) in the MLflow
# container, with the image's own Python and MLflow 3.17: the request comes as
# one JSON object on stdin, the report goes out as one JSON line on stdout.
# The database URI and the S3 keys come from the container's env (Kubernetes
# Secrets), never from the request or a command line.
#
# What it moves: experiments of MLflow's `default` workspace (where the schema
# upgrade put everything logged before enable_workspaces) with their runs, and
# the registered models whose every version comes from those runs, into the
# workspace of one Kubeflow profile. The rows move with MLflow's own
# `move_resources` (mlflow/store/db/workspace_move.py, what `mlflow db
# move-resources` runs). That code copies no artifact and rewrites no stored
# URI, while the proxy serves a workspace only `workspaces/<namespace>/...`
# of its destination (mlflow/server/handlers.py
# `_get_workspace_scoped_repo_path_if_enabled`). So, before any row changes:
# every object under the moved locations is copied to
# `<destination>/workspaces/<namespace>/<its old path>` and verified; then the
# stored URIs are rewritten to `mlflow-artifacts:/workspaces/<namespace>/...`
# (experiments.artifact_location, runs.artifact_uri,
# logged_models.artifact_location, the traces' mlflow.artifactLocation tag,
# model_versions.source and storage_location: every URI column of 3.17.2's
# schema that names an object of a moved experiment); then the rows move.
# Nothing of the old copy is deleted.
#
# Re-running is safe at any point: a copied object that verifies is not copied
# again; a URI already under the target prefix is not rewritten; an experiment
# already in the target workspace is reported, not moved again.
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from urllib.parse import urlparse

DEFAULT_WORKSPACE = "default"
# mlflow/utils/workspace_utils.py WORKSPACES_DIR_NAME
WORKSPACES_DIR = "workspaces"
# mlflow/utils/mlflow_tags.py MLFLOW_ARTIFACT_LOCATION: where a trace's data lives
TRACE_LOCATION_TAG = "mlflow.artifactLocation"
SECRET_ENV = ("MLFLOW_BACKEND_STORE_URI", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
_MD5_ETAG = re.compile(r'^"?[0-9a-fA-F]{32}"?$')


class Refused(Exception):
    """A reason the move does not start or stops, for the action's failure message."""


# --- where an artifact lives ------------------------------------------------------


def parse_destination(uri):
    """The proxy's destination `s3://bucket/prefix/` as (bucket, key prefix)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise Refused(f"the server's artifacts destination {uri!r} is not an s3:// bucket")
    prefix = parsed.path.strip("/")
    return parsed.netloc, (prefix + "/" if prefix else "")


def locate(uri, bucket, prefix):
    """(bucket, key, path under the destination) of a stored artifact URI, or None when
    the proxy cannot serve it (another scheme, a local path)."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":
        # `mlflow-artifacts:/1/...` or with a host: the path is under the destination.
        path = parsed.path.strip("/")
        return bucket, prefix + path, path
    if parsed.scheme in ("s3", "s3a") and parsed.netloc:
        key = parsed.path.strip("/")
        if parsed.netloc == bucket and key.startswith(prefix):
            return parsed.netloc, key, key[len(prefix) :]
        return parsed.netloc, key, key
    return None


def workspace_of(path):
    """The workspace a destination path belongs to, or None for the legacy layout."""
    parts = path.split("/")
    return parts[1] if len(parts) > 1 and parts[0] == WORKSPACES_DIR else None


def moved_path(path, namespace):
    return f"{WORKSPACES_DIR}/{namespace}/{path}" if path else f"{WORKSPACES_DIR}/{namespace}"


def moved_uri(path, namespace):
    return f"mlflow-artifacts:/{moved_path(path, namespace)}"


def under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def roots_to_copy(locations):
    """The fewest (bucket, key, path) prefixes that cover every location."""
    kept = []
    for location in sorted(set(locations), key=lambda loc: (loc[0], loc[1])):
        if not any(location[0] == k[0] and under(location[1], k[1]) for k in kept):
            kept.append(location)
    return kept


def split_selection(experiments):
    """`all`, or the ids and names the user listed."""
    if experiments.strip() == "all":
        return None
    return [token.strip() for token in experiments.split(",") if token.strip()]


def scrub(text):
    """Error text without the values of the secrets in this container's env."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
            password = urlparse(value).password if "://" in value else None
            if password:
                text = text.replace(password, "***")
    return text


# --- the plan: what would move, read from the database ------------------------------


class Plan:
    def __init__(self, namespace):
        self.namespace = namespace
        self.experiments = []  # (id, name) moving now
        self.runs = 0
        self.models = []  # names moving now
        self.already = []  # experiment "id:name" already in the target workspace
        self.skipped = []  # "what: why"
        self.locations = []  # (bucket, key, path) to copy under the new prefix
        self.rewrites = []  # (table, key columns and values, column, old, new)


def _tables():
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion, SqlRegisteredModel
    from mlflow.store.tracking.dbmodels.models import (
        SqlExperiment,
        SqlLoggedModel,
        SqlRun,
        SqlTraceInfo,
        SqlTraceTag,
    )

    return {
        "experiments": SqlExperiment.__table__,
        "runs": SqlRun.__table__,
        "logged_models": SqlLoggedModel.__table__,
        "trace_info": SqlTraceInfo.__table__,
        "trace_tags": SqlTraceTag.__table__,
        "registered_models": SqlRegisteredModel.__table__,
        "model_versions": SqlModelVersion.__table__,
    }


def _select_experiments(rows, wanted, plan):
    """The experiment rows to move, and those named that are already in the target."""
    namespace = plan.namespace
    if wanted is None:
        return [row for row in rows if row.workspace == DEFAULT_WORKSPACE], []
    chosen, already = [], []
    for token in wanted:
        match = [row for row in rows if str(row.experiment_id) == token] or [row for row in rows if row.name == token]
        if not match:
            raise Refused(f"no experiment has the id or name {token!r}")
        for row in match:
            if row.workspace == namespace:
                already.append(row)
            elif row.workspace != DEFAULT_WORKSPACE:
                plan.skipped.append(f"experiment {row.experiment_id}:{row.name}: in workspace {row.workspace!r}")
            elif row not in chosen:
                chosen.append(row)
    return chosen, already


def _place(uri, destination, namespace):
    """(location to copy or None, new URI or None) for one stored URI; raises ValueError
    with the reason when the URI cannot be moved."""
    location = locate(uri, *destination)
    if location is None:
        raise ValueError(f"artifact location {uri!r} is not in the server's artifact store")
    owner = workspace_of(location[2])
    if owner == namespace:
        return None, None  # copied and rewritten by an earlier run
    if owner is not None:
        raise ValueError(f"an interrupted move copied it for workspace {owner!r}: re-run with namespace={owner}")
    return location, moved_uri(location[2], namespace)


def _check_fits(tables, table, column, uri):
    # MariaDB outside strict mode would cut a longer value short without an error.
    limit = getattr(tables[table].c[column].type, "length", None)
    if limit is not None and len(uri) > limit:
        raise ValueError(f"the new URI {uri!r} is longer than {table}.{column} holds ({limit})")


def make_plan(conn, tables, selection, namespace, destination):
    import sqlalchemy as sa

    plan = Plan(namespace)
    experiments = tables["experiments"]
    rows = conn.execute(
        sa.select(
            experiments.c.experiment_id, experiments.c.name, experiments.c.workspace, experiments.c.artifact_location
        )
    ).fetchall()
    chosen, already = _select_experiments(rows, selection, plan)
    plan.already = [f"{row.experiment_id}:{row.name}" for row in already]
    taken = {row.name for row in rows if row.workspace == namespace}
    moving_ids = set()
    for row in chosen:
        label = f"experiment {row.experiment_id}:{row.name}"
        if row.name in taken:
            plan.skipped.append(f"{label}: workspace {namespace!r} has an experiment of that name")
            continue
        try:
            rewrites, locations, run_count = _experiment_moves(conn, tables, row, destination, namespace)
        except ValueError as reason:
            plan.skipped.append(f"{label}: {reason}")
            continue
        plan.experiments.append((row.experiment_id, row.name))
        plan.rewrites += rewrites
        plan.locations += locations
        plan.runs += run_count
        moving_ids.add(row.experiment_id)
    in_target = moving_ids | {row.experiment_id for row in rows if row.workspace == namespace}
    named = moving_ids | {row.experiment_id for row in already}
    _plan_models(conn, tables, plan, in_target, None if selection is None else named, destination)
    plan.locations = roots_to_copy(plan.locations)
    return plan


def _experiment_moves(conn, tables, row, destination, namespace):
    import sqlalchemy as sa

    rewrites, locations = [], []

    def place(table, keys, column, uri):
        if not uri:
            return
        location, new = _place(uri, destination, namespace)
        if location is not None:
            _check_fits(tables, table, column, new)
            locations.append(location)
            rewrites.append((table, keys, column, uri, new))

    exp_id = row.experiment_id
    place("experiments", {"experiment_id": exp_id}, "artifact_location", row.artifact_location)
    runs = tables["runs"]
    run_rows = conn.execute(sa.select(runs.c.run_uuid, runs.c.artifact_uri).where(runs.c.experiment_id == exp_id))
    run_count = 0
    for run in run_rows:
        run_count += 1
        place("runs", {"run_uuid": run.run_uuid}, "artifact_uri", run.artifact_uri)
    models = tables["logged_models"]
    for model in conn.execute(
        sa.select(models.c.model_id, models.c.artifact_location).where(models.c.experiment_id == exp_id)
    ):
        place("logged_models", {"model_id": model.model_id}, "artifact_location", model.artifact_location)
    info, tags = tables["trace_info"], tables["trace_tags"]
    for tag in conn.execute(
        sa.select(tags.c.request_id, tags.c.value)
        .select_from(tags.join(info, tags.c.request_id == info.c.request_id))
        .where(info.c.experiment_id == exp_id, tags.c.key == TRACE_LOCATION_TAG)
    ):
        place("trace_tags", {"request_id": tag.request_id, "key": TRACE_LOCATION_TAG}, "value", tag.value)
    return rewrites, locations, run_count


def _plan_models(conn, tables, plan, in_target, named, destination):
    """Registered models of the default workspace whose every version's run ends up in the
    target workspace (and, unless `all`, one of them in a named experiment)."""
    import sqlalchemy as sa

    versions, runs = tables["model_versions"], tables["runs"]
    rows = conn.execute(
        sa.select(
            versions.c.name, versions.c.version, versions.c.run_id, versions.c.source, versions.c.storage_location
        ).where(versions.c.workspace == DEFAULT_WORKSPACE)
    ).fetchall()
    run_ids = {row.run_id for row in rows if row.run_id}
    experiment_of = {}
    if run_ids:
        for run in conn.execute(
            sa.select(runs.c.run_uuid, runs.c.experiment_id).where(runs.c.run_uuid.in_(sorted(run_ids)))
        ):
            experiment_of[run.run_uuid] = run.experiment_id
    by_model = {}
    for row in rows:
        by_model.setdefault(row.name, []).append(row)
    taken = {
        name
        for (name,) in conn.execute(
            sa.select(tables["registered_models"].c.name).where(
                tables["registered_models"].c.workspace == plan.namespace
            )
        )
    }
    for name in sorted(by_model):
        model_versions = by_model[name]
        homes = [experiment_of.get(row.run_id) for row in model_versions]
        related = named if named is not None else in_target
        if not any(home in related for home in homes):
            continue
        if not all(home in in_target for home in homes):
            plan.skipped.append(f"registered model {name}: has versions from runs that stay outside {plan.namespace!r}")
            continue
        if name in taken:
            plan.skipped.append(f"registered model {name}: workspace {plan.namespace!r} has a model of that name")
            continue
        try:
            rewrites, locations = [], []
            for row in model_versions:
                for column in ("source", "storage_location"):
                    uri = getattr(row, column)
                    if locate(uri, *destination) is None:
                        continue  # runs:/, models:/ and the like resolve through the moved rows
                    location, new = _place(uri, destination, plan.namespace)
                    if location is not None:
                        _check_fits(tables, "model_versions", column, new)
                        locations.append(location)
                        keys = {"name": row.name, "version": row.version, "workspace": DEFAULT_WORKSPACE}
                        rewrites.append(("model_versions", keys, column, uri, new))
        except ValueError as reason:
            plan.skipped.append(f"registered model {name}: {reason}")
            continue
        plan.models.append(name)
        plan.rewrites += rewrites
        plan.locations += locations


# --- objects ------------------------------------------------------------------------


def s3_client():
    import boto3
    from botocore.config import Config

    verify = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").lower() not in ("true", "1")
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None,
        verify=verify,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def _objects(client, bucket, key):
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
        yield from page.get("Contents", [])


def _head(client, bucket, key):
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _sha256(client, bucket, key):
    digest = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def same_object(client, source, target):
    """Size, then the MD5 ETags where both are plain MD5s; otherwise (a multipart
    upload's ETag) a SHA-256 of both bodies."""
    (src_bucket, src_key, src_head), (dst_bucket, dst_key, dst_head) = source, target
    if dst_head is None or src_head["ContentLength"] != dst_head["ContentLength"]:
        return False
    src_etag, dst_etag = src_head.get("ETag", ""), dst_head.get("ETag", "")
    if _MD5_ETAG.match(src_etag) and _MD5_ETAG.match(dst_etag):
        return src_etag.strip('"').lower() == dst_etag.strip('"').lower()
    return _sha256(client, src_bucket, src_key) == _sha256(client, dst_bucket, dst_key)


def copy_objects(client, plan, destination, dry_run):
    """Copy and verify every object under the plan's locations; (copied, present, list)."""
    bucket, prefix = destination
    copied, present, names = 0, 0, []
    for src_bucket, src_key, path in plan.locations:
        for item in _objects(client, src_bucket, src_key):
            rest = item["Key"][len(src_key.rstrip("/")) :]
            dst_key = prefix + moved_path(path, plan.namespace) + rest
            source = (src_bucket, item["Key"], _head(client, src_bucket, item["Key"]))
            if same_object(client, source, (bucket, dst_key, _head(client, bucket, dst_key))):
                present += 1
                continue
            names.append(dst_key)
            copied += 1
            if dry_run:
                continue
            if source[2]["ContentLength"] > 5 * 1024**3:
                client.copy({"Bucket": src_bucket, "Key": item["Key"]}, bucket, dst_key)
            else:
                client.copy_object(Bucket=bucket, Key=dst_key, CopySource={"Bucket": src_bucket, "Key": item["Key"]})
            if not same_object(client, source, (bucket, dst_key, _head(client, bucket, dst_key))):
                raise Refused(f"the copy of s3://{src_bucket}/{item['Key']} does not match it: no row was changed")
    return copied, present, names


# --- rows ---------------------------------------------------------------------------


def rewrite_uris(conn, tables, plan):
    """Every stored URI to its new place, each only where it still holds the old value."""
    changed = 0
    for table_name, keys, column, old, new in plan.rewrites:
        table = tables[table_name]
        where = [table.c[name] == value for name, value in keys.items()] + [table.c[column] == old]
        changed += conn.execute(table.update().where(*where).values({column: new})).rowcount
    return changed


class _Workspaces:
    """What MLflow's move asks of a workspace store: the target is a profile namespace
    (the server's own store decides); `default` is the schema upgrade's, no namespace."""

    def __init__(self, store):
        self._store = store

    def get_workspace(self, name):
        return None if name == DEFAULT_WORKSPACE else self._store.get_workspace(name)


def check_namespace(store, namespace):
    from mlflow.exceptions import MlflowException

    try:
        store.get_workspace(namespace)
        root, appended = store.resolve_artifact_root(None, namespace)
    except MlflowException as error:
        raise Refused(f"namespace {namespace!r} is not an MLflow workspace: {error.message}") from None
    if root and not appended:
        raise Refused(
            f"namespace {namespace!r} has its own artifact root ({root}, an MLflowConfig): "
            "this action moves artifacts within the server's destination only"
        )


def run(request, stop=None):
    """The whole move; `stop` ('before-rows', 'before-move') ends it early, as a kill would."""
    import sqlalchemy as sa
    from mlflow.store.db.utils import create_sqlalchemy_engine_with_retry
    from mlflow.store.db.workspace_move import move_resources
    from mlflow.tracking._workspace.registry import get_workspace_store

    namespace, dry_run = request["namespace"], bool(request["dry_run"])
    destination = parse_destination(request["artifacts_destination"])
    selection = split_selection(request["experiments"])
    store = get_workspace_store(request["workspace_store_uri"])
    check_namespace(store, namespace)
    engine = create_sqlalchemy_engine_with_retry(os.environ["MLFLOW_BACKEND_STORE_URI"])
    try:
        if not sa.inspect(engine).has_table("workspaces"):
            raise Refused("the database has no workspaces yet: the MLflow pod's init container upgrades its schema")
        tables = _tables()
        with engine.connect() as conn:
            plan = make_plan(conn, tables, selection, namespace, destination)
        client = s3_client()
        copied, present, _ = copy_objects(client, plan, destination, dry_run)
        rewritten = 0
        if not dry_run and stop != "before-rows":
            with engine.begin() as conn:
                rewritten = rewrite_uris(conn, tables, plan)
            if stop != "before-move":
                workspaces = _Workspaces(store)
                names = [name for _, name in plan.experiments]
                if names:
                    move_resources(engine, workspaces, DEFAULT_WORKSPACE, namespace, "experiments", names=names)
                if plan.models:
                    move_resources(
                        engine, workspaces, DEFAULT_WORKSPACE, namespace, "registered_models", names=plan.models
                    )
    finally:
        engine.dispose()
    return {
        "dry-run": dry_run,
        "namespace": namespace,
        "experiments-moved": len(plan.experiments),
        "runs-moved": plan.runs,
        "models-moved": len(plan.models),
        "objects-copied": copied,
        "objects-present": present,
        "uris-rewritten": rewritten if not dry_run else len(plan.rewrites),
        "experiments": ", ".join(f"{exp_id}:{name}" for exp_id, name in plan.experiments),
        "models": ", ".join(plan.models),
        "already-in-workspace": ", ".join(plan.already),
        "skipped": "; ".join(plan.skipped),
    }


def main(stop=None):
    try:
        report = run(json.load(sys.stdin), stop=stop)
    except Refused as refused:
        print(json.dumps({"ok": False, "message": scrub(str(refused))}), flush=True)
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - reported to the action, scrubbed of secrets
        print(json.dumps({"ok": False, "message": scrub(f"{type(error).__name__}: {error}")}), flush=True)
        sys.exit(1)
    print(json.dumps({"ok": True, "report": report}), flush=True)


if __name__ == "__main__":
    main()
