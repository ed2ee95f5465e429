"""The real server over HTTP: predictions, readiness, bad input, metrics, micro-batching, inference log."""
import json
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pyarrow.dataset as ds
import pytest

from serving.model import INFO_FILE, pull
from tests.serving.conftest import MODEL, exchange, http, metric_samples, records


def test_pull_is_idempotent_and_refuses_a_foreign_folder(pulled, registered, tmp_path):
    before = (pulled / INFO_FILE).stat().st_mtime_ns
    assert pull(registered, str(pulled)).version == "1"
    assert (pulled / INFO_FILE).stat().st_mtime_ns == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "MLmodel").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        pull(registered, str(tmp_path / "other"))


def test_predictions_equal_pyfunc_on_every_protocol(start_server, pulled, trained_model):
    _, rows = trained_model
    server = start_server({"MODEL_PATH": str(pulled), "MODEL_ROLE": "canary"})
    server.wait()
    sample = rows.head(40)
    expected = mlflow.pyfunc.load_model(str(pulled)).predict(sample)
    proba = mlflow.sklearn.load_model(str(pulled)).predict_proba(sample)[:, 1]

    status, body = http("POST", f"{server.url}/v1/models/{MODEL}:predict", {"instances": records(sample)})
    assert status == 200, body
    assert body["predictions"] == list(expected) and body["model_version"] == "1"
    assert np.allclose(body["probabilities"], proba)

    split = json.loads(sample.to_json(orient="split", index=False))
    for payload in ({"dataframe_split": split}, {"dataframe_records": records(sample)}, {"inputs": records(sample)}):
        status, body = http("POST", f"{server.url}/invocations", payload)
        assert status == 200 and body["predictions"] == list(expected), body
    # the example MLflow wrote beside the model, NaN for missing values and all
    example = (pulled / "serving_input_example.json").read_bytes()
    assert b"NaN" in example
    status, body = http("POST", f"{server.url}/invocations", raw=example)
    assert status == 200 and len(body["predictions"]) == 5, body


BAD = [
    ("malformed JSON", None, b'{"instances": [', 400, "malformed JSON"),
    ("empty list", {"instances": []}, None, 400, "empty"),
    ("missing feature", lambda r: r.pop("amount"), None, 422, "instances[0].amount: missing feature"),
    ("unknown feature", lambda r: r.update(coupon=1), None, 422, "instances[0].coupon: unknown feature"),
    ("wrong type", lambda r: r.update(amount="12.5"), None, 422, "instances[0].amount: must be a number"),
    ("bool as number", lambda r: r.update(card_present=1), None, 422, "instances[0].card_present: must be true"),
    ("out of range", lambda r: r.update(hour_of_day=25), None, 422, "above the allowed maximum 23"),
    ("not allowed", lambda r: r.update(channel="fax"), None, 422, "instances[0].channel: 'fax' is not one of"),
    ("null not allowed", lambda r: r.update(amount=None), None, 422, "instances[0].amount: must not be null"),
    ("oversized", None, b'{"instances": [' + b" " * 300_000 + b"]}", 413, "exceeds the limit of 200000 bytes"),
    ("nested too deeply", None, b"[" * 50_000 + b"]" * 50_000, 400, "malformed JSON"),
    ("infinity", None, b'{"instances": [{"amount": Infinity}]}', 400, "Infinity is not a JSON number"),
]


def test_bad_input_gets_4xx_naming_the_problem_and_is_counted(start_server, pulled, trained_model):
    _, rows = trained_model
    server = start_server({"MODEL_PATH": str(pulled), "MODEL_ROLE": "canary", "MAX_BODY_BYTES": "200000"})
    server.wait()
    url = f"{server.url}/v1/models/{MODEL}:predict"
    for name, change, raw, status, message in BAD:
        body = None
        if callable(change):
            row = records(rows.head(1))[0]
            change(row)
            body = {"instances": [row]}
        elif change is not None:
            body = change
        got, headers, answer = exchange("POST", url, body, raw=raw, headers={"X-Request-ID": name.replace(" ", "-")})
        assert got == status and message in answer["error"], (name, got, answer)
        assert headers["X-Request-ID"] == name.replace(" ", "-")  # errors carry it too
    nullable = records(rows.head(1))[0] | {"device_trust_score": None, "distance_from_home_km": None}
    assert http("POST", url, {"instances": [nullable]})[0] == 200  # optional values may be missing
    assert http("POST", f"{server.url}/v1/models/other:predict", {"instances": [nullable]})[0] == 404
    errors = {s[0]["kind"]: s[1] for s in metric_samples(server.metrics_port, "model_inference_errors_total")
              if s[0]["role"] == "canary"}
    assert errors == {"client": len(BAD) + 1, "server": 0}


def test_a_flood_gets_only_200_or_an_immediate_503_with_retry_after_counted_as_shed(start_server, pulled,
                                                                                   trained_model):
    _, rows = trained_model
    server = start_server({"MODEL_PATH": str(pulled), "MODEL_ROLE": "canary", "WORKERS": "1", "MAX_IN_FLIGHT": "2"})
    server.wait()
    url = f"{server.url}/v1/models/{MODEL}:predict"
    body = {"instances": records(rows.head(50))}
    with ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(lambda _: exchange("POST", url, body, timeout=60), range(480)))
    statuses = [status for status, _, _ in answers]
    shed = [(headers, answer) for status, headers, answer in answers if status == 503]
    assert set(statuses) == {200, 503}, sorted(set(statuses))
    assert all(h["Retry-After"] == "1" and h["X-Request-ID"] and "MAX_IN_FLIGHT" in a["error"] for h, a in shed)

    def value(name, **match):
        return sum(v for labels, v in metric_samples(server.metrics_port, name)
                   if all(labels.get(k) == want for k, want in {"role": "canary", **match}.items()))

    assert value("model_inference_shed_total") == len(shed)
    assert value("model_inference_requests_total") == statuses.count(200)
    assert value("model_inference_errors_total") == 0  # shed load is not an error in the canary's error rate


def test_readiness_waits_for_the_model_and_a_broken_model_stays_unready(start_server, pulled, tmp_path):
    server = start_server({"MODEL_PATH": str(pulled)})
    server.wait("/v1/health/live")
    first = http("GET", f"{server.url}/v1/health/ready")
    assert first[0] == 503 and first[1]["reason"] == "loading"
    server.wait()

    broken = start_server({"MODEL_PATH": str(tmp_path / "no-model")})
    broken.wait("/v1/health/live")
    broken.wait("/v1/health/ready", status=503)
    deadline_body = None
    for _ in range(100):
        status, deadline_body = http("GET", f"{broken.url}/v1/health/ready")
        if deadline_body.get("reason") != "loading":
            break
        import time
        time.sleep(0.1)
    assert status == 503 and "no-model" in deadline_body["reason"]
    assert http("POST", f"{broken.url}/invocations", {"instances": [{}]})[0] == 503
    assert "model failed to load" in broken.log.read_text()

    strict = start_server({"MODEL_PATH": str(tmp_path / "no-model"), "FAIL_FAST": "true"})
    assert strict.proc.wait(timeout=60) == 1
    assert "FAIL_FAST" in strict.log.read_text()


def test_concurrent_rows_are_batched_and_metrics_add_up_across_workers(start_server, pulled, trained_model):
    _, rows = trained_model
    server = start_server({"MODEL_PATH": str(pulled), "MODEL_ROLE": "canary", "MAX_BATCH_SIZE": "32"})
    server.wait()
    singles = records(rows.head(200))
    connections = [HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(25)]
    statuses = []
    for start in range(0, 200, 25):  # 25 requests on the wire at once, then their 25 answers
        for conn, row in zip(connections, singles[start:start + 25]):
            conn.request("POST", f"/v1/models/{MODEL}:predict", json.dumps({"instances": [row]}),
                         {"Content-Type": "application/json"})
        for conn in connections:
            answer = conn.getresponse()
            answer.read()
            statuses.append(answer.status)
    assert statuses == [200] * 200

    def value(name, suffix=""):
        return sum(v for labels, v in metric_samples(server.metrics_port, name + suffix)
                   if labels.get("role") == "canary" and labels.get("model") == MODEL
                   and labels.get("model_version") == "1")

    assert value("model_inference_requests_total") == 200
    assert value("model_inference_rows_total") == 200
    assert value("model_inference_duration_seconds", "_count") == 200
    assert value("model_inference_batch_rows", "_sum") == 200
    assert value("model_inference_batch_rows", "_count") < 200  # some calls served several requests


def test_inference_log_holds_exactly_the_rows_sent(start_server, pulled, trained_model, tmp_path):
    _, rows = trained_model
    log_dir = tmp_path / "inference-log"
    server = start_server({"MODEL_PATH": str(pulled), "MODEL_ROLE": "canary", "INFERENCE_LOG_URI": str(log_dir),
                           "INFERENCE_LOG_FLUSH_SECONDS": "60"})
    server.wait()
    sent = rows.head(25)
    url = f"{server.url}/v1/models/{MODEL}:predict"
    predictions, request_ids = [], []
    for start in range(0, 25, 5):
        given = {"X-Request-ID": f"caller-{start}"} if start % 10 == 0 else {}  # the others get one made
        status, headers, body = exchange("POST", url, {"instances": records(sent.iloc[start:start + 5])},
                                         headers=given)
        assert status == 200 and headers["X-Request-ID"] == given.get("X-Request-ID", headers["X-Request-ID"])
        predictions += body["predictions"]
        request_ids += [headers["X-Request-ID"]] * 5
    assert len(set(request_ids)) == 5
    assert server.stop() == 0  # SIGTERM: what is queued is flushed
    table = ds.dataset(str(log_dir), format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(table) == 25 and set(table["model"].astype(str)) == {MODEL}
    assert set(table["role"]) == {"canary"} and set(table["model_version"]) == {"1"}
    assert table["timestamp"].notna().all() and table["hour"].astype(str).str.match(r"\d{4}-\d\d-\d\dT\d\d").all()
    got = table.sort_values(["amount", "account_age_days"]).reset_index(drop=True)
    want = sent.assign(prediction=predictions, request_id=request_ids, row=list(range(5)) * 5) \
        .sort_values(["amount", "account_age_days"]).reset_index(drop=True)
    assert table["row"].dtype == "int64"
    for column in [*sent.columns, "prediction", "request_id", "row"]:
        assert got[column].tolist() == pytest.approx(want[column].tolist(), nan_ok=True) \
            if got[column].dtype.kind == "f" else got[column].tolist() == want[column].tolist(), column


def test_each_logged_row_carries_its_request_id_and_position_on_every_path(start_server, pulled, trained_model,
                                                                           tmp_path):
    _, rows = trained_model
    log_dir = tmp_path / "inference-log"
    server = start_server({"MODEL_PATH": str(pulled), "INFERENCE_LOG_URI": str(log_dir),
                           "INFERENCE_LOG_FLUSH_SECONDS": "60"})
    server.wait()
    url = f"{server.url}/v1/models/{MODEL}:predict"
    sent = {}  # request id -> (its rows, how many times it was sent)

    def send(request_id, frame):
        status, headers, _ = exchange("POST", url, {"instances": records(frame)}, headers={"X-Request-ID": request_id})
        assert status == 200 and headers["X-Request-ID"] == request_id
        sent[request_id] = (frame, sent.get(request_id, (frame, 0))[1] + 1)

    large = rows.head(500)
    assert len(json.dumps(records(large))) > 65_536  # read and checked in a thread, predicted in one: the full path
    send("large", large)
    send("retried", rows.iloc[500:504])  # small bodies: the direct path
    send("retried", rows.iloc[500:504])  # the client retries with the same id: its rows are logged again
    connections = [HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(25)]
    for conn in connections:
        conn.connect()
    for i in range(25):
        sent[f"batched-{i}"] = (rows.iloc[600 + 3 * i:603 + 3 * i], 1)
    bodies = [json.dumps({"instances": records(sent[f"batched-{i}"][0])}) for i in range(25)]
    for i, (conn, body) in enumerate(zip(connections, bodies)):  # 25 requests of 3 rows at once: micro-batched
        conn.request("POST", url, body, {"Content-Type": "application/json", "X-Request-ID": f"batched-{i}"})
    assert [conn.getresponse().status for conn in connections] == [200] * 25
    for conn in connections:
        conn.close()
    calls = sum(v for labels, v in metric_samples(server.metrics_port, "model_inference_batch_rows_count")
                if labels.get("model") == MODEL)
    assert calls < 28  # some model calls served several of the concurrent requests
    assert server.stop() == 0
    table = ds.dataset(str(log_dir), format="parquet", partitioning="hive").to_table().to_pandas()
    assert table["row"].dtype == "int64" and set(table["request_id"]) == set(sent)
    for request_id, (frame, times) in sent.items():
        logged = table[table["request_id"] == request_id].sort_values("row", kind="stable")
        assert logged["row"].tolist() == [i for i in range(len(frame)) for _ in range(times)], request_id
        assert logged["amount"].tolist() == pytest.approx(np.repeat(frame["amount"].to_numpy(), times).tolist(),
                                                          nan_ok=True), request_id


def test_serve_straight_from_the_registry(start_server, registered, trained_model):
    _, rows = trained_model
    server = start_server(args=["--model-uri", registered, "--workers", "1"])
    server.wait()
    status, body = http("POST", f"{server.url}/v1/models/{MODEL}:predict", {"instances": records(rows.head(3))})
    assert status == 200 and body["model_version"] == "1" and len(body["probabilities"]) == 3


def test_every_setting_the_rollout_gives_the_server_is_one_it_reads():
    import yaml

    from serving.config import Settings
    from tests.conftest import ROOT

    rollout = yaml.safe_load((ROOT / "manifests" / "base" / "rollout.yaml").read_text())
    (server,) = [c for c in rollout["spec"]["template"]["spec"]["containers"] if c["name"] == "model-server"]
    known = {Settings.env_name(f) for f in Settings.__dataclass_fields__}
    given = {e["name"] for e in server.get("env", [])}
    assert given and given <= known, given - known
    assert {"MODEL_PATH", "MODEL_ROLE"} <= given
    settings = Settings.from_env({e["name"]: e.get("value", "canary") for e in server["env"]})
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert (ports["http"], ports["metrics"]) == (settings.port, settings.metrics_port)
