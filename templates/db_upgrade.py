# Run by the pod's init container with the image's Python, before `mlflow server`.
# Brings a database created by an older MLflow up to this image's schema; an
# empty database is left for the server to create. The URI comes from the env
# (a Kubernetes Secret) and is passed in-process, never on a command line.
import os

import sqlalchemy
from mlflow.db import upgrade

uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
engine = sqlalchemy.create_engine(uri)
if sqlalchemy.inspect(engine).has_table("alembic_version"):
    upgrade.main([uri], standalone_mode=False)
    print("mlflow database schema is up to date")
else:
    print("empty mlflow database: the server creates its tables")
engine.dispose()
