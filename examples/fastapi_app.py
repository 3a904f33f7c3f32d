"""FastAPI + async SQLAlchemy: every change to an order records who made it, from which request.

    pghistory install --dsn postgresql://localhost/shop
    export DATABASE_URL=postgresql+psycopg://localhost/shop
    uvicorn --factory examples.fastapi_app:create_app
    curl -X POST -H 'Authorization: Bearer alice' -H 'Content-Type: application/json' \
         -d '{"item": "tea", "qty": 2}' localhost:8000/orders

Demo authentication: "Authorization: Bearer <user name>" (put a real one in its place). Each
event of the orders table carries {"method", "url", "user"} (and "reason" where a route adds
it): GET /orders/<id>/history shows them, as pghistory.events does.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import fastapi
import pydantic
import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

import pghist
import pghist.asgi
import pghist.sqlalchemy


class Base(orm.DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    item: orm.Mapped[str]
    qty: orm.Mapped[int]


class NewOrder(pydantic.BaseModel):
    item: str
    qty: int


class Change(pydantic.BaseModel):
    qty: int
    reason: str | None = None


class BearerUser(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        scheme, _, name = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not name:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(name)


def create_app(database_url: str | None = None) -> fastapi.FastAPI:
    engine = create_async_engine(database_url or os.environ["DATABASE_URL"])
    pghist.sqlalchemy.instrument(engine)  # each transaction carries the current context
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:  # a migration's job in a real app
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(sa.text("SELECT pghistory.track('orders')"))
        yield
        await engine.dispose()

    app = fastapi.FastAPI(lifespan=lifespan)
    app.add_middleware(pghist.asgi.ContextMiddleware)
    # added last, so it runs first: the user is known when the context is opened
    app.add_middleware(AuthenticationMiddleware, backend=BearerUser())

    @app.post("/orders", status_code=201)
    async def create_order(new: NewOrder) -> dict[str, Any]:
        async with sessions.begin() as session:
            order = Order(item=new.item, qty=new.qty)
            session.add(order)
        return {"id": order.id}

    @app.patch("/orders/{order_id}")
    async def update_order(order_id: int, change: Change) -> dict[str, Any]:
        # a nested scope adds a key to the request's context
        async with pghist.context(reason=change.reason), sessions.begin() as session:
            order = await session.get_one(Order, order_id)
            order.qty = change.qty
        return {"id": order.id, "qty": order.qty}

    @app.get("/orders/{order_id}/history")
    async def history(order_id: int) -> list[dict[str, Any]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT pgh_label, pgh_data, pgh_context FROM pghistory.events"
                    " WHERE pgh_obj_model = 'orders'::regclass AND pgh_obj_id = :id"
                    " ORDER BY pgh_id"
                ),
                {"id": str(order_id)},
            )
            return [dict(row._mapping) for row in rows]

    return app
