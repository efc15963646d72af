"""ui sessions: server-side review-UI log-ins (issue 11)

Revision ID: 0002
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ui_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('token_fingerprint', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id_hash'),
    )
    op.create_index('ix_ui_sessions_expires_at', 'ui_sessions', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_ui_sessions_expires_at', table_name='ui_sessions')
    op.drop_table('ui_sessions')
