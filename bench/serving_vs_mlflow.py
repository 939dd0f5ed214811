"""The serving gateway against `mlflow models serve` on the same registered model.

Both servers are started here on loopback, on one registered LightGBM pipeline (the workflow's own,
logged as training logs it), and answer the same single-row `dataframe_records` payloads sent by
`wrk` (a bounded C load generator: a fixed number of connections for a fixed time) with one and
with eight concurrent clients. Setups run in alternating rounds, so load from outside the benchmark
falls on all of them alike. The setups:

- `mlflow models serve` (the baseline: the tool a user would run instead; its pyfunc answers the
  predicted label, the gateway the positive-class probability: the same model call either way);
- the gateway answering from `champion` (its prediction log is always on), in one process and with
  `--workers auto` (one process per core, the headline figures), and so without micro-batching
  (`batch_rows: 1`) to show what batching adds;
- the gateway with a 10% canary and a shadow on another model, and the log, one process per core.

`mlflow models serve` runs as a user would start it (its default: one worker).

    apt-get install -y wrk
    .venv/bin/python bench/serving_vs_mlflow.py [--seconds 8] [--rounds 3]

The last line is `RESULT {json}`: `throughput_ratio_c8` (gateway / mlflow requests per second at 8
clients), `p50_ratio_c1` and `p99_ratio_c1` (gateway / mlflow latency at one client), and
`full_features_throughput_cost` (1 - canary+shadow+log / champion-only throughput at 8 clients).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

os.environ.setdefault("OMP_NUM_THREADS", "1")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from gateway_overhead import (  # noqa: E402
    ROOT,
    bench_payloads,
    free_port,
    log_lightgbm,
    start_gateway,
    stop,
)

CLIENTS = (1, 8)
ONE_WORKER = "gateway, champion, 1 worker"
PLAIN = f"gateway, champion, {os.cpu_count()} workers"
FULL = f"gateway, canary+shadow+log, {os.cpu_count()} workers"
UNBATCHED = f"gateway, champion, {os.cpu_count()} workers, no micro-batching"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_script(workdir: Path, path: str, payloads: list[dict]) -> Path:
    """A wrk Lua script that POSTs the payloads in turn, each with its own routing key."""
    bodies = ",\n".join(f"[==[{json.dumps(payload)}]==]" for payload in payloads)
    script = workdir / f"post-{abs(hash(path))}.lua"
    script.write_text(
        f"local bodies = {{\n{bodies}\n}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        f'  return wrk.format("POST", "{path}", '
        '{["Content-Type"] = "application/json", ["X-Routing-Key"] = "user-" .. i}, '
        "bodies[(i % #bodies) + 1])\n"
        "end\n"
    )
    return script


def run_wrk(url: str, script: Path, clients: int, seconds: int) -> dict[str, float]:
    """One bounded wrk run: p50/p99 in ms and requests per second; fails on any error answer."""
    threads = min(clients, 2)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"errors under load:\n{output}")
    percentile = {
        share: float(value) * _UNITS_MS[unit]
        for share, value, unit in re.findall(
            r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M
        )
    }
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"p50_ms": percentile["50"], "p99_ms": percentile["99"], "rps": rate}


def start_mlflow_serve(model_uri: str) -> tuple[subprocess.Popen, str]:
    """`mlflow models serve` on a free loopback port, in the current Python environment."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        # It execs `uvicorn` by name: this environment's scripts come first on the PATH.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError("mlflow models serve exited before it was ready")
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("mlflow models serve did not become ready")


def register(logged: list) -> None:
    """bench_plain: champion only; bench_full: champion, a canary and a shadow."""
    import registry

    for name, aliases in (
        ("bench_plain", ["champion"]),
        ("bench_full", ["champion", "canary", "shadow"]),
    ):
        registry.ensure_registered_model(name)
        for alias, (_, uri, run_id) in zip(aliases, logged, strict=False):
            version = registry.register_version(name, uri, run_id=run_id, tags={}, description="")
            registry.move_alias(
                name, alias, version.version, kind="promote", actor="bench", reason="benchmark"
            )


def combined(runs: list[dict[str, float]]) -> dict[str, float]:
    """The rounds of one setup: median latency percentiles, mean throughput."""
    return {
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms": statistics.median(run["p99_ms"] for run in runs),
        "rps": statistics.fmean(run["rps"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per setup")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.create_experiment("bench", artifact_location=str(workdir / "artifacts"))
    logged = [log_lightgbm(experiment, seed) for seed in (1, 2, 3)]
    register(logged)
    payloads = bench_payloads()[:200]

    mlflow_process, mlflow_url = start_mlflow_serve("models:/bench_plain/1")
    every_core = ("--workers", "auto")
    one_process, one_url, _ = start_gateway(workdir, ["bench_plain"], refresh_s=60)
    plain_process, plain_url, _ = start_gateway(
        workdir, ["bench_plain"], refresh_s=60, extra_flags=every_core
    )
    full_process, full_url, _ = start_gateway(
        workdir, ["bench_full:0.1"], refresh_s=60, extra_flags=every_core
    )
    unbatched_config = workdir / "unbatched.yaml"
    unbatched_config.write_text("batch_rows: 1\n")  # every request scored on its own
    unbatched_process, unbatched_url, _ = start_gateway(
        workdir,
        ["bench_plain"],
        refresh_s=60,
        extra_flags=(*every_core, "--config", str(unbatched_config)),
    )
    plain_script = wrk_script(workdir, "/models/bench_plain/invocations", payloads)
    setups = {
        "mlflow models serve": (mlflow_url, wrk_script(workdir, "/invocations", payloads)),
        ONE_WORKER: (one_url, plain_script),
        PLAIN: (plain_url, plain_script),
        UNBATCHED: (unbatched_url, plain_script),
        FULL: (full_url, wrk_script(workdir, "/models/bench_full/invocations", payloads)),
    }
    load_before = os.getloadavg()
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        for url, script in setups.values():  # warm every server before measuring
            run_wrk(url, script, 2, 2)
        for _ in range(args.rounds):
            for clients in CLIENTS:
                for name, (url, script) in setups.items():
                    runs.setdefault((name, clients), []).append(
                        run_wrk(url, script, clients, args.seconds)
                    )
    finally:
        for process in (
            one_process,
            plain_process,
            unbatched_process,
            full_process,
            mlflow_process,
        ):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)

    results = {key: combined(value) for key, value in runs.items()}
    print(
        f"single-row LightGBM pipeline, wrk {args.rounds} alternating rounds of {args.seconds:g} s "
        f"per setup and client count, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; "
        f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print(f"{'setup':40} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'vs mlflow':>10}")
    for (name, clients), figures in results.items():
        base = results[("mlflow models serve", clients)]
        print(
            f"{name:40} {clients:7d} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f} "
            f"{figures['rps']:8.0f} {figures['rps'] / base['rps']:9.2f}x"
        )
    baseline_c1, baseline_c8 = (
        results[("mlflow models serve", 1)],
        results[("mlflow models serve", 8)],
    )
    plain_c1, plain_c8 = results[(PLAIN, 1)], results[(PLAIN, 8)]
    full_c8 = results[(FULL, 8)]
    headline = {
        "throughput_ratio_c8": round(plain_c8["rps"] / baseline_c8["rps"], 3),
        "p50_ratio_c1": round(plain_c1["p50_ms"] / baseline_c1["p50_ms"], 3),
        "p99_ratio_c1": round(plain_c1["p99_ms"] / baseline_c1["p99_ms"], 3),
        "full_features_throughput_cost": round(1 - full_c8["rps"] / plain_c8["rps"], 3),
    }
    print(
        "\ngoals (fast-serving issue): throughput_ratio_c8 >= 10, p50_ratio_c1 <= 0.2, "
        "p99_ratio_c1 <= 0.5, full_features_throughput_cost <= 0.1"
    )
    print("RESULT " + json.dumps(headline))


if __name__ == "__main__":
    main()
