# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-serve under load: throughput and p50/p99 latency with 1, 8 and 32 concurrent
clients on localhost, each client sending one sentence per ``POST /entities``.

The model is the tests' tiny one (the ``xlt_tiny`` architecture, 2+2 layers, 64 wide,
a 200-piece vocabulary, trained 40 updates on generated data) unless ``--model`` names
a model folder. The server is ``xlt-serve`` in its own process (one torch thread,
``OMP_NUM_THREADS=1``); the clients are threads of this process with keep-alive
connections. Each level sends ``--requests`` requests (200) or stops after
``--max-seconds`` (60), after a warm-up of 20 requests.

    python benchmarks/bench_serve.py --workdir /tmp/xlt_serve --out benchmarks/results
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))


def tiny_model(workdir: str) -> str:
    """The tests' tiny run (generated data, 40 updates), exported as a model folder."""
    import build_vocab
    import preprocess

    from xlt_fairseq.data.synthetic import write_raw_data
    from xlt_fairseq.experiments.command import synthetic_command, synthetic_preprocess_args
    from xlt_fairseq.experiments.train_records import train_in_process
    from xlt_fairseq.export import export_model

    model = os.path.join(workdir, "model")
    if os.path.isdir(model):
        return model
    raw = write_raw_data(os.path.join(workdir, "raw"))
    enc = os.path.join(workdir, "encoder")
    texts = [p for (task, _, split), p in raw.items() if task in ("mlm", "sentiment") and split == "train"]
    texts += [raw[("translation", "aa-bb", "train")] + ".aa", raw[("translation", "aa-bb", "train")] + ".bb"]
    assert build_vocab.main(["--text", *texts, "--vocab-size", "200", "--out", enc]) == 0
    data = os.path.join(workdir, "data-bin")
    for args in synthetic_preprocess_args(raw, enc, data):
        assert preprocess.main(args) == 0, args
    ck = os.path.join(workdir, "ck")
    argv = synthetic_command(data, ck, 40, log_interval=10).argv() + ["--required-batch-size-multiple", "1"]
    train_in_process(argv)
    export_model(os.path.join(ck, "checkpoint_last.pt"), model)
    return model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn, body: bytes):
    conn.request("POST", "/entities", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
    return data


def run_level(port: int, clients: int, bodies, n_requests: int, max_seconds: float) -> dict:
    lock = threading.Lock()
    state = {"next": 0}
    latencies = []
    stop_at = time.perf_counter() + max_seconds

    def client(_):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while time.perf_counter() < stop_at:
            with lock:
                i = state["next"]
                if i >= n_requests:
                    break
                state["next"] += 1
            t = time.perf_counter()
            post(conn, bodies[i % len(bodies)])
            mine.append(time.perf_counter() - t)
        conn.close()
        return mine

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for part in pool.map(client, range(clients)):
            latencies += part
    wall = time.perf_counter() - start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "clients": clients,
        "requests": len(latencies),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "mean_ms": round(statistics.mean(latencies) * 1000, 2),
    }


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/health")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/xlt_serve")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--model", help="a model folder (default: the tiny model, built in --workdir)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=60)
    parser.add_argument("--levels", default="1,8,32")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = "1"
    model = args.model or tiny_model(args.workdir)

    from xlt_fairseq.data.synthetic import ner_sentence

    rng = random.Random(0)
    bodies = [json.dumps({"texts": [" ".join(ner_sentence(rng, "aa")[0])], "lang": "aa"}).encode() for _ in range(500)]
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen(
        [sys.executable, "-m", "xlt_fairseq.cli.serve", model, "--port", str(port), "--cpu"], env=env
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                info = health(port)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit("xlt-serve did not start")
                time.sleep(0.2)
        run_level(port, 4, bodies, 20, 30)  # warm-up
        levels = []
        for clients in (int(c) for c in args.levels.split(",")):
            before = health(port)["stats"]
            level = run_level(port, clients, bodies, args.requests, args.max_seconds)
            after = health(port)["stats"]
            level["model_calls"] = after["model_calls"] - before["model_calls"]
            level["texts_per_model_call"] = round(level["requests"] / max(level["model_calls"], 1), 2)
            levels.append(level)
            print(json.dumps(level), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    result = {
        "benchmark": "xlt-serve POST /entities, one sentence per request",
        "model": args.model or "tiny (xlt_tiny: 2+2 layers, 64 wide, 200-piece vocabulary; generated data)",
        "heads": info["heads"],
        "server": "xlt-serve --cpu, OMP_NUM_THREADS=1, max-batch 64, max-wait-ms 5",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "commit": commit.stdout.strip(),
        "levels": levels,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "serve.json"), "w") as f:
        json.dump(result, f, indent=2)
    print("| clients | requests | requests/s | p50 ms | p99 ms | texts per model call |")
    print("|---|---|---|---|---|---|")
    for r in levels:
        print(
            f"| {r['clients']} | {r['requests']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['texts_per_model_call']} |"
        )


if __name__ == "__main__":
    main()
