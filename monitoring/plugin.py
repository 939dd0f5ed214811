"""The Airflow plugin: the monitoring view as a FastAPI app inside Airflow's api-server, with a
link in Airflow's navigation.

A plugin app is mounted without Airflow's authentication, so every route here depends on
`caller`, which validates the Airflow JWT (the `Authorization: Bearer` header, else the `_token`
cookie Airflow's UI sets) with Airflow's own auth manager and asks it whether the user may see
plugin views. An anonymous request gets a 401 and nothing of the view (a browser, a link to
Airflow's sign-in page). This module stays light: Airflow loads plugins in every component, so
the view's own modules are imported inside the handlers.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response

URL_PREFIX = "/monitoring"
TOKEN_COOKIE = "_token"


class SignInRequired(Exception):
    """An anonymous request: answered 401, with a link to Airflow's sign-in page for a browser."""

    def __init__(self, login_url: str) -> None:
        super().__init__(login_url)
        self.login_url = login_url


def signed_out(request: Request, error: SignInRequired) -> Response:
    """The 401 an anonymous caller gets: nothing of the view, only where to sign in."""
    headers = {"WWW-Authenticate": "Bearer"}
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse(
            {"detail": "Sign in to Airflow to see the monitoring view"},
            status.HTTP_401_UNAUTHORIZED,
            headers=headers,
        )
    link = html.escape(error.login_url, quote=True)
    body = f'<!doctype html><p>Sign in to Airflow to see the monitoring view: <a href="{link}" target="_top">sign in</a>.</p>'
    return HTMLResponse(body, status.HTTP_401_UNAUTHORIZED, headers=headers)


@dataclass(frozen=True)
class Caller:
    """Who asked, as Airflow's auth manager knows them, and the token they asked with."""

    name: str
    token: str


def bearer_or_cookie(request: Request) -> str | None:
    """The caller's JWT: an explicit bearer header wins over the UI's session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(TOKEN_COOKIE) or None


async def caller(request: Request) -> Caller:
    """The authenticated Airflow user allowed to see plugin views; 401 or 403 otherwise."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    token = bearer_or_cookie(request)
    if token is None:
        raise SignInRequired(get_auth_manager().get_url_login(next_url=str(request.url)))
    user = await resolve_user_from_token(token)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.PLUGINS, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Not allowed to see plugin views")
    return Caller(name=user.get_name(), token=token)


CallerDep = Annotated[Caller, Depends(caller)]


def _airflow_url(request: Request) -> str:
    from airflow.configuration import conf

    configured = conf.get("api", "base_url", fallback=None)
    return (configured or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


def _sources(request: Request, who: Caller) -> object:
    from dataclasses import replace

    from monitoring.airflow_runs import AirflowRunsClient
    from monitoring.settings import MonitoringConfigError, MonitoringSettings
    from monitoring.view import Sources

    try:
        settings = MonitoringSettings.from_environment()
    except MonitoringConfigError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    airflow = _airflow_url(request)
    return Sources(
        replace(settings, airflow_ui_url=airflow),
        AirflowRunsClient(api_url=airflow, token=who.token),
    )


def create_app() -> FastAPI:
    """The view's FastAPI app; every route needs an Airflow identity."""
    app = FastAPI(
        title="Model monitoring",
        dependencies=[Depends(caller)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_exception_handler(SignInRequired, signed_out)

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request, who: CallerDep) -> str:
        from monitoring.pages import overview_page as render
        from monitoring.view import overview

        return render(overview(_sources(request, who), now=datetime.now(UTC)), user=who.name)

    @app.get("/models/{model_name}", response_class=HTMLResponse)
    def model_page(
        request: Request,
        model_name: str,
        who: CallerDep,
        days: Annotated[int, Query(ge=1, le=3660)] = 30,
    ) -> str:
        from monitoring.pages import model_page as render
        from monitoring.view import model_view

        sources = _sources(request, who)
        policy = sources.policy(model_name)
        if policy is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no policy for {model_name!r}")
        view = model_view(sources, policy, now=datetime.now(UTC), days=days)
        return render(view, user=who.name)

    return app


class MonitoringPlugin(AirflowPlugin):
    """Adds the monitoring view to Airflow's api-server and to its navigation."""

    name = "model_monitoring"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Model monitoring"}]
    external_views = [
        {
            "name": "Model monitoring",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "model-monitoring",
        }
    ]
