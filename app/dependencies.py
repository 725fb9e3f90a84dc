"""What routes keep asking for: the unit of work, the settings, the signed-in user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.audit import seals
from app.audit.seals import SealBroken
from app.auth import service as auth_service
from app.auth.models import Role, User
from app.config import Settings
from app.crypto import service as crypto
from app.db import FINISHED, WriteGate, end_read, finish, is_sqlite, open_session
from app.errors import Forbidden, NotAuthenticated
from app.idempotency import service as idempotency
from app.web import flow


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work: commits when the route returns, rolls back if it raises.

    The body was read before this runs (``app/web/flow.py``), so no transaction waits on the network.
    A GET or HEAD starts as a reader: on SQLite it does not take the write gate, and should it write
    after all (an audited read) and lose the race for the lock, the request is replayed as a writer.
    Making the session costs no I/O, so it is made here on the event loop; only its end (the commit)
    goes to the threadpool.
    """
    state = request.app.state
    reader = request.method in ("GET", "HEAD") and not getattr(request.state, flow.REPLAY_AS_WRITER, False)
    session = open_session(state.engine, reader=reader)
    crypto.bind(session, settings=state.settings, keyring=state.keyring)
    try:
        yield session
    except BaseException as exc:
        if session.info.pop(FINISHED, False):
            raise  # committed by the route already (db.finish_in_route): nothing to roll back
        await run_in_threadpool(finish, session, exc)
        raise
    if session.info.pop(FINISHED, False):
        return  # committed and closed by the route (db.finish_in_route): no second hop
    await run_in_threadpool(finish, session)


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


# scope="function": the commit happens before the response is sent, so a 201 means it is stored.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_app_settings)]

_bearer = HTTPBearer(auto_error=False, description="POST /api/v1/auth/token, then send the token")


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_current_user(session: DbSession, credentials: Bearer) -> User:
    return caller(session, credentials)


def caller(session: Session, credentials: HTTPAuthorizationCredentials | None, *roles: Role) -> User:
    """The bearer token's owner (401 without a live one), in one of ``roles`` if any are named (403).

    For a hot route that runs its whole work in one threadpool call: it takes ``DbSession`` and
    ``Bearer`` (neither costs a hop) and calls this first inside that call, instead of a user
    dependency that costs a hop of its own.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated()
    user = authenticate(session, token=credentials.credentials)
    if roles and user.role not in roles:
        raise Forbidden()
    return user


def authenticate(session: Session, *, token: str) -> User:
    """The token's owner, read without the write lock.

    On SQLite a request that has not begun its transaction reads the token and its owner as a reader
    (no write gate, no ``BEGIN IMMEDIATE``) and ends that read, so a writing request takes the gate
    only for the transaction that writes. A GET stays in its reader transaction.
    """
    if session.in_transaction() or not is_sqlite(session):
        return auth_service.user_for_token(session, token=token)
    session.connection(execution_options={WriteGate.READER: True})
    try:
        user = auth_service.user_for_token(session, token=token)
    except SealBroken:
        seals.roll_back_keeping_alarms(session)  # the unit of work writes the alarm as a writer
        raise
    end_read(session)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def claim_idempotency_key(request: Request, session: DbSession) -> None:
    """On an API POST with an ``Idempotency-Key``: claim it, or answer with the first answer to it."""
    key = request.headers.get(idempotency.HEADER)
    auth = request.headers.get("authorization", "")
    if key is None or request.method != "POST" or not auth.lower().startswith("bearer "):
        return  # no key, or no caller yet (the route itself answers 401)
    fingerprint = idempotency.request_hash(request.method, request.url.path, await request.body())

    def work() -> None:
        user = authenticate(session, token=auth[7:].strip())
        idempotency.claim(session, user_id=user.id, key=key, fingerprint=fingerprint)

    await run_in_threadpool(work)
    request.state.idempotency_session = session


def role_required(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that admits only the given roles (403 otherwise)."""

    async def check(user: CurrentUser) -> User:  # no I/O: no threadpool hop
        if user.role not in roles:
            raise Forbidden()
        return user

    return Depends(check)


Caseworker = Annotated[User, role_required(Role.caseworker)]
Coordinator = Annotated[User, role_required(Role.coordinator)]
StatsReader = Annotated[User, role_required(Role.coordinator, Role.analyst, Role.admin)]
Exporter = Annotated[User, role_required(Role.analyst, Role.admin)]
