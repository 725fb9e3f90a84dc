"""The intake floor: the plainest FastAPI + SQLAlchemy 2 ORM app a competent developer would write for
Helpline's contact, with none of Helpline's protections.

A bearer token checked in one query, one row inserted through the ORM, committed: no encryption, no
blind index, no audit, no counters, no permission model beyond "has a token". SQLite with Helpline's
pragmas (WAL, synchronous=NORMAL, busy_timeout, foreign keys, secure_delete), one uvicorn worker.
Helpline's intake is measured against it in the same run (bench/intake.py).

    HELPLINE_PLAIN_DB=/tmp/plain.db uvicorn bench.plainapp:create_app --factory
"""

# No ``from __future__ import annotations``: FastAPI must see the dependencies of the nested routes.
import hashlib
import os
import secrets
import uuid
from collections.abc import Iterator
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import Date, ForeignKey, String, Uuid, create_engine, event, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class PlainUser(Base):
    __tablename__ = "plain_user"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)


class PlainContact(Base):
    __tablename__ = "plain_contact"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    received_on: Mapped[date] = mapped_column(Date, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    risk: Mapped[str] = mapped_column(String(16))
    needs: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str | None] = mapped_column(String(200))
    handle: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(String(10_000))
    recorded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plain_user.id"))


# Its own copy of the contact's field lists: the floor stands alone and imports nothing of Helpline.
class Channel(StrEnum):
    phone = "phone"
    telegram = "telegram"
    signal = "signal"
    whatsapp = "whatsapp"
    email = "email"
    referral = "referral"
    in_person = "in_person"
    other = "other"


class Risk(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    immediate = "immediate"


class ContactIn(BaseModel):
    received_on: date
    channel: Channel
    region: str = Field(max_length=32)
    language: str = Field(max_length=16)
    risk: Risk
    needs: list[str] = []
    alias: str | None = Field(default=None, max_length=200)
    handle: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=10_000)


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "busy_timeout=30000",
        "foreign_keys=ON",
        "secure_delete=ON",
        "synchronous=NORMAL",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def make_engine(path: str) -> Any:
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _pragmas)
    return engine


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def setup(path: str, *, contacts: int = 0) -> str:
    """Create the tables, one user and ``contacts`` rows; returns the user's bearer token."""
    engine = make_engine(path)
    Base.metadata.create_all(engine)
    token = secrets.token_urlsafe(32)
    with Session(engine) as session, session.begin():
        user = PlainUser(username=f"cw-{secrets.token_hex(4)}", token_hash=token_hash(token))
        session.add(user)
        session.flush()
        user_id = user.id
    rows = [
        {
            "id": uuid.uuid4(),
            "received_on": date.today(),
            "channel": "telegram",
            "region": "chechnya",
            "language": "ru",
            "risk": "high",
            "needs": "evacuation",
            "alias": f"Caller {n}",
            "handle": f"@caller_{n:07d}",
            "notes": "called again from a borrowed phone, asked about documents and a safe place to stay",
            "recorded_by_id": user_id,
        }
        for n in range(contacts)
    ]
    with engine.begin() as conn:
        for first in range(0, len(rows), 20_000):
            conn.execute(insert(PlainContact), rows[first : first + 20_000])
    engine.dispose()
    return token


def create_app() -> FastAPI:
    engine = make_engine(os.environ["HELPLINE_PLAIN_DB"])
    make_session = sessionmaker(bind=engine, expire_on_commit=False)
    app = FastAPI()

    def get_db() -> Iterator[Session]:
        with make_session() as session:
            yield session

    def current_user(
        db: Annotated[Session, Depends(get_db)], authorization: Annotated[str | None, Header()] = None
    ) -> PlainUser:
        token = (authorization or "").removeprefix("Bearer ")
        user = db.scalar(select(PlainUser).where(PlainUser.token_hash == token_hash(token)))
        if user is None:
            raise HTTPException(status_code=401, detail="not authenticated")
        return user

    @app.post("/api/v1/contacts", status_code=201)
    def record_contact(
        data: ContactIn,
        user: Annotated[PlainUser, Depends(current_user)],
        db: Annotated[Session, Depends(get_db)],
    ) -> dict[str, Any]:
        contact = PlainContact(
            received_on=data.received_on,
            channel=data.channel.value,
            region=data.region,
            language=data.language,
            risk=data.risk.value,
            needs=",".join(sorted(set(data.needs))),
            alias=data.alias,
            handle=data.handle,
            notes=data.notes,
            recorded_by_id=user.id,
        )
        db.add(contact)
        db.commit()
        return {"id": str(contact.id)}

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
