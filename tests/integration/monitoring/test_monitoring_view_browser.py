"""The monitoring view in a real browser, served by Airflow's own api-server as a plugin.

The state is written through the project's writers (alias moves, monitor checks, validation
records, prediction log and labels, a pending approval); chromium (Debian's, driven by Playwright)
signs in with a token Airflow issued, reads the tables, the charts and the timeline, and an
anonymous browser sees nothing. Screenshots go to test-screenshots/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from demo.services import ServiceFailed, free_port, start_airflow_api_server
from monitoring.readings import wilson_interval
from tests.monitoring.support import EVAL_RUN, MODEL, KnownState, build_known_state

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
USER, PASSWORD = "monitor_viewer", "monitor-viewer-password"
ADMIN, ADMIN_PASSWORD = "monitor_admin", "monitor-admin-password"
REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "test-screenshots"


@dataclass(frozen=True)
class Served:
    url: str
    token: str
    state: KnownState


def _airflow() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The known state, and Airflow's api-server (simple auth manager, one viewer) serving the
    plugin over it; the token is the one Airflow issues to that viewer."""
    import mlflow
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    root = tmp_path_factory.mktemp("monitoring")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    SqlAlchemyStore(tracking_uri).engine.dispose()
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        state = build_known_state(root, tracking_uri, datetime.now(UTC))
    finally:
        mlflow.set_tracking_uri(previous)

    home = root / "airflow"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD, ADMIN: ADMIN_PASSWORD}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **state.env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer,{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
    }
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run(
            [_airflow(), *command], env=env, check=True, capture_output=True, timeout=240
        )
    server = start_airflow_api_server(_airflow(), env, port, home / "api-server.log")
    try:
        try:
            server.wait_ready("/api/v2/version", timeout_s=150)
        except ServiceFailed as error:
            pytest.fail(str(error))
        _runs(url, _token(url, ADMIN, ADMIN_PASSWORD))
        yield Served(url=url, token=_token(url, USER, PASSWORD), state=state)
    finally:
        server.stop()


def _token(url: str, username: str, password: str) -> str:
    answer = httpx.post(
        f"{url}/auth/token", json={"username": username, "password": password}, timeout=30
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["access_token"]


def _runs(url: str, token: str) -> None:
    """Runs in Airflow's own metadata DB through its REST API: the promotion run the ledger's
    v1 → v2 move names, marked a success, and a training run left queued (no scheduler runs)."""
    headers = {"Authorization": f"Bearer {token}"}
    for dag_id, run_id, final in (
        ("promote_churn_watch", "run-2", "success"),
        ("train_churn_watch", "run-9", None),
    ):
        created = httpx.post(
            f"{url}/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 200, created.text
        if final is None:
            continue
        ended = httpx.patch(
            f"{url}/api/v2/dags/{dag_id}/dagRuns/{run_id}",
            json={"state": final},
            headers=headers,
            timeout=30,
        )
        assert ended.status_code == 200, ended.text


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _signed_in(browser: object, served: Served) -> object:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies([{"name": "_token", "value": served.token, "url": served.url}])
    return context.new_page()


def _rows(page: object, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr",
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.innerText.trim()))",
    )


def test_the_model_page_shows_aliases_pending_work_metric_validation_drift_and_timeline(
    served: Served, browser: object
) -> None:
    page = _signed_in(browser, served)
    response = page.goto(f"{served.url}/monitoring/models/{MODEL}?days=90")
    assert response.status == 200
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "monitoring-model.png"), full_page=True)

    assert _rows(page, "aliases")[0][:2] == ["champion", "v1"]
    assert "v3 waits for 1 of UALICE001, UBOB00002 in #model-approvals" in page.inner_text(
        "#pending"
    )

    state = served.state
    low, high = wilson_interval(state.day_correct, state.day_labeled, 0.95)
    total = page.inner_text("#metric-total")
    assert f"accuracy {state.day_correct / state.day_labeled:.3f}" in total
    assert f"[{low:.3f}, {high:.3f}] on {state.day_labeled} labeled" in total
    assert sum(int(row[1]) for row in _rows(page, "metric-table")) == state.day_labeled
    metric_svg = page.inner_html("#metric-chart")
    assert "<svg" in metric_svg and 'id="metric-line"' in metric_svg and 'id="floor"' in metric_svg
    assert f"floor {state.floor:.4g} (roc_auc)" in page.inner_text("#metric-chart")
    assert page.is_visible("#metric-chart svg")

    assert f"{state.validations_passed}/{state.validations} windows passed" in page.inner_text(
        "#validation-total"
    )
    bar_labels = page.inner_text("#validation-chart")
    assert "0/1" in bar_labels and "1/1" in bar_labels
    assert "missing values: plan 31% > 20%" in _rows(page, "failed-validations")[0][3]

    drift = page.inner_text("#drift-chart")
    assert "plan" in drift and "sessions_7d" in drift
    assert "fired — plan drifted (PSI 0.31 ≥ 0.2)" in page.inner_text("#last-check")

    timeline = _rows(page, "timeline")
    assert [row[1:4] for row in timeline[:3]] == [
        ["champion", "v2 → v1", "rollback"],
        ["challenger", "v2 → none", "promote"],
        ["champion", "v1 → v2", "promote"],
    ]
    assert timeline[0][5] == "bad feedback from sales"
    assert "delta=0.01235, ci_low=0.004, ci_high=0.0207" == timeline[2][6]
    assert len(timeline) == 7
    drift = _rows(page, "alias-drifts")
    assert [cell for cell in drift[0][1:4]] == ["champion", "v1", "v3"]
    assert drift[0][5:] == ["champion v1 → v3 (promote)", "refused"]
    runs = {row[0]: row for row in _rows(page, "runs")}
    assert set(runs) == {"promote_churn_watch", "train_churn_watch"}
    promote = runs["promote_churn_watch"]
    assert promote[1:3] == ["run-2", "success"]
    assert promote[4].startswith("v1 retired; v2 evaluated; v2 champion; why: better than v1")
    assert runs["train_churn_watch"][1:5:3] == ["run-9", "queued"]
    links = page.eval_on_selector_all(
        "#runs a", "links => links.map(a => [a.innerText, a.getAttribute('href')])"
    )
    assert ["run-2", f"{served.url}/dags/promote_churn_watch/runs/run-2"] in links
    assert ["MLflow v2", "http://mlflow.test/#/models/churn_watch/versions/2"] in links
    assert [
        "evaluation report v2",
        f"http://mlflow.test/get-artifact?path=evaluation/report.html&run_uuid={EVAL_RUN}",
    ] in links


def test_the_overview_lists_the_model_and_airflow_shows_the_view_in_its_navigation(
    served: Served, browser: object
) -> None:
    page = _signed_in(browser, served)
    assert page.goto(f"{served.url}/monitoring/").status == 200
    row = _rows(page, "models")[0]
    assert row[0] == MODEL and row[1] == "champion v1"
    assert row[4] == f"{served.state.validations_passed}/{served.state.validations} passed"
    assert (
        "promote_churn_watch: v1 retired; v2 evaluated; v2 champion; why: better than v1" in row[7]
    )
    assert "train_churn_watch: queued" in row[7]
    page.click(f"text={MODEL}")
    page.wait_for_selector("#timeline")

    plugins = httpx.get(
        f"{served.url}/api/v2/plugins",
        headers={"Authorization": f"Bearer {served.token}"},
        timeout=30,
    ).json()["plugins"]
    views = [view for plugin in plugins for view in plugin["external_views"]]
    assert {"name": "Model monitoring", "href": "/monitoring/"}.items() <= views[0].items()
    page.goto(f"{served.url}/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Model monitoring").click()
    page.wait_for_url("**/plugin/model-monitoring")
    frame = page.wait_for_selector("iframe").content_frame()
    frame.wait_for_selector("#models")
    assert MODEL in frame.inner_text("#models")
    page.screenshot(path=str(SCREENSHOTS / "monitoring-in-airflow.png"), full_page=True)


def test_an_anonymous_browser_sees_nothing_but_where_to_sign_in(
    served: Served, browser: object
) -> None:
    page = browser.new_context().new_page()
    for path in ("/monitoring/", f"/monitoring/models/{MODEL}"):
        response = page.goto(f"{served.url}{path}")
        assert response.status == 401
        shown = page.inner_text("body")
        assert shown == "Sign in to Airflow to see the monitoring view: sign in."
    page.click("text=sign in")
    page.wait_for_url("**/auth/login**")
    anonymous = httpx.get(f"{served.url}/monitoring/", timeout=30)
    assert anonymous.status_code == 401 and MODEL not in anonymous.text
    forged = httpx.get(
        f"{served.url}/monitoring/", headers={"Authorization": "Bearer not-a-token"}, timeout=30
    )
    assert forged.status_code in (401, 403) and MODEL not in forged.text


def test_the_status_command_lists_the_runs_as_an_airflow_user(served: Served) -> None:
    env = {
        **os.environ,
        **served.state.env,
        "AIRFLOW_API_URL": served.url,
        "AIRFLOW_UI_URL": served.url,
        "AIRFLOW_API_USERNAME": USER,
        "AIRFLOW_API_PASSWORD": PASSWORD,
    }
    env.pop("PROMOTION_LEDGER_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "monitoring", "status", "--model", MODEL],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    runs = done.stdout[done.stdout.index("Last runs") : done.stdout.index("Alias timeline")]
    assert re.search(
        r"│ promote_churn_watch\s*│ run-2\s*│ success\s*│ \d{4}-\d\d-\d\d \d\d:\d\d │ v1", runs
    )
    assert re.search(r"│ train_churn_watch\s*│ run-9\s*│ queued\s*│ .*│ queued", runs)
