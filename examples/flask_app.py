"""Flask + SQLAlchemy: every change to an order records who made it, from which request.

    pghistory install --dsn postgresql://localhost/shop
    DATABASE_URL=postgresql+psycopg://localhost/shop flask --app examples/flask_app.py run
    curl -X POST -H 'Content-Type: application/json' -d '{"item": "tea", "qty": 2}' \
         localhost:5000/orders

The user is the request's REMOTE_USER, set by the server or an authenticating proxy in front
of it. Each event of the orders table then carries {"method", "url", "user"} (and "reason"
where a view adds it): GET /orders/<id>/history shows them, as pghistory.events does.
"""

from __future__ import annotations

import os
from typing import Any

import flask
import sqlalchemy as sa
from sqlalchemy import orm

import pghist
import pghist.sqlalchemy
import pghist.wsgi


class Base(orm.DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    item: orm.Mapped[str]
    qty: orm.Mapped[int]


def create_app(database_url: str | None = None) -> flask.Flask:
    engine = sa.create_engine(database_url or os.environ["DATABASE_URL"])
    pghist.sqlalchemy.instrument(engine)  # each transaction carries the current context
    with engine.begin() as conn:  # a migration's job in a real app
        Base.metadata.create_all(conn)
        conn.execute(sa.text("SELECT pghistory.track('orders')"))

    app = flask.Flask(__name__)
    app.wsgi_app = pghist.wsgi.ContextMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    @app.post("/orders")
    def create_order() -> tuple[dict[str, Any], int]:
        data = flask.request.get_json()
        with orm.Session(engine) as session, session.begin():
            order = Order(item=data["item"], qty=data["qty"])
            session.add(order)
            session.flush()
            return {"id": order.id}, 201

    @app.patch("/orders/<int:order_id>")
    def update_order(order_id: int) -> dict[str, Any]:
        data = flask.request.get_json()
        with orm.Session(engine) as session, session.begin():
            order = session.get_one(Order, order_id)
            # a nested scope adds a key to the request's context, for the writes made in it
            with pghist.context(reason=data.get("reason")):
                order.qty = data["qty"]
                session.flush()
            return {"id": order.id, "qty": order.qty}

    @app.get("/orders/<int:order_id>/history")
    def history(order_id: int) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pgh_label, pgh_data, pgh_context FROM pghistory.events"
                    " WHERE pgh_obj_model = 'orders'::regclass AND pgh_obj_id = :id"
                    " ORDER BY pgh_id"
                ),
                {"id": str(order_id)},
            )
            return [dict(row._mapping) for row in rows]

    return app
