"""Load on `bigmodel serve` over loopback: latency and requests per second by clients.

    python benchmarks/serve_load.py EXPORT_DIR BODIES.jsonl [--clients 1,8,32]
        [--seconds 5] [--batching on,off]

For each batching setting a fresh `bigmodel serve` process serves EXPORT_DIR on a free
port; for each number of clients, that many keep-alive connections each send predict
requests one after another (the next as soon as the answer is read) for `--seconds`,
taking bodies in turn from BODIES.jsonl (one JSON request per line). The client is plain
asyncio on raw sockets, so that it takes as little of the machine's CPU as it can: it
shares the machine with the server. Prints one JSON line per setting: p50 and p99
milliseconds, requests per second, and the statuses seen; any answer but a 200 stops it.
"""

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(export_dir, port, batching, log_path):
    command = [
        BIN / "bigmodel",
        "serve",
        export_dir,
        "--port",
        str(port),
        "--batching" if batching else "--no-batching",
    ]
    log = open(log_path, "w")  # noqa: SIM115  (closed by stop_server)
    process = subprocess.Popen(command, stdout=log, stderr=log)
    process.log = log
    return process


def wait_until_serving(port, name, process, timeout=120):
    url = f"http://127.0.0.1:{port}/v1/models/{name}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bigmodel serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                states = [v["state"] for v in json.load(answer)["model_version_status"]]
                if "AVAILABLE" in states:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become AVAILABLE within {timeout} s")


def stop_server(process):
    process.terminate()
    process.wait(timeout=30)
    process.log.close()


async def one_client(port, path, requests, deadline, latencies, statuses):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < deadline:
            request = requests[i % len(requests)]
            i += 1
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def http_requests(path, bodies):
    return [
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]


async def load(port, path, bodies, clients, seconds):
    requests = http_requests(path, bodies)
    # Warm up: every connection once, so no first-call cost lands in the figures.
    await asyncio.gather(
        *[
            one_client(port, path, requests, time.perf_counter() + 0.5, [], {})
            for _ in range(clients)
        ]
    )
    latencies, statuses = [], {}
    began = time.perf_counter()
    deadline = began + seconds
    await asyncio.gather(
        *[one_client(port, path, requests, deadline, latencies, statuses) for _ in range(clients)]
    )
    elapsed = time.perf_counter() - began
    if set(statuses) != {200}:
        raise RuntimeError(f"answers other than 200 under load: {statuses}")
    ms = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def measure(export_dir, bodies, clients, seconds, batching, log_dir):
    """Figures for each number of `clients`, against one fresh server process."""
    name = Path(export_dir).resolve().name
    port = free_port()
    log_path = Path(log_dir) / f"serve-{name}-{'batching' if batching else 'no-batching'}.log"
    process = start_server(export_dir, port, batching, log_path)
    try:
        wait_until_serving(port, name, process)
        path = f"/v1/models/{name}:predict"
        found = []
        for count in clients:
            result = asyncio.run(load(port, path, bodies, count, seconds))
            result["batching"] = batching
            found.append(result)
            print(f"  {name}: {json.dumps(result)}", flush=True)
        return found
    finally:
        stop_server(process)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir")
    parser.add_argument("bodies", help="a JSON Lines file: one predict request body per line")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--batching", default="on,off")
    parser.add_argument("--log-dir", default=os.environ.get("TMPDIR", "/tmp"))
    args = parser.parse_args()
    bodies = [line.encode() for line in Path(args.bodies).read_text().splitlines() if line]
    clients = [int(c) for c in args.clients.split(",")]
    for setting in args.batching.split(","):
        measure(args.export_dir, bodies, clients, args.seconds, setting == "on", args.log_dir)


if __name__ == "__main__":
    main()
