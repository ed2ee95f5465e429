"""A registered model in production on a real MLflow server, with old and new training data."""
from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from components.dataio import read_table_and_sha256, write_table


@pytest.fixture
def model(mlflow_server, tmp_path, transactions):
    """A registered model whose production version was trained on `old.parquet`; `new.parquet` is new data."""
    client = MlflowClient(mlflow_server)
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    write_table(transactions.iloc[:1000], str(tmp_path / "old.parquet"))
    write_table(transactions.iloc[1000:2000], str(tmp_path / "new.parquet"))
    _, digest = read_table_and_sha256(str(tmp_path / "old.parquet"))
    client.create_registered_model(name)
    run = client.create_run(client.create_experiment(name))
    mv = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                     tags={"data_sha256": digest})
    client.set_registered_model_alias(name, "production", mv.version)
    return client, name, tmp_path
