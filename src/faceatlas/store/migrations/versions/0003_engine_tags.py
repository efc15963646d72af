"""engine tags: faces.engine, faces.model_hash, people.engine

Every stored embedding says which face engine and model made it, so embeddings of different
models are never compared. Rows from before are dlib's.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

DLIB_MODEL_HASH = "55533b28a958"


def upgrade() -> None:
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('engine', sa.String(length=20), nullable=False,
                                      server_default='dlib'))
        batch_op.add_column(sa.Column('model_hash', sa.String(length=64), nullable=False,
                                      server_default=DLIB_MODEL_HASH))
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('engine', sa.String(length=20), nullable=True))
    # people analysed before engine tags were analysed with dlib
    op.execute("UPDATE people SET engine = 'dlib' WHERE id IN (SELECT person_id FROM faces)")


def downgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('engine')
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.drop_column('model_hash')
        batch_op.drop_column('engine')
