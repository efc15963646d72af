"""Alembic environment: runs on the engine faceatlas hands over (see store/db.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from faceatlas.store.models import Base

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
