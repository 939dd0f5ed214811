"""`python -m monitoring status [--model NAME]`: the monitoring view as terminal tables."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime


def main(argv: Sequence[str] | None = None) -> int:
    """Print the overview, or one model's view; exit 2 naming the setting that is wrong."""
    parser = argparse.ArgumentParser(prog="python -m monitoring")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="the models' aliases, pending work, metrics, runs")
    status.add_argument("--model", help="one model's full view (default: every model, one line)")
    status.add_argument("--days", type=int, default=30, help="history shown for --model (days)")
    args = parser.parse_args(argv)

    from monitoring.airflow_runs import AirflowRunsClient
    from monitoring.settings import MonitoringConfigError, MonitoringSettings
    from monitoring.text import model_text, overview_text
    from monitoring.view import Sources, model_view, overview

    try:
        settings = MonitoringSettings.from_environment()
    except MonitoringConfigError as error:
        print(f"monitoring: {error}", file=sys.stderr)
        return 2
    access = settings.airflow
    runs = None
    if access is not None:
        runs = AirflowRunsClient(
            api_url=access.api_url,
            token=access.token,
            username=access.username,
            password=access.password,
        )
    sources = Sources(settings, runs)
    now = datetime.now(UTC)
    if args.model is None:
        print(overview_text(overview(sources, now=now)), end="")
        return 0
    policy = sources.policy(args.model)
    if policy is None:
        known = ", ".join(p.model_name for p in sources.policies()[0]) or "none"
        print(
            f"monitoring: --model {args.model}: no policy file names this model in "
            f"{settings.policies_dir} (known: {known})",
            file=sys.stderr,
        )
        return 2
    print(model_text(model_view(sources, policy, now=now, days=args.days)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
