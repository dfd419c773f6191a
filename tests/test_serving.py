"""`bigmodel serve`: merging requests, watching versions, and the REST API in-process
against real exports, answering as `bigmodel predict` does."""

import asyncio
import base64
import contextlib
import http.client
import json
import math
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keras_bigmodel as kb
from keras_bigmodel.batching import Batcher
from keras_bigmodel.servables import (
    ExportVersions,
    Servable,
    ServingError,
    Signature,
    TensorInfo,
)
from keras_bigmodel.serving import ModelServer
from tests.tiny_data import FOR_MODEL

# Trained once per test process: the tests using them run in one (make test: loadgroup).
pytestmark = pytest.mark.xdist_group("serving")


class Doubling(Servable):
    """A servable computing `2 * x` with numpy, recording the size of every call; a
    negative value is refused as a bad input would be."""

    def __init__(self, version=1, delay=0.0):
        x, y = {"x": TensorInfo("DT_FLOAT", (-1,))}, {"y": TensorInfo("DT_FLOAT", (-1,))}
        signature = Signature("serving_default", None, x, y)
        super().__init__(version, None, {"serving_default": signature}, {})
        self.batches = []
        self.delay = delay

    def predict(self, signature_name, inputs):
        time.sleep(self.delay)
        self.batches.append(len(inputs["x"]))
        if (inputs["x"] < 0).any():
            raise ServingError(400, "negative input")
        if (inputs["x"] == 13).any():
            return {"y": np.float32(13)}  # no batch dimension: cannot be split back
        return {"y": inputs["x"] * 2}


async def _requests(batcher, servable, values):
    return await asyncio.gather(
        *[
            batcher.predict(servable, "", {"x": np.array(v, dtype=np.float32)}, len(v))
            for v in values
        ],
        return_exceptions=True,
    )


def run_requests(batcher, servable, values):
    batcher.start()
    try:
        return asyncio.run(_requests(batcher, servable, values))
    finally:
        batcher.stop()


def test_concurrent_requests_merge_into_one_call_and_split_back():
    servable = Doubling(delay=0.05)
    values = [[1.0], [2.0, 3.0], [4.0], [5.0], [6.0, 7.0, 8.0]]
    batcher = Batcher(enabled=True, max_batch_size=64, timeout_ms=200)
    answers = run_requests(batcher, servable, values)
    assert [a["y"].tolist() for a in answers] == [[2 * x for x in v] for v in values]
    assert servable.batches == [8]
    assert (batcher.calls, batcher.requests) == (1, 5)


def test_batches_stop_at_max_batch_size_and_without_batching_each_request_is_a_call():
    servable = Doubling()
    values = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0]]
    answers = run_requests(Batcher(True, max_batch_size=4, timeout_ms=200), servable, values)
    assert [a["y"].tolist() for a in answers] == [[2 * x for x in v] for v in values]
    assert servable.batches == [4, 3]
    servable = Doubling()
    run_requests(Batcher(False, max_batch_size=4, timeout_ms=200), servable, values)
    assert servable.batches == [2, 2, 2, 1]


def test_a_bad_request_in_a_merged_call_fails_alone():
    servable = Doubling()
    answers = run_requests(Batcher(True, 64, timeout_ms=200), servable, [[1.0], [-1.0], [3.0]])
    assert answers[0]["y"].tolist() == [2.0] and answers[2]["y"].tolist() == [6.0]
    assert isinstance(answers[1], ServingError) and answers[1].status == 400
    # The merged call, then each request alone.
    assert servable.batches == [3, 1, 1, 1]


def test_requests_of_other_shapes_never_merge_and_a_failing_split_answers_500():
    servable = Doubling()
    batcher = Batcher(True, 64, timeout_ms=200)
    batcher.start()
    try:

        async def ask():
            return await asyncio.gather(
                batcher.predict(servable, "", {"x": np.ones((1, 2), np.float32)}, 1),
                batcher.predict(servable, "", {"x": np.ones((2, 2), np.float32)}, 2),
                batcher.predict(servable, "", {"x": np.ones((1, 3), np.float32)}, 1),
                return_exceptions=True,
            )

        answers = asyncio.run(ask())
        assert [a["y"].shape for a in answers] == [(1, 2), (2, 2), (1, 3)]
        # The two [*, 2] requests merged; the [1, 3] one ran alone.
        assert servable.batches == [3, 1]
        answers = asyncio.run(_requests(batcher, servable, [[13.0], [1.0]]))
        assert all(isinstance(a, ServingError) and a.status == 500 for a in answers)
        assert "does not have the 2 input rows first" in answers[0].message
        # The worker lives on.
        assert asyncio.run(_requests(batcher, servable, [[2.0]]))[0]["y"].tolist() == [4.0]
    finally:
        batcher.stop()


def make_versions(folder, broken=(), slow=()):
    """An export folder of fake versions, loaded by a loader that fails for `broken` ones
    and takes a second for `slow` ones."""

    def load(version, path):
        if version in slow:
            time.sleep(1.0)
        if (path / "broken").exists():
            raise ValueError(f"{path} is not a SavedModel")
        servable = Doubling(version)
        servable.path = path
        return servable

    for version in sorted({*broken, *slow, 1}):
        add_version(folder, version, broken=version in broken)
    return ExportVersions(folder, "fake", poll_seconds=0.05, load=load)


def add_version(folder, version, broken=False):
    path = folder / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    if broken:
        (path / "broken").write_text("")


def test_the_newest_version_serves_and_a_broken_one_never_replaces_it(tmp_path):
    versions = make_versions(tmp_path)
    assert versions.refresh().version == 1
    add_version(tmp_path, 2)
    add_version(tmp_path, 3, broken=True)
    assert versions.refresh().version == 2
    assert versions.status() == [
        {
            "version": "3",
            "state": "END",
            "status": {
                "error_code": "FAILED_PRECONDITION",
                "error_message": f"version 3 failed to load: {tmp_path / '3'} is not a SavedModel",
            },
        },
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}},
    ]
    with pytest.raises(ServingError, match=r"Specific\(fake, 3\); version 3 failed to load"):
        versions.servable(3)
    with pytest.raises(ServingError, match=r"Specific\(fake, 1\); version 1 was replaced by 2"):
        versions.servable(1)
    with pytest.raises(ServingError, match="Could not find version 7 of model fake"):
        versions.status(7)
    # Fixed in place: its files changed, so it is tried again.
    (tmp_path / "3" / "broken").unlink()
    assert versions.refresh().version == 3
    # Version folders are named by digits only; leading zeros are read as TF Serving does.
    add_version(tmp_path, "0004")
    add_version(tmp_path, "\u00b2")
    assert versions.refresh().version == 4 and versions.servable().path.name == "0004"


def test_no_version_that_loads_is_a_404_naming_why(tmp_path):
    versions = make_versions(tmp_path, broken=(1,))
    with pytest.raises(ServingError, match="Could not find any versions of model fake"):
        versions.status()
    assert versions.refresh() is None
    with pytest.raises(ServingError) as caught:
        versions.servable()
    assert caught.value.status == 404
    assert caught.value.message.startswith(
        "Servable not found for request: Latest(fake); version 1 failed to load"
    )


def test_requests_get_503_while_the_first_version_loads(tmp_path):
    versions = make_versions(tmp_path, slow=(2,))
    versions.start()
    try:
        deadline = time.monotonic() + 10
        while 2 not in versions._statuses:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(ServingError) as caught:
            versions.servable()
        assert (caught.value.status, caught.value.message) == (503, "model fake is loading")
        assert versions.status()[0] == {
            "version": "2",
            "state": "LOADING",
            "status": {"error_code": "OK", "error_message": ""},
        }
        versions.ready.wait(5)
        assert versions.servable().version == 2
    finally:
        versions.stop()


def test_over_http_503_while_loading_then_answers_and_chunked_bodies_keep_the_limit(tmp_path):
    add_version(tmp_path, 1)
    server = ModelServer(tmp_path, port=0, poll_seconds=0.05, max_body_mb=0.01)
    release = threading.Event()

    def load(version, path):
        release.wait(10)
        return Doubling(version)

    server.versions._load = load
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    client = Client(server.sock.getsockname()[1], tmp_path.name)
    try:
        assert client.predict({"instances": [1.5]}) == (
            503,
            {"error": f"model {tmp_path.name} is loading"},
        )
        release.set()
        deadline = time.monotonic() + 10
        while version_state(client, 1) != "AVAILABLE":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.predict({"instances": [1.5, 0.25]}) == (200, {"predictions": [3.0, 0.5]})
        # A chunked body has no Content-Length: the limit holds as it is read.
        chunked = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
        chunked.request(
            "POST",
            f"/v1/models/{client.name}:predict",
            body=iter([b" " * 4096] * 4),
            encode_chunked=True,
        )
        answer = chunked.getresponse()
        assert answer.status == 413
        assert "over the limit" in json.loads(answer.read())["error"]
        chunked.close()
        assert client.predict({"instances": [2]}) == (200, {"predictions": [4.0]})
    finally:
        client.close()
        server.stop()
        thread.join(30)


# In-process servers on real exports.


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Each model trained for one epoch on tiny data, exported: name -> (run, data, export)."""
    found = {}
    for name in ("lstm", "transformer", "cnn", "linear"):
        folder = tmp_path_factory.mktemp(name)
        data, options = FOR_MODEL[name](folder)
        run = kb.train(name, data=data, out=folder / "run", epochs=1, quiet=True, **options)
        found[name] = (run.run_dir, data, kb.export(run.run_dir, folder / "export").parent)
    return found


class Client:
    """Keep-alive HTTP to a server on loopback; answers `(status, JSON)`."""

    def __init__(self, port, name):
        self.port, self.name = port, name
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, headers=None):
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        self.connection.request(method, path, body=body, headers=headers or {})
        answer = self.connection.getresponse()
        raw = answer.read()
        assert answer.getheader("content-type") == "application/json"
        return answer.status, json.loads(raw)

    def predict(self, body, version=None):
        where = f"/versions/{version}" if version else ""
        return self.call("POST", f"/v1/models/{self.name}{where}:predict", body)

    def close(self):
        self.connection.close()


@contextlib.contextmanager
def serving(export_dir, **options):
    server = ModelServer(export_dir, port=0, poll_seconds=0.2, **options)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    client = Client(server.sock.getsockname()[1], server.versions.name)
    try:
        assert server.versions.ready.wait(60)
        deadline = time.monotonic() + 30
        while version_state(client, server.versions.servable().version) != "AVAILABLE":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield client, server
    finally:
        client.close()
        server.stop()
        thread.join(30)
        assert not thread.is_alive()


def class_names(table):
    """The classes of a table `bigmodel predict` wrote, from its `prob_<class>` columns."""
    return [column[len("prob_") :] for column in table.columns if column.startswith("prob_")]


def check_agreement(answers, table, class_names):
    if class_names:
        assert [a["label"] for a in answers] == table["prediction"].tolist()
        probabilities = table[[f"prob_{c}" for c in class_names]].to_numpy()
        np.testing.assert_allclose([a["probabilities"] for a in answers], probabilities, atol=1e-5)
    else:
        np.testing.assert_allclose(answers, table["prediction"], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_text_answers_equal_predict_and_the_api_reads_as_tensorflow_serving(exports, model):
    run_dir, data, export_dir = exports[model]
    table = kb.predict(run_dir, data)
    texts = table["text"].tolist()
    classes = class_names(table)
    with serving(export_dir) as (client, server):
        name = client.name
        status, body = client.predict({"instances": texts})
        assert status == 200
        check_agreement(body["predictions"], table, classes)
        # Columnar, one request per text: the same answers, merged or not.
        status, body = client.predict({"inputs": {"text": texts[:5]}})
        assert status == 200 and body["outputs"]["label"] == table["prediction"].tolist()[:5]
        status, body = client.call("GET", f"/v1/models/{name}")
        assert body == {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
        status, body = client.call("GET", f"/v1/models/{name}/versions/1/metadata")
        assert status == 200 and body["model_spec"] == {
            "name": name,
            "signature_name": "",
            "version": "1",
        }
        signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert signature["method_name"] == "tensorflow/serving/predict"
        assert signature["inputs"]["text"]["dtype"] == "DT_STRING"
        assert signature["inputs"]["text"]["tensor_shape"] == {
            "dim": [{"size": "-1", "name": ""}],
            "unknown_rank": False,
        }
        assert signature["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"] == str(
            len(classes)
        )


def robustness_matrix(name):
    """(what, method, path, body, headers, status, words in the error) for a text model."""
    predict = f"/v1/models/{name}:predict"
    return [
        ("malformed JSON", "POST", predict, b'{"instances": [', {}, 400, "JSON Parse error"),
        ("unknown input", "POST", predict, {"instances": [{"txt": "a"}]}, {}, 400,
         "does not have named input: txt"),
        ("wrong dtype", "POST", predict, {"instances": [3]}, {}, 400,
         "is not of expected type: string"),
        ("wrong shape", "POST", predict, {"instances": [["a", "b"]]}, {}, 400,
         "has shape [1,2], but the signature takes [-1]"),
        ("empty instances", "POST", predict, {"instances": []}, {}, 400,
         "No values in 'instances' array"),
        ("invalid base64", "POST", predict, {"instances": [{"b64": "%%%"}]}, {}, 400,
         "Unable to base64 decode"),
        ("both keys", "POST", predict, {"instances": ["a"], "inputs": ["a"]}, {}, 400,
         "expecting only one of 'inputs' or 'instances'"),
        ("neither key", "POST", predict, {"rows": ["a"]}, {}, 400,
         "Missing 'inputs' or 'instances' key"),
        ("unknown signature", "POST", predict, {"signature_name": "x", "instances": ["a"]}, {},
         400, 'Serving signature name: "x" not found in signature def'),
        ("unknown model", "POST", "/v1/models/nope:predict", {"instances": ["a"]}, {}, 404,
         "Servable not found for request: Latest(nope)"),
        ("unknown version", "POST", f"/v1/models/{name}/versions/9:predict",
         {"instances": ["a"]}, {}, 404, f"Servable not found for request: Specific({name}, 9)"),
        ("unknown model status", "GET", "/v1/models/nope", None, {}, 404,
         "Could not find any versions of model nope"),
        ("unknown version status", "GET", f"/v1/models/{name}/versions/9", None, {}, 404,
         f"Could not find version 9 of model {name}"),
        ("version label", "POST", f"/v1/models/{name}/labels/stable:predict",
         {"instances": ["a"]}, {}, 400, "version_label"),
        ("wrong method", "PUT", predict, b"{}", {}, 400, f"Malformed request: PUT {predict}"),
        ("no model name", "GET", "/v1/models", None, {}, 400, "Missing model name in request."),
        ("outside the API", "GET", "/", None, {}, 404, "Malformed request: GET /"),
        ("classify", "POST", f"/v1/models/{name}:classify", {"examples": []}, {}, 400,
         "takes tf.Example inputs"),
        ("oversized body", "POST", predict, b"x" * (2**20 + 10), {}, 413,
         "over the limit of 1 MiB (--max-body-mb)"),
        ("oversized, announced", "POST", predict, b"{}", {"Content-Length": str(5 * 2**20)},
         413, "5.0 MiB or more"),
    ]  # fmt: skip


def test_every_bad_request_gets_its_4xx_and_the_server_answers_after(exports):
    run_dir, data, export_dir = exports["lstm"]
    with serving(export_dir, max_body_mb=1) as (client, _):
        status, good = client.predict({"instances": ["free prize, call now"]})
        assert status == 200
        for what, method, path, body, headers, want, words in robustness_matrix(client.name):
            if "Content-Length" in headers:
                # A body announced larger than it is: answered before it is read.
                connection = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
                connection.putrequest(method, path)
                connection.putheader("Content-Length", headers["Content-Length"])
                connection.endheaders()
                answer = connection.getresponse()
                status, found = answer.status, json.loads(answer.read())
                connection.close()
            else:
                status, found = client.call(method, path, body, headers)
            assert status == want, (what, found)
            assert set(found) == {"error"} and words in found["error"], (what, found)
            assert client.predict({"instances": ["free prize, call now"]}) == (200, good), what
        # A huge string is a text like any other: answered, not refused.
        status, found = client.predict({"instances": ["word " * 150_000]})
        assert status == 200 and found["predictions"][0]["label"] in {"ham", "spam"}


def random_body(rng, names):
    """A random request body: valid JSON of odd shapes and depths, broken JSON, or bytes;
    keys are drawn from the request keys and the input `names`."""
    atoms = [
        "a", "", "NaN", 0, -1, 1.5, 1e308, 10**400, -(2**63), True, None, [], {},
        {"b64": "AAAA"}, {"b64": "?"}, {"b64": "AAA"}, {"text": "x"}, ["a"], [["a"]],
        "\u00e9\u4e2d", "\ud83d\ude00", float("nan"), float("-inf"),
    ]  # fmt: skip

    def value(depth=0):
        roll = rng.random()
        if roll < 0.02:
            deep = rng.choice(atoms)
            for _ in range(rng.randint(30, 120)):
                deep = [deep]
            return deep
        if depth > 3 or roll < 0.5:
            return rng.choice(atoms)
        if roll < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        keys = ["instances", "inputs", "signature_name", "b64", *names]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 3))}

    kind = rng.random()
    if kind < 0.6:
        body = {rng.choice(["instances", "inputs"]): value()}
        if rng.random() < 0.2:
            body["signature_name"] = value()
        raw = json.dumps(body).encode()
    elif kind < 0.8:
        raw = json.dumps(value()).encode()
    else:
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
    if rng.random() < 0.1 and raw:
        raw = raw[: rng.randint(0, len(raw) - 1)]
    return raw


@pytest.mark.parametrize("model", ["lstm", "linear"])
def test_fuzz_never_gets_a_500_and_the_server_lives(exports, model):
    _, _, export_dir = exports[model]
    rng = random.Random(0)
    statuses = {}
    with serving(export_dir) as (client, server):
        inputs = server.versions.servable().signature("").inputs
        names = list(inputs)
        path = f"/v1/models/{client.name}:predict"
        for _ in range(1500):
            status, body = client.call("POST", path, random_body(rng, names))
            statuses[status] = statuses.get(status, 0) + 1
            assert status in (200, 400), body
            assert ("error" in body) == (status != 200)
        valid = {n: "x" if info.dtype == "DT_STRING" else 1.0 for n, info in inputs.items()}
        assert client.predict({"instances": [valid]})[0] == 200
        assert version_state(client, 1) == "AVAILABLE"
    # The mix tried both: answers and refusals.
    assert statuses[400] > 700, statuses
    if model == "lstm":
        assert statuses[200] > 20, statuses


def test_image_bytes_and_table_columns_answer_as_predict(exports):
    run_dir, folder, export_dir = exports["cnn"]
    table = kb.predict(run_dir, folder)
    classes = class_names(table)
    path_column = next(c for c in table.columns if table[c].astype(str).str.endswith(".png").all())
    images = [{"b64": base64.b64encode(open(p, "rb").read()).decode()} for p in table[path_column]]
    with serving(export_dir) as (client, _):
        status, body = client.predict({"instances": images})
        assert status == 200
        check_agreement(body["predictions"], table, classes)
        status, body = client.predict({"instances": [images[0], {"b64": "aGVsbG8="}]})
        assert status == 400 and "Unknown image file format" in body["error"], body
        assert client.predict({"instances": images[:1]})[0] == 200

    run_dir, data, export_dir = exports["linear"]
    table = kb.predict(run_dir, data)
    columns = pd.read_csv(data)
    with serving(export_dir, batching=False) as (client, _):
        inputs = client.call("GET", f"/v1/models/{client.name}/metadata")[1]["metadata"][
            "signature_def"
        ]["signature_def"]["serving_default"]["inputs"]
        # Empty cells as NaN, which the model imputes as predict does.
        rows = [
            {name: (math.nan if pd.isna(row[name]) else row[name]) for name in inputs}
            for _, row in columns.iterrows()
        ]
        status, body = client.predict({"instances": rows})
        assert status == 200, body
        assert any(math.isnan(row["total_bedrooms"]) for row in rows)
        check_agreement(body["predictions"], table, None)


def version_state(client, version):
    status, body = client.call("GET", f"/v1/models/{client.name}/versions/{version}")
    return body["model_version_status"][0]["state"] if status == 200 else None


def test_a_version_exported_while_serving_becomes_the_default(exports, tmp_path):
    run_dir, _, source = exports["lstm"]
    export_dir = tmp_path / "sms"
    shutil.copytree(source, export_dir)
    with serving(export_dir) as (client, server):
        # As export does: written whole beside, then renamed into place.
        shutil.copytree(export_dir / "1", tmp_path / "staging")
        (tmp_path / "staging").rename(export_dir / "2")
        broken = tmp_path / "broken"
        shutil.copytree(export_dir / "1", broken)
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        deadline = time.monotonic() + 30
        while server.versions.servable().version != 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        broken.rename(export_dir / "3")
        while version_state(client, 3) != "END":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status, body = client.call("GET", f"/v1/models/{client.name}")
        states = {
            v["version"]: (v["state"], v["status"]["error_code"])
            for v in body["model_version_status"]
        }
        assert states == {
            "3": ("END", "FAILED_PRECONDITION"),
            "2": ("AVAILABLE", "OK"),
            "1": ("END", "OK"),
        }
        assert (
            client.call("GET", f"/v1/models/{client.name}/metadata")[1]["model_spec"]["version"]
            == "2"
        )
        assert client.predict({"instances": ["hello"]})[0] == 200
        assert client.predict({"instances": ["hello"]}, version=3)[0] == 404


BIGMODEL = Path(sys.executable).with_name("bigmodel")


def test_the_command_logs_each_request_and_stops_on_sigterm_after_answering(exports):
    _, _, export_dir = exports["lstm"]
    # A lone request waits 1.5 s for others to batch with: SIGTERM arrives meanwhile.
    process = subprocess.Popen(
        [BIGMODEL, "serve", export_dir, "--port", "0", "--batch-timeout-ms", "1500"],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stderr], daemon=True
    ).start()
    try:
        first = lines.get(timeout=60)
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/v1/models/export ", first).group(1))
        client = Client(port, "export")
        deadline = time.monotonic() + 60
        while version_state(client, 1) != "AVAILABLE":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        answers = []
        request = threading.Thread(
            target=lambda: answers.append(Client(port, "export").predict({"instances": ["hi"]}))
        )
        request.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        request.join(30)
        assert answers and answers[0][0] == 200, answers
        assert process.wait(timeout=15) == 143
    finally:
        process.kill()
    log = [first]
    while not lines.empty():
        log.append(lines.get())
    log = "".join(log)
    assert re.search(r"127\.0\.0\.1:\d+ GET /v1/models/export/versions/1 200 [\d.]+ ms", log), log
    # The request waited out the batch timeout before it was answered.
    assert re.search(r"127\.0\.0\.1:\d+ POST /v1/models/export:predict 200 \d{4,}\.\d\d ms", log), (
        log
    )
    assert log.rstrip().endswith("Stopped by SIGTERM; requests in flight were answered."), log


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["{missing}"], "{missing}: no such export folder; write one with bigmodel export."),
        (["{run}"], "no SavedModel version folder (1/saved_model.pb, ...) in it"),
        (["{export}", "--port", "{busy}"], "cannot listen there (Address already in use)"),
        (["{export}", "--model-name", "a:b"], "--model-name a:b: a model name cannot contain"),
    ],
)
def test_the_command_refuses_what_it_cannot_serve(invoke, exports, tmp_path, arguments, message):
    run_dir, _, export_dir = exports["lstm"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {
            "missing": tmp_path / "nope",
            "run": run_dir,
            "export": export_dir,
            "busy": busy.getsockname()[1],
        }
        result = invoke("serve", *[a.format(**values) for a in arguments])
    assert result.exit_code == 2, result.output
    assert message.format(**values) in result.output
