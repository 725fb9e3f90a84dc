"""Application factory: settings, keys, database, middleware, routers."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError

from app.attention import api as attention_api
from app.attention import pages as attention_pages
from app.auth import admin_pages as auth_admin_pages
from app.auth import api as auth_api
from app.auth import pages as auth_pages
from app.cases import api as cases_api
from app.cases import pages as cases_pages
from app.config import Settings, get_settings
from app.contacts import api as contacts_api
from app.contacts import known_bad_pages
from app.contacts import pages as contacts_pages
from app.crypto.keyring import get_keyring
from app.db import WalCheckpointer, get_engine
from app.dependencies import claim_idempotency_key
from app.errors import HelplineError, Invalid
from app.exports import api as exports_api
from app.exports import pages as exports_pages
from app.idempotency import service as idempotency
from app.referrals import api as referrals_api
from app.referrals import pages as referrals_pages
from app.search import api as search_api
from app.search import pages as search_pages
from app.stats import api as stats_api
from app.stats import pages as stats_pages
from app.web import errors as web_errors
from app.web import flow, headers
from app.web import pages as web_pages

log = logging.getLogger("helpline")

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "web" / "static"


def _clean_errors(errors: list[dict]) -> list[dict]:
    # A validation error must never echo the submitted value back: it may be a name or a phone.
    return [{k: v for k, v in err.items() if k in ("loc", "msg", "type")} for err in errors]


def remember_answers(router: APIRouter) -> None:
    """Every POST of ``router`` writes its answer to the Idempotency-Key it claimed, before its commit.

    FastAPI builds an included route's handler from ``get_route_handler`` when the route is first
    matched; wrapping that method wraps every handler it builds.
    """
    for route in router.routes:
        if isinstance(route, APIRoute) and "POST" in (route.methods or ()) and not hasattr(route, "_remembers"):
            build = route.get_route_handler
            route.get_route_handler = lambda build=build: _remembering(build())  # type: ignore[method-assign,assignment,misc]
            route._remembers = True  # type: ignore[attr-defined]  # routers outlive apps (tests make many)


def _remembering(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        response = await handler(request)  # the unit of work is still open: its commit comes after this
        session = getattr(request.state, "idempotency_session", None)
        if session is not None:
            await run_in_threadpool(
                idempotency.remember, session, status=response.status_code, body=bytes(response.body)
            )
        return response

    return handle


def create_app(settings: Settings | None = None) -> FastAPI:
    """The whole service; refuses to start with a bad key file or bad settings."""
    settings = settings or get_settings()
    keyring = get_keyring(settings)  # raises KeyFileError on a missing or group-readable key file

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The blind index follows the data's size by itself (see app/lifecycle/reindex.py).
        from app.lifecycle.reindex import IndexWidener

        widener = None
        if settings.index_autowidth_seconds > 0:
            widener = IndexWidener(
                engine=app.state.engine,
                settings=settings,
                keyring=keyring,
                interval=settings.index_autowidth_seconds,
            )
            widener.start()
        # The audit head goes to the log on time even when no entry is written (app/audit/checkpoints.py).
        from app.audit.checkpoints import CheckpointTimer

        checkpoints = CheckpointTimer(engine=app.state.engine, interval=settings.audit_checkpoint_minutes * 60)
        checkpoints.start()
        # SQLite's WAL is copied back into the database by a thread of its own, never inside a request.
        wal = WalCheckpointer(app.state.engine) if settings.is_sqlite else None
        if wal is not None:
            wal.start()
        app.state.wal_checkpointer = wal
        # What start-up built (routes, models, compiled statements) lives as long as the process: moved out
        # of the collector's reach, so a full collection walks only what requests make (54 ms -> ~3 ms).
        # Once per process: a second app in the same process (tests) finds it done.
        if gc.get_freeze_count() == 0:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if wal is not None:
                wal.stop()
            checkpoints.stop()
            if widener is not None:
                widener.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Helpline",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # the interactive docs load scripts from a CDN; we serve nothing from elsewhere
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.keyring = keyring
    app.state.engine = get_engine(settings)
    if not settings.secure_cookies:
        log.warning("HELPLINE_SECURE_COOKIES=false: cookies will travel over plain HTTP; use only on this machine")

    @app.exception_handler(HelplineError)
    async def helpline_error(request: Request, exc: HelplineError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(idempotency.Replayed)
    async def replayed(request: Request, exc: idempotency.Replayed) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers={"Idempotent-Replayed": "true"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _clean_errors(list(exc.errors()))}, status_code=422)

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> Response:
        # A value the database cannot hold or compare (a NUL byte on PostgreSQL, a number out of
        # range) came from the caller: a 422, rendered by whichever HelplineError handler is installed.
        handler = app.exception_handlers[HelplineError]
        return await handler(request, Invalid("invalid input"))  # type: ignore[misc,no-any-return,operator]

    api = APIRouter(prefix=API_PREFIX)

    @api.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    api.include_router(auth_api.router)  # a token request is not a record: no Idempotency-Key
    for module in (contacts_api, cases_api, attention_api, search_api, stats_api, exports_api, referrals_api):
        remember_answers(module.router)
        api.include_router(module.router, dependencies=[Depends(claim_idempotency_key)])
    app.include_router(api)
    app.include_router(web_pages.router)
    # HTML pages: same services as the API, server-rendered, usable without JavaScript.
    for pages in (
        auth_pages,
        auth_admin_pages,
        contacts_pages,
        known_bad_pages,
        cases_pages,
        attention_pages,
        search_pages,
        stats_pages,
        exports_pages,
        referrals_pages,
    ):
        app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    web_errors.install(app)  # HTML error pages outside /api; the JSON handlers above stay for /api
    app.add_middleware(
        flow.RequestFlow,
        body_timeout=settings.body_timeout_seconds,
        max_body_bytes=settings.max_body_bytes,
        max_in_flight=settings.max_in_flight,
        in_flight_wait=settings.in_flight_wait_seconds,
    )
    app.add_middleware(headers.SecurityHeaders, hsts=settings.secure_cookies)
    return app
