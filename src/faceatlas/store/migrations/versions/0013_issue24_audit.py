"""person_audit: people surgery's record of who moved, merged or split what, when (issue 24)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'person_audit',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('person_id', sa.Integer(),
                  sa.ForeignKey('people.id', ondelete='CASCADE'), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('by', sa.String(length=64), nullable=True),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_person_audit_person_id', 'person_audit', ['person_id'])


def downgrade() -> None:
    op.drop_index('ix_person_audit_person_id', table_name='person_audit')
    op.drop_table('person_audit')
