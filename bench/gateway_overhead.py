"""What the serving gateway adds to a single-row LightGBM prediction, and how fast it rolls back.

Compares, on the same payloads: the registered version's predict_proba called directly (in a
process of its own, on a frame built by pandas from the records, and on the frame the gateway
builds); the gateway answering from the champion only; the gateway with a canary (10%) and a
shadow on. Setups are measured in alternating chunks so outside load falls on all alike. Then
rollback latency: the champion alias moved back to the previous version -> the gateway answering
with it, followed by polling and by a signed webhook delivery (as an MLflow server sends one).

Everything runs on loopback against a temporary SQLite MLflow store; loops are bounded.

    .venv/bin/python bench/gateway_overhead.py [--requests 3000] [--rounds 30] [--rollbacks 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

# One OpenMP thread for LightGBM, in-process and in the gateways alike: on a single row more
# threads only add wake-up cost and contend with the other processes on the machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret"
NUMERIC = ["sessions_7d", "days_since_signup", "avg_order_value", "support_tickets"]
CATEGORICAL = ["plan", "region"]


def synthetic(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows shaped like the demo policy's features, with a learnable churn signal."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sessions_7d": rng.poisson(5, rows).astype(float),
            "days_since_signup": rng.integers(1, 1500, rows).astype(float),
            "avg_order_value": rng.gamma(2, 20, rows),
            "support_tickets": rng.poisson(0.5, rows).astype(float),
            "plan": rng.choice(["free", "pro", "team"], rows),
            "region": rng.choice(["eu", "us", "apac"], rows),
        }
    )
    logit = 0.5 - 0.3 * frame["sessions_7d"] + 0.6 * frame["support_tickets"]
    return frame, (rng.random(rows) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)


def log_lightgbm(experiment_id: str, seed: int):
    """Train the workflow's LightGBM pipeline and log it as the workflow does; returns it too."""
    import mlflow
    from mlflow.models import infer_signature

    from policies.schema import FeatureColumns, ModelSpec
    from workflow.modeling import build_pipeline, untrusted_types

    frame, labels = synthetic(2000, seed)
    spec = ModelSpec(
        flavor="lightgbm_classifier",
        hyperparameters={"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 15},
    )
    pipeline = build_pipeline(spec, FeatureColumns(numeric=NUMERIC, categorical=CATEGORICAL), seed)
    pipeline.fit(frame, labels)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, pipeline.predict_proba(frame)[:, 1]),
            input_example=frame.head(3),
            serialization_format="skops",
            skops_trusted_types=untrusted_types(pipeline),
        )
    return pipeline, info.model_uri, run.info.run_id


def summary(latencies_s: list[float], busy_s: float) -> dict[str, float]:
    """p50/p99 in ms and throughput (requests per second of measuring)."""
    ms = np.asarray(latencies_s) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "throughput_rps": len(ms) / busy_s,
    }


class Direct:
    """predict_proba of the registered version, called directly in a process of its own.

    One call per message, answered before the next is sent: like the gateway's process, the
    worker sleeps between calls, so both meet the same scheduling when the machine is busy (a
    tight loop is preempted far more than a process that waits). Only the call is timed, and
    throughput is calls per second of calling.
    """

    def __init__(self, model: str, frame: str) -> None:
        self.frame = frame
        self.worker = subprocess.Popen(
            [sys.executable, __file__, "--direct-worker", model],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _call(self, index: int) -> float:
        self.worker.stdin.write(f"{self.frame} {index}\n")
        self.worker.stdin.flush()
        return float(self.worker.stdout.readline())

    def warm(self, payloads: list[dict]) -> None:
        for index in range(200):
            self._call(index)

    def run(self, payloads: list[dict], start: int, count: int) -> tuple[list[float], float]:
        latencies = [self._call(i) for i in range(start, start + count)]
        return latencies, sum(latencies)

    def close(self) -> None:
        self.worker.stdin.close()
        self.worker.wait(30)


def direct_worker(model: str) -> None:
    """Load version 1 of `model` from the registry; time one predict_proba per line read."""
    import registry
    from registry.serving import get_serving_metadata

    pipeline = registry.load_model(model, 1)
    make_frame = {
        "pandas": records_frame,
        "gateway": gateway_frame(get_serving_metadata(model, 1).columns),
    }
    payloads = bench_payloads()
    for line in sys.stdin:
        frame, index = line.split()
        t0 = time.perf_counter()
        pipeline.predict_proba(make_frame[frame](payloads[int(index) % len(payloads)]))
        print(time.perf_counter() - t0, flush=True)


def bench_payloads() -> list[dict]:
    """The single-row payloads every setup is measured on."""
    frame, _ = synthetic(500, seed=7)
    return [{"dataframe_records": [record]} for record in frame.to_dict("records")]


def records_frame(payload: dict) -> pd.DataFrame:
    """The frame a caller would build: pandas' own reading of the records."""
    return pd.DataFrame(payload["dataframe_records"])


def gateway_frame(columns) -> Callable[[dict], pd.DataFrame]:
    """The frame the gateway builds (typed by the logged signature), so only the gateway's own
    work separates this baseline from the gateway."""
    from gateway.payload import conform, parse_payload

    def make(payload: dict) -> pd.DataFrame:
        return conform(parse_payload(payload, 10), columns, None)

    return make


class ThroughGateway:
    """POST /invocations one request at a time over a kept-alive connection."""

    def __init__(self, url: str, model: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        self.path = f"/models/{model}/invocations"
        self.by_request: dict[str, float] = {}

    def warm(self, payloads: list[dict]) -> None:
        for payload in payloads[:200]:
            self.client.post(self.path, json=payload).raise_for_status()

    def run(self, payloads: list[dict], start: int, count: int) -> tuple[list[float], float]:
        headers = {"content-type": "application/json"}
        bodies = [json.dumps(payload).encode() for payload in payloads]
        latencies = []
        started = time.perf_counter()
        for i in range(start, start + count):
            t0 = time.perf_counter()
            response = self.client.post(
                self.path,
                content=bodies[i % len(bodies)],
                headers={**headers, "X-Routing-Key": f"user-{i}"},
            )
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"gateway answered {response.status_code}: {response.text}")
            self.by_request[response.headers["X-Request-Id"]] = latencies[-1]
        return latencies, time.perf_counter() - started

    def added_ms(self, log_url: str) -> dict[str, float]:
        """Per request, client-seen latency minus the model's own time as the gateway logged it:
        what the gateway adds, measured on the same request, so a slow moment of the machine
        slows both terms alike."""
        import sqlalchemy as sa

        engine = sa.create_engine(log_url)
        with engine.connect() as connection:
            logged = dict(
                connection.execute(
                    sa.text(
                        "SELECT request_id, latency_ms FROM prediction_log WHERE role != 'shadow'"
                    )
                ).all()
            )
        engine.dispose()
        added = np.asarray(
            [
                total * 1000 - logged[request_id]
                for request_id, total in self.by_request.items()
                if request_id in logged
            ]
        )
        return {
            "p50_ms": float(np.percentile(added, 50)),
            "p99_ms": float(np.percentile(added, 99)),
        }


def interleaved(setups: dict, payloads: list[dict], requests: int, rounds: int) -> dict:
    """Measure every setup in alternating chunks, so load from outside the benchmark that
    comes and goes during the run falls on all setups alike."""
    for setup in setups.values():
        setup.warm(payloads)
    latencies: dict[str, list[float]] = {name: [] for name in setups}
    busy = dict.fromkeys(setups, 0.0)
    chunk = requests // rounds
    for round_index in range(rounds):
        for name, setup in setups.items():
            measured, busy_s = setup.run(payloads, round_index * chunk, chunk)
            latencies[name] += measured
            busy[name] += busy_s
    return {name: summary(latencies[name], busy[name]) for name in setups}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gateway(
    workdir: Path, models: list[str], refresh_s: float, extra_flags: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str, str]:
    """A gateway on a free loopback port; returns the process, its URL and its log's URL."""
    port = free_port()
    log_url = f"sqlite:///{workdir / f'predictions-{port}.db'}"
    flags = [arg for model in models for arg in ("--model", model)]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "--port",
            str(port),
            "--refresh-interval",
            str(refresh_s),
            "--log-url",
            log_url,
            "--log-level",
            "warning",
            *flags,
            *extra_flags,
        ],
        cwd=ROOT,
        env={**os.environ, "GATEWAY_WEBHOOK_SECRET": SECRET},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url, log_url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("gateway did not become ready")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def switch_latency(
    url: str, model: str, to_version: int, kind: str, payload: dict, notify
) -> float:
    """Seconds from `move_alias` returning to the first answer from `to_version`."""
    import registry

    with httpx.Client(base_url=url, timeout=30) as client:
        registry.move_alias(
            model, "champion", to_version, kind=kind, actor="bench", reason="rollback latency"
        )
        moved = time.perf_counter()
        notify()
        while time.perf_counter() - moved < 30:
            answer = client.post(f"/models/{model}/invocations", json=payload).json()
            if answer["version"] == to_version:
                return time.perf_counter() - moved
        raise RuntimeError(f"move to version {to_version} not followed within 30 s")


def deliver_webhook(url: str, model: str, version: int) -> None:
    """POST a delivery signed exactly as MLflow's server signs one."""
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "data": {"name": model, "alias": "champion", "version": str(version)},
        }
    )
    delivery_id, timestamp = str(uuid.uuid4()), str(int(time.time()))
    httpx.post(
        f"{url}/webhooks/mlflow",
        content=body,
        headers={
            "X-MLflow-Delivery-Id": delivery_id,
            "X-MLflow-Timestamp": timestamp,
            "X-MLflow-Signature": _generate_hmac_signature(SECRET, delivery_id, timestamp, body),
        },
    ).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per setup")
    parser.add_argument("--rounds", type=int, default=30, help="alternating chunks per setup")
    parser.add_argument("--rollbacks", type=int, default=5, help="rollbacks timed per path")
    parser.add_argument("--direct-worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct_worker:
        direct_worker(args.direct_worker)
        return

    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    import mlflow

    import registry

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.create_experiment("bench", artifact_location=str(workdir / "artifacts"))
    logged = [log_lightgbm(experiment, seed) for seed in (1, 2, 3)]
    for name, aliases in (
        ("bench_plain", ["champion"]),
        ("bench_full", ["champion", "canary", "shadow"]),
    ):
        registry.ensure_registered_model(name)
        for alias, (_, uri, run_id) in zip(aliases, logged, strict=False):
            version = registry.register_version(name, uri, run_id=run_id, tags={}, description="")
            registry.move_alias(
                name,
                alias,
                version.version,
                kind="promote",
                actor="bench",
                reason="benchmark setup",
            )
    payloads = bench_payloads()

    load_before = os.getloadavg()
    direct_pandas, direct_gateway = (
        Direct("bench_plain", "pandas"),
        Direct("bench_plain", "gateway"),
    )
    plain_process, plain_url, plain_log = start_gateway(workdir, ["bench_plain"], refresh_s=60)
    full_process, full_url, full_log = start_gateway(workdir, ["bench_full:0.1"], refresh_s=60)
    plain_client = ThroughGateway(plain_url, "bench_plain")
    full_client = ThroughGateway(full_url, "bench_full")
    try:
        results = interleaved(
            {
                "direct, pandas frame": direct_pandas,
                "direct, gateway's frame": direct_gateway,
                "gateway, champion only": plain_client,
                "gateway, canary 10% + shadow": full_client,
            },
            payloads,
            args.requests,
            args.rounds,
        )
        status = httpx.get(f"{full_url}/models/bench_full").json()
    finally:
        stop(plain_process)
        stop(full_process)
        direct_pandas.close()
        direct_gateway.close()

    print(
        f"single-row LightGBM, {args.requests} sequential requests per setup in "
        f"{args.rounds} alternating rounds, one client, OMP_NUM_THREADS="
        f"{os.environ['OMP_NUM_THREADS']}; load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print(f"{'setup':32} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for setup, figures in results.items():
        print(
            f"{setup:32} {figures['p50_ms']:8.3f} {figures['p99_ms']:8.3f} "
            f"{figures['throughput_rps']:8.0f}"
        )
    base, plain = results["direct, gateway's frame"], results["gateway, champion only"]
    full = results["gateway, canary 10% + shadow"]
    print("\nagainst the direct call on the gateway's frame:")
    print(
        f"added at p99, champion only: {plain['p99_ms'] - base['p99_ms']:.3f} ms; "
        f"with canary + shadow: {full['p99_ms'] - base['p99_ms']:.3f} ms"
    )
    print(
        f"throughput vs direct: champion only {plain['throughput_rps'] / base['throughput_rps']:.2f}x, "
        f"canary + shadow {full['throughput_rps'] / base['throughput_rps']:.2f}x"
    )
    print(
        f"canary + shadow vs champion only: p50 {full['p50_ms'] / plain['p50_ms'] - 1:+.1%}, "
        f"p99 {full['p99_ms'] / plain['p99_ms'] - 1:+.1%}; shadow scored {status['shadow_scored']},"
        f" dropped {status['shadow_dropped']}, failed {status['shadow_failed']}"
    )
    print("\nadded by the gateway per request (client latency - logged predict_proba time):")
    added_by: dict[str, dict[str, float]] = {}
    for setup, client, log_url in (
        ("champion only", plain_client, plain_log),
        ("canary 10% + shadow", full_client, full_log),
    ):
        added = added_by[setup] = client.added_ms(log_url)
        print(f"  {setup:20} p50 {added['p50_ms']:.3f} ms, p99 {added['p99_ms']:.3f} ms")

    refresh_s = 1.0
    process, url, _ = start_gateway(workdir, ["bench_plain"], refresh_s=refresh_s)
    try:
        _, uri, run_id = logged[1]
        timings: dict[str, list[float]] = {"polling": [], "webhook": []}
        for path in ("polling", "webhook"):
            for _ in range(args.rollbacks):
                # A fresh version each time: promoted (loaded, warmed), then rolled back to v1.
                newer = registry.register_version(
                    "bench_plain", uri, run_id=run_id, tags={}, description=""
                ).version
                for target, kind in ((newer, "promote"), (1, "rollback")):
                    notify = (
                        (lambda t=target: deliver_webhook(url, "bench_plain", t))
                        if path == "webhook"
                        else (lambda: None)
                    )
                    took = switch_latency(url, "bench_plain", target, kind, payloads[0], notify)
                    if kind == "rollback":
                        timings[path].append(took)
    finally:
        stop(process)
    print(
        f"\nrollback latency (move_alias returned -> answering with the previous version), "
        f"{args.rollbacks} rollbacks each, polling every {refresh_s} s:"
    )
    for path, values in timings.items():
        print(
            f"  {path:8} median {statistics.median(values) * 1000:7.1f} ms, "
            f"max {max(values) * 1000:7.1f} ms"
        )
    shutil.rmtree(workdir, ignore_errors=True)
    plain_added, full_added = added_by["champion only"], added_by["canary 10% + shadow"]
    headline = {
        "added_p50_ms": plain_added["p50_ms"],
        "added_p99_ms": plain_added["p99_ms"],
        "added_p99_ms_canary_shadow": full_added["p99_ms"],
        "throughput_vs_direct": plain["throughput_rps"] / base["throughput_rps"],
        "throughput_vs_direct_canary_shadow": full["throughput_rps"] / base["throughput_rps"],
        "shadow_p99_change": full["p99_ms"] / plain["p99_ms"] - 1,
        "rollback_ms_polling": statistics.median(timings["polling"]) * 1000,
        "rollback_ms_webhook": statistics.median(timings["webhook"]) * 1000,
    }
    print("RESULT " + json.dumps({k: round(v, 3) for k, v in headline.items()}))


if __name__ == "__main__":
    main()
