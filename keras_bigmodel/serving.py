"""`bigmodel serve`: TensorFlow Serving's REST API over an export folder, on uvicorn.

Any client written for TensorFlow Serving works unchanged: model status, metadata and
predict, in row or columnar form. Requests are read and answered on the event loop;
model calls run on a worker thread (`batching.Batcher`), merged across concurrent
requests. The export folder is watched: a new version replaces the one serving once it
has loaded, and never while it fails to.

The handler is a plain ASGI app: TensorFlow Serving's URLs (`/v1/models/NAME:predict`)
are its own regular expressions, which a web framework's router would only wrap. Uvicorn
does the HTTP, the connections and the graceful stop.
"""

import asyncio
import json
import logging
import re
import signal
import socket
import threading
import time

from keras_bigmodel.batching import Batcher
from keras_bigmodel.errors import UserError
from keras_bigmodel.servables import ExportVersions, ServingError
from keras_bigmodel.tensor_json import format_response, parse_request, request_tensors

log = logging.getLogger(__name__)
access_log = logging.getLogger("keras_bigmodel.serving.access")

# TensorFlow Serving's URL patterns (model_servers/http_rest_api_util.cc).
_VERSION = r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
POST_PATH = re.compile(
    r"(?i)/v1/models/(?P<name>[^/:]+)" + _VERSION + r":(?P<method>classify|regress|predict)"
)
GET_PATH = re.compile(
    r"(?i)/v1/models(?:/(?P<name>[^/:]+))?" + _VERSION + r"(?:/(?P<sub>metadata))?"
)
API_PATH = re.compile(r"(?i)/v1/.*")


class Endpoints:
    """The REST handler: routes a request to status, metadata or predict for one model.

    Args:
        versions: the `ExportVersions` served.
        batcher: runs the model calls.
        max_body_bytes: larger predict bodies are refused with 413.
    """

    def __init__(self, versions, batcher, max_body_bytes):
        self.versions = versions
        self.batcher = batcher
        self.max_body_bytes = max_body_bytes
        #: requests cancelled unanswered when a stopping server's grace period ended.
        self.cut_off = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        try:
            await self._respond(scope, receive, send, start)
        except asyncio.CancelledError:
            self.cut_off += 1
            raise

    async def _respond(self, scope, receive, send, start):
        status = 500
        try:
            status, body = await self._answer(scope, receive)
        except ServingError as error:
            status, body = error.status, _error_body(error.message)
        except Exception as error:  # a bug: answer it, log it, keep serving
            log.exception("internal error answering %s", scope["path"])
            body = _error_body(f"internal error: {type(error).__name__}: {error}")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            access_log.info(
                "%s %s %s %d %.2f ms",
                f"{client[0]}:{client[1]}" if client else "-",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - start) * 1000,
            )

    async def _answer(self, scope, receive):
        method, path = scope["method"], scope["path"]
        if not API_PATH.fullmatch(path):
            raise ServingError(
                404,
                f"Malformed request: {method} {path}: the API is under /v1/models/"
                f"{self.versions.name}",
            )
        if method == "POST":
            match = POST_PATH.fullmatch(path)
            if match and match["method"] == "predict":
                return 200, await self._predict(match, scope, receive)
            if match and match["method"] in ("classify", "regress"):
                raise ServingError(
                    400,
                    f":{match['method']} takes tf.Example inputs, which bigmodel serve does "
                    "not read; use :predict",
                )
        elif method == "GET":
            match = GET_PATH.fullmatch(path)
            if match and not match["name"]:
                raise ServingError(400, "Missing model name in request.")
            if match and match["sub"] == "metadata":
                return 200, _json(self._metadata(match))
            if match:
                return 200, _json(self._status(match))
        raise ServingError(400, f"Malformed request: {method} {path}")

    def _known(self, name):
        return name == self.versions.name

    def _version(self, match):
        """The version a predict or metadata URL asks for (None: the default)."""
        if not self._known(match["name"]):
            raise ServingError(404, f"Servable not found for request: Latest({match['name']})")
        if match["label"] is not None:
            raise ServingError(
                400,
                "ModelSpec has 'version_label' set, but it is not currently allowed by the "
                "server. (bigmodel serve has no version labels: ask for /versions/N.)",
            )
        return None if match["version"] is None else int(match["version"])

    def _status(self, match):
        # As in TensorFlow Serving, a label is ignored here: all versions are listed.
        if not self._known(match["name"]):
            raise ServingError(404, f"Could not find any versions of model {match['name']}")
        version = None if match["version"] is None else int(match["version"])
        return {"model_version_status": self.versions.status(version)}

    def _metadata(self, match):
        servable = self.versions.servable(self._version(match))
        return {
            "model_spec": {
                "name": self.versions.name,
                "signature_name": "",
                "version": str(servable.version),
            },
            "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
        }

    async def _predict(self, match, scope, receive):
        version = self._version(match)
        body = await self._read_body(scope, receive)
        servable = self.versions.servable(version)
        request, tensors, rows, signature = _read_request(body, servable)
        outputs = await self.batcher.predict(servable, signature.name, tensors, rows)
        return format_response(request.form, {name: outputs[name] for name in signature.outputs})

    async def _read_body(self, scope, receive):
        limit = self.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                raise ServingError(413, _too_large(int(value), limit))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # 499, as TensorFlow Serving logs a cancelled request; nobody reads it.
                raise ServingError(499, "the client closed the connection mid-request")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ServingError(413, _too_large(size, limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _read_request(body, servable):
    request = parse_request(body)
    signature = servable.signature(request.signature_name)
    tensors, rows = request_tensors(request, signature.inputs)
    return request, tensors, rows, signature


def _too_large(size, limit):
    return (
        f"the request body has {size / 2**20:.1f} MiB or more, over the limit of "
        f"{limit / 2**20:g} MiB (--max-body-mb)"
    )


def _json(document):
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _error_body(message):
    return _json({"error": message})


def bind(host, port):
    """A listening socket on `host:port` (port 0: a free one).

    Raises:
        UserError: the address cannot be bound (in use, or not this machine's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UserError(
            f"--host {host} --port {port}: cannot listen there ({error.strerror}); choose "
            "another --port, or a --host of this machine."
        ) from None
    sock.listen(2048)
    return sock


#: how long a stopping server waits for the requests in flight.
GRACE_SECONDS = 5


class ModelServer:
    """A model server on one socket: the export folder's versions, the batcher, uvicorn.

    Args:
        export_dir: an export folder of numbered SavedModel version folders.
        host: the address to listen on.
        port: the TCP port (0: a free one; `url` says which).
        model_name: the name in the URLs; by default the export folder's name.
        max_body_mb: larger request bodies are refused with 413.
        batching: merge concurrent requests into one model call.
        max_batch_size: the most rows one merged call takes.
        batch_timeout_ms: how long a batch waits for more requests (0: not at all).
        poll_seconds: how often the export folder is read for new versions.
    """

    def __init__(
        self,
        export_dir,
        host="127.0.0.1",
        port=8501,
        model_name=None,
        max_body_mb=64,
        batching=True,
        max_batch_size=64,
        batch_timeout_ms=0.0,
        poll_seconds=1.0,
    ):
        import uvicorn

        self.versions = open_export(export_dir, model_name, poll_seconds)
        self.batcher = Batcher(batching, max_batch_size, batch_timeout_ms)
        self.sock = bind(host, port)
        self.app = Endpoints(self.versions, self.batcher, int(max_body_mb * 2**20))
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACE_SECONDS,
            server_header=False,
        )
        self.server = uvicorn.Server(config)

    @property
    def url(self):
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/v1/models/{self.versions.name}"

    def run(self):
        """Serves until `stop()` or SIGINT/SIGTERM; returns the signal that stopped it, if
        any, once the requests in flight have been answered (or, after `GRACE_SECONDS`,
        cut off: `self.app.cut_off` counts them)."""
        stopped_by = []

        def record(signum, frame):
            stopped_by.append(signum)

        # Uvicorn catches the signals while it serves and raises them again once it has
        # stopped; these handlers then record which one it was. Off the main thread (tests)
        # there are no signals: stop() ends the server.
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, record) for sig in SIGNALS}
        self.versions.start()
        self.batcher.start()
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.versions.stop()
            self.batcher.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return stopped_by[0] if stopped_by else None

    def stop(self):
        self.server.should_exit = True


SIGNALS = (signal.SIGINT, signal.SIGTERM)


def open_export(export_dir, model_name=None, poll_seconds=1.0):
    """The versions of an export folder, checked for at least one SavedModel version.

    Raises:
        UserError: the folder does not exist or holds no SavedModel version folder.
    """
    from pathlib import Path

    folder = Path(export_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such export folder; write one with bigmodel export.")
    name = model_name or folder.resolve().name
    if not re.fullmatch(r"[^/:]+", name):
        raise UserError(f"--model-name {name}: a model name cannot contain '/' or ':'.")
    versions = ExportVersions(folder, name, poll_seconds)
    if not versions.versions_on_disk():
        raise UserError(
            f"{folder}: no SavedModel version folder (1/saved_model.pb, ...) in it; write "
            f"one with: bigmodel export RUN_DIR --out {folder}"
        )
    return versions
