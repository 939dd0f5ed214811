"""Parse time of dags/ with 50 generated policies, next to a blog-style DAG file.

Each measurement runs in a fresh interpreter, as the DAG processor's parsing does: the time to
import `airflow.sdk` alone, then the extra time to execute the DAG file(s) on top of it. The
50-policy case is measured twice: without champion summaries, and with one per model in
PROMOTION_CHAMPIONS_DIR (read into each rollback form).

    .venv/bin/python bench/dag_parse.py [--policies 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promotion.champion_summary import ChampionSummary  # noqa: E402
from tests.support import write_policy  # noqa: E402
from workflow.champion_summary import write_summary  # noqa: E402

PROBE = """
import json, runpy, sys, time
started = time.perf_counter()
import airflow.sdk  # noqa: F401
from airflow.sdk import dag, task  # noqa: F401  (resolves the SDK's lazy attributes)
sdk_done = time.perf_counter()
dag_count = 0
for path in sys.argv[1:]:
    namespace = runpy.run_path(path)
    dag_count += sum(1 for value in namespace.values() if type(value).__name__ == "DAG")
finished = time.perf_counter()
print(json.dumps({"sdk": sdk_done - started, "files": finished - sdk_done}))
"""


def measure(files: list[Path], env: dict[str, str], repeats: int) -> tuple[float, float]:
    """Median seconds of (bare airflow.sdk import, executing `files` after it)."""
    sdk, extra = [], []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, *map(str, files)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        sdk.append(result["sdk"])
        extra.append(result["files"])
    return statistics.median(sdk), statistics.median(extra)


def example_summary(model_name: str) -> ChampionSummary:
    """A summary as a rollback leaves it: a champion, a default target, their times."""
    return ChampionSummary(
        model_name=model_name,
        as_of="2026-06-30T12:05:00+00:00",
        champion=3,
        champion_since="2026-06-30T12:00:00+00:00",
        target=2,
        target_reason="most recent former champion not rolled back from: v2, champion until "
        "move #3 (promote: v2 → v3)",
        target_until="2026-06-30T12:00:00+00:00",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    our_files = sorted((ROOT / "dags").glob("*.py"))
    with tempfile.TemporaryDirectory() as scratch:
        rows = []
        for count in (1, args.policies):
            policies = Path(scratch) / f"policies_{count}"
            policies.mkdir()
            for index in range(count):
                write_policy(policies, f"model_{index:03d}")
            env = {**os.environ, "PROMOTION_POLICIES_DIR": str(policies), "AIRFLOW_HOME": scratch}
            env.pop("PROMOTION_CHAMPIONS_DIR", None)
            rows.append((count, *measure(our_files, env, args.repeats)))
        champions = Path(scratch) / "champions"
        for index in range(args.policies):
            write_summary(champions, example_summary(f"model_{index:03d}"))
        summarized = measure(
            our_files, {**env, "PROMOTION_CHAMPIONS_DIR": str(champions)}, args.repeats
        )
        sdk_blog, blog = measure([ROOT / "bench" / "blog_style_dag.py"], env, args.repeats)

    print(f"DAG parse time, median of {args.repeats} fresh interpreters, in seconds")
    print(f"{'':52}{'bare sdk':>10}{'added':>10}{'per policy':>12}")
    for count, sdk, added in rows:
        label = f"dags/ ({len(our_files)} files), {count} policies = {3 * count} DAGs"
        print(f"{label:52}{sdk:>10.3f}{added:>10.3f}{added / count:>12.3f}")
    label = f"same, {args.policies} champion summaries read"
    count = args.policies
    print(f"{label:52}{summarized[0]:>10.3f}{summarized[1]:>10.3f}{summarized[1] / count:>12.3f}")
    print(f"{'blog-style DAG file, 1 DAG':52}{sdk_blog:>10.3f}{blog:>10.3f}{blog:>12.3f}")
    per_policy = rows[-1][2] / rows[-1][0]
    with_summaries = summarized[1] / args.policies
    print(
        f"\nblog-style file / our DAGs of one policy (at {args.policies} policies): "
        f"{blog / per_policy:.0f}x slower to parse"
    )
    print(
        f"one policy's three DAGs add {per_policy * 1000:.0f} ms "
        f"(goal < 100 ms): {'met' if per_policy < 0.1 else 'NOT met'}"
    )
    headline = {
        "per_policy_ms": round(per_policy * 1000, 1),
        "added_s_at_policies": round(rows[-1][2], 3),
        "policies": args.policies,
        "blog_vs_ours_per_policy": round(blog / per_policy, 1),
        "per_policy_ms_with_summaries": round(with_summaries * 1000, 1),
        "summaries_vs_none": round(with_summaries / per_policy, 2),
    }
    print("RESULT " + json.dumps(headline))


if __name__ == "__main__":
    main()
