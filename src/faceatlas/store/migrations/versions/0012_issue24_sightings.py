"""sightings: what recognition saw, per collection, only where switched on (issue 24)

sighting_policies (a collection's switch and retention), sighting_clusters (unknown faces
that look like one person), sightings (who/unknown, box, crop path, embedding, where, when,
token fingerprint) and sighting_blocks ("not a public figure": faces not kept again).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'sighting_policies',
        sa.Column('collection_id', sa.Integer(),
                  sa.ForeignKey('collections.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('retention_days', sa.Integer(), nullable=False),
        sa.Column('updated_at', _TS, nullable=False),
    )
    op.create_table(
        'sighting_clusters',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('collection_id', sa.Integer(),
                  sa.ForeignKey('collections.id', ondelete='CASCADE'), nullable=False),
        sa.Column('created_at', _TS, nullable=False),
    )
    op.create_index('ix_sighting_clusters_collection_id', 'sighting_clusters',
                    ['collection_id'])
    op.create_table(
        'sightings',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('collection_id', sa.Integer(),
                  sa.ForeignKey('collections.id', ondelete='CASCADE'), nullable=False),
        sa.Column('person_id', sa.Integer(), sa.ForeignKey('people.id', ondelete='CASCADE'),
                  nullable=True),
        sa.Column('cluster_id', sa.Integer(),
                  sa.ForeignKey('sighting_clusters.id', ondelete='SET NULL'), nullable=True),
        sa.Column('distance', sa.Float(), nullable=True),
        sa.Column('confidence', sa.Float(), nullable=True),
        sa.Column('nearest_person_id', sa.Integer(), nullable=True),
        sa.Column('nearest_distance', sa.Float(), nullable=True),
        sa.Column('x', sa.Integer(), nullable=False),
        sa.Column('y', sa.Integer(), nullable=False),
        sa.Column('w', sa.Integer(), nullable=False),
        sa.Column('h', sa.Integer(), nullable=False),
        sa.Column('crop_path', sa.String(length=1000), nullable=True),
        sa.Column('embedding', sa.LargeBinary(), nullable=False),
        sa.Column('engine', sa.String(length=20), nullable=False),
        sa.Column('source', sa.String(length=2000), nullable=False),
        sa.Column('clip', sa.String(length=300), nullable=True),
        sa.Column('t_start', sa.Float(), nullable=True),
        sa.Column('t_end', sa.Float(), nullable=True),
        sa.Column('seen_at', _TS, nullable=False),
        sa.Column('token_fingerprint', sa.String(length=64), nullable=True),
    )
    op.create_index('ix_sightings_cluster_id', 'sightings', ['cluster_id'])
    op.create_index('ix_sightings_person_seen', 'sightings', ['person_id', 'seen_at'])
    op.create_index('ix_sightings_collection_seen', 'sightings', ['collection_id', 'seen_at'])
    op.create_index('ix_sightings_collection_source', 'sightings',
                    ['collection_id', 'source'])
    op.create_table(
        'sighting_blocks',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('collection_id', sa.Integer(),
                  sa.ForeignKey('collections.id', ondelete='CASCADE'), nullable=False),
        sa.Column('embedding', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', _TS, nullable=False),
    )
    op.create_index('ix_sighting_blocks_collection_id', 'sighting_blocks', ['collection_id'])


def downgrade() -> None:
    op.drop_table('sighting_blocks')
    op.drop_table('sightings')
    op.drop_table('sighting_clusters')
    op.drop_table('sighting_policies')
