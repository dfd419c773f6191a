"""The versions of an export folder, as `bigmodel serve` loads and serves them.

An export folder holds numbered version folders (`bigmodel export` writes each whole,
then renames it into place). The newest SavedModel version that loads is served; the
folder is polled, and a newer version is loaded beside the one serving and replaces it
only once it has loaded and answered a call. A version that fails keeps the one serving,
is reported in the status with its error, and is tried again only if its files change.
States and their names are TensorFlow Serving's (`LOADING`, `AVAILABLE`, `END`).
"""

import json
import logging
import re
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
_VERSION_NAME = re.compile(r"[0-9]+")
#: what `bigmodel export` records in each version folder (exporting.EXPORT_FILE).
EXPORT_RECORD = "export.json"
PREDICT_METHOD = "tensorflow/serving/predict"
DEFAULT_SIGNATURE = "serving_default"

LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"


class ServingError(Exception):
    """A request the server refuses, with the HTTP status TensorFlow Serving answers."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class TensorInfo:
    """A signature's input or output: TensorFlow Serving's dtype name (`DT_STRING`) and
    shape (-1: any size; `None`: unknown rank)."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype, shape):
        self.dtype = dtype
        self.shape = shape


class Signature:
    """One signature of a loaded version: its name, its inputs and outputs by name, and
    the concrete function computing it."""

    def __init__(self, name, function, inputs, outputs):
        self.name = name
        self.function = function
        self.inputs = inputs
        self.outputs = outputs


class Servable:
    """One loaded SavedModel version."""

    def __init__(self, version, path, signatures, signature_defs, loaded=None):
        self.version = version
        self.path = path
        self.signatures = signatures
        #: the signature defs of `saved_model.pb` as protobuf JSON, for `/metadata`.
        self.signature_defs = signature_defs
        #: the loaded SavedModel, which keeps the functions' variables alive.
        self.loaded = loaded

    def signature(self, name):
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise ServingError(400, f'Serving signature name: "{name}" not found in signature def')
        return self.signatures[name]

    def predict(self, signature_name, inputs):
        """Runs a signature on named numpy arrays; returns its outputs as numpy arrays.

        Raises:
            ServingError: with the HTTP status TensorFlow Serving gives the TensorFlow
                error: 400 for an input the graph refuses (an image that does not
                decode), 429 for one it runs out of memory on.
        """
        import tensorflow as tf

        signature = self.signature(signature_name)
        try:
            outputs = signature.function(
                **{name: tf.constant(values) for name, values in inputs.items()}
            )
        except tf.errors.OpError as error:
            status = _HTTP_STATUS.get(type(error).__name__, 500)
            raise ServingError(status, _tensorflow_message(error.message)) from None
        except ValueError as error:  # refused before the graph runs (a dtype, a shape)
            raise ServingError(400, _tensorflow_message(str(error))) from None
        return {name: value.numpy() for name, value in outputs.items()}


#: TensorFlow's errors as TensorFlow Serving answers them (model_servers/http_server.cc).
_HTTP_STATUS = {
    "InvalidArgumentError": 400,
    "FailedPreconditionError": 400,
    "OutOfRangeError": 400,
    "NotFoundError": 404,
    "ResourceExhaustedError": 429,
    "UnimplementedError": 501,
    "UnavailableError": 503,
    "DeadlineExceededError": 504,
}


def _first_line(message):
    return message.strip().split("\n")[0].strip() or "unknown error"


_PREAMBLES = ("Graph execution error", "Detected at node", "<stack traces")


def _tensorflow_message(message):
    """What a TensorFlow error says, without the graph node, the stack of frames and the
    preamble that eager execution wraps it in."""
    lines = [line for line in message.splitlines() if line.strip()]
    said = [
        line.strip()
        for line in lines
        if not line.startswith((" ", "\t")) and not line.startswith(_PREAMBLES)
    ]
    text = said[-1] if said else (lines[0] if lines else "")
    text = re.sub(r"\s*(\[\[.*|\[Op:[^\]]*\])$", "", text).strip()
    return text or "the model refused the input"


def load_servable(version, path):
    """Loads a SavedModel version folder and checks every predict signature answers."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
    definitions = proto.meta_graphs[0].signature_def
    loaded = tf.saved_model.load(str(path))
    signatures = {}
    for name, definition in definitions.items():
        if definition.method_name != PREDICT_METHOD or name not in loaded.signatures:
            continue
        signatures[name] = Signature(
            name,
            loaded.signatures[name],
            {key: _tensor_info(value) for key, value in definition.inputs.items()},
            {key: _tensor_info(value) for key, value in definition.outputs.items()},
        )
    if not signatures:
        raise ValueError(f"{path} has no predict signature")
    servable = Servable(
        version,
        path,
        signatures,
        {
            name: json_format.MessageToDict(
                definition,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            for name, definition in definitions.items()
        },
        loaded,
    )
    return servable


def _tensor_info(proto):
    from tensorflow.core.framework import types_pb2

    shape = (
        None
        if proto.tensor_shape.unknown_rank
        else tuple(int(dim.size) for dim in proto.tensor_shape.dim)
    )
    return TensorInfo(types_pb2.DataType.Name(proto.dtype), shape)


class VersionStatus:
    """What the status endpoint reports about one version."""

    __slots__ = ("version", "state", "error_code", "error_message", "stamp")

    def __init__(self, version, state, error_code="OK", error_message="", stamp=None):
        self.version = version
        self.state = state
        self.error_code = error_code
        self.error_message = error_message
        #: the files' sizes and times when it failed: changed files are tried again.
        self.stamp = stamp

    def as_json(self):
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


class ExportVersions:
    """The versions of one export folder: which is serving, which are loading or failed.

    Args:
        folder: the export folder (numbered version folders inside).
        name: the model name clients use.
        poll_seconds: how often the folder is read for new versions.
        load: loads one version folder (`load_servable`); tests may pass their own.
    """

    def __init__(self, folder, name, poll_seconds=1.0, load=load_servable):
        self.folder = Path(folder)
        self.name = name
        self.poll_seconds = poll_seconds
        self._load = load
        self._lock = threading.Lock()
        self._statuses = {}
        self._serving = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="version-poller", daemon=True)
        self.ready = threading.Event()

    def versions_on_disk(self):
        """The folder's SavedModel version folders: version number to path."""
        return {
            version: path
            for version, path in self._version_folders()
            if (path / SAVED_MODEL_FILE).is_file()
        }

    def _version_folders(self):
        # Folder names of digits only, as TensorFlow Serving reads them (`007` is 7).
        for path in sorted(self.folder.iterdir()) if self.folder.is_dir() else ():
            if _VERSION_NAME.fullmatch(path.name) and path.is_dir():
                yield int(path.name), path

    def start(self):
        """Starts loading the newest version and watching the folder, in the background."""
        self._thread.start()

    def stop(self, timeout=5):
        self._stopped.set()
        self._thread.join(timeout)

    def _poll(self):
        while not self._stopped.is_set():
            try:
                self.refresh()
            except Exception:  # never let the poller die: the server must keep serving
                log.exception("reading %s failed", self.folder)
            self._stopped.wait(self.poll_seconds)

    def refresh(self):
        """Loads the newest version that has not failed (with the same files) if it is not
        the one serving; returns the version serving afterwards."""
        self._note_other_formats()
        on_disk = self.versions_on_disk()
        for version in sorted(on_disk, reverse=True):
            serving = self._serving
            if serving is not None and version == serving.version:
                break
            status = self._statuses.get(version)
            path = on_disk[version]
            if status is not None and status.state == END:
                if status.error_code == "OK" or status.stamp == _stamp(path):
                    continue
            if self._try_load(version, path):
                break
        self.ready.set()
        return self._serving

    def _note_other_formats(self):
        """Reports version folders of TFLite or ONNX exports, which are not served."""
        for version, path in self._version_folders():
            if version in self._statuses:
                continue
            record = path / EXPORT_RECORD
            if (path / SAVED_MODEL_FILE).exists() or not record.is_file():
                continue
            try:
                fmt = json.loads(record.read_text(encoding="utf-8")).get("format", "unknown")
            except (OSError, ValueError):
                continue
            message = (
                f"version {version} is a {fmt} export; bigmodel serve serves SavedModel "
                "versions (bigmodel export --format saved_model)"
            )
            log.warning("%s", message)
            with self._lock:
                self._statuses[version] = VersionStatus(
                    version, END, "FAILED_PRECONDITION", message
                )

    def _try_load(self, version, path):
        with self._lock:
            self._statuses[version] = VersionStatus(version, LOADING)
        log.info("Loading version %d of %s from %s", version, self.name, path)
        stamp = _stamp(path)
        try:
            servable = self._load(version, path)
            _check_answers(servable)
        except Exception as error:
            message = f"version {version} failed to load: {_first_line(str(error))}"
            log.warning("%s; %s", message, self._still_serving())
            with self._lock:
                self._statuses[version] = VersionStatus(
                    version, END, "FAILED_PRECONDITION", message, stamp
                )
            return False
        with self._lock:
            previous = self._serving
            self._serving = servable
            self._statuses[version] = VersionStatus(version, AVAILABLE)
            if previous is not None:
                self._statuses[previous.version] = VersionStatus(previous.version, END)
        log.info("Serving version %d of %s", version, self.name)
        return True

    def _still_serving(self):
        serving = self._serving
        return "nothing is served yet" if serving is None else f"still serving {serving.version}"

    def servable(self, version=None):
        """The servable to answer a request for `version` (None: the default one).

        Raises:
            ServingError: 404 for a version never seen or no longer served, 503 while the
                version asked for (or, with none asked for, the first one) loads.
        """
        serving = self._serving
        if version is None:
            if serving is not None:
                return serving
            raise self._unavailable()
        if serving is not None and serving.version == version:
            return serving
        status = self._statuses.get(version)
        if status is not None and status.state == LOADING:
            raise ServingError(503, f"version {version} of model {self.name} is loading")
        message = f"Servable not found for request: Specific({self.name}, {version})"
        if status is not None and status.error_message:
            message += f"; {status.error_message}"
        elif status is not None and serving is not None:
            message += f"; version {version} was replaced by {serving.version}"
        raise ServingError(404, message)

    def _unavailable(self):
        """503 while a version loads; 404, with why, when none loads."""
        with self._lock:
            statuses = list(self._statuses.values())
        if not statuses or any(status.state == LOADING for status in statuses):
            return ServingError(503, f"model {self.name} is loading")
        failures = "; ".join(status.error_message for status in statuses)
        return ServingError(404, f"Servable not found for request: Latest({self.name}); {failures}")

    def status(self, version=None):
        """TensorFlow Serving's `model_version_status` list, newest version first."""
        with self._lock:
            statuses = sorted(self._statuses.values(), key=lambda s: -s.version)
        if not statuses:
            raise ServingError(404, f"Could not find any versions of model {self.name}")
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise ServingError(
                    404,
                    f"Could not find version {version} of model {self.name}",
                )
        return [status.as_json() for status in statuses]


def _check_answers(servable):
    """Calls each signature once on one row of neutral values (zeros, empty strings): a
    version that loads but cannot answer must not replace one that can. A 400 passes only
    for a signature taking strings, which an empty string may fail (it is no image)."""
    from keras_bigmodel.tensor_json import numpy_dtype

    for name, signature in servable.signatures.items():
        if any(
            info.shape is None
            or -1 in info.shape[1:]
            or (info.dtype != "DT_STRING" and numpy_dtype(info.dtype) is None)
            for info in signature.inputs.values()
        ):
            continue  # no neutral row to make: requests will tell
        inputs = {}
        for key, info in signature.inputs.items():
            if info.dtype == "DT_STRING":
                inputs[key] = np.full((1, *info.shape[1:]), b"", dtype=object)
            else:
                inputs[key] = np.zeros((1, *info.shape[1:]), dtype=numpy_dtype(info.dtype))
        try:
            servable.predict(name, inputs)
        except ServingError as error:
            takes_strings = any(i.dtype == "DT_STRING" for i in signature.inputs.values())
            if error.status != 400 or not takes_strings:
                raise


def _stamp(path):
    return tuple(
        sorted(
            (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in Path(path).rglob("*")
            if p.is_file()
        )
    )
