# Run by the pod's init container with the image's Python, before `mlflow server`.
# Brings a database created by an older MLflow up to this image's schema, and
# gives an empty one this image's schema. The URI comes from the env (a
# Kubernetes Secret) and is passed in-process, never on a command line.
#
# Every replica's init container runs this at once on a rollout or a scale-out.
# MariaDB's DDL is not transactional, so two migrations racing each other fail
# ("table already exists") and can leave the schema half-applied: a named lock
# on the database server lets one pod migrate while the others wait, then find
# the schema current. That holds for an empty database too: left to the
# servers, two pods starting together on it both create the tables (MLflow
# serializes that with a file lock, which is per pod), and the loser exits
# with "Table 'alembic_version' already exists".
import os
import sys
import time

import sqlalchemy
from mlflow.db import upgrade

# A replica waiting longer than this lets Kubernetes retry it rather than hang unseen.
LOCK_WAIT_SECONDS = 900
LOCK_SLICE_SECONDS = 10
# Per database: other databases on the same MariaDB server migrate independently.
LOCK_NAME = "CONCAT('mlflow-db-upgrade-', MD5(DATABASE()))"

uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
engine = sqlalchemy.create_engine(uri)
# A named lock lives as long as its session: one connection, outside any transaction.
lock = None
if engine.dialect.name in ("mysql", "mariadb"):
    lock = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    started = time.monotonic()
    while not lock.execute(sqlalchemy.text(f"SELECT GET_LOCK({LOCK_NAME}, {LOCK_SLICE_SECONDS})")).scalar():
        waited = time.monotonic() - started
        if waited >= LOCK_WAIT_SECONDS:
            print(f"gave up after {waited:.0f} s waiting for another pod's schema upgrade", flush=True)
            sys.exit(1)
        print(f"another pod is upgrading the mlflow database schema: waiting ({waited:.0f} s so far)", flush=True)
try:
    if sqlalchemy.inspect(engine).has_table("alembic_version"):
        upgrade.main([uri], standalone_mode=False)
        print("mlflow database schema is up to date")
    else:
        # What the server itself runs on an empty database (MLflow 2.22.0 and
        # 3.17.2: mlflow/store/db/utils.py), here under the lock.
        from mlflow.store.db.utils import _initialize_tables

        _initialize_tables(engine)
        print("empty mlflow database: created its tables")
finally:
    if lock is not None:
        lock.execute(sqlalchemy.text(f"SELECT RELEASE_LOCK({LOCK_NAME})"))
        lock.close()
    engine.dispose()
