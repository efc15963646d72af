"""video provenance on images

Revision ID: 0006
Revises: 0008
Create Date: 2026-11-29 03:10:00

A candidate image cut from a video keeps where it came from: the clip, the track's time range
and the frame's time (all NULL for photos).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('video_source', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('video_track', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('video_start', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('video_end', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('video_time', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('video_time')
        batch_op.drop_column('video_end')
        batch_op.drop_column('video_start')
        batch_op.drop_column('video_track')
        batch_op.drop_column('video_source')
