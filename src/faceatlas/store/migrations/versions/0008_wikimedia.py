"""keyless sources: Wikidata Q-id and native-script name on people; licence and author on images

Revision ID: 0008
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('people') as batch:
        batch.add_column(sa.Column('wikidata_qid', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('native_name', sa.String(length=300), nullable=True))
        batch.create_index('ix_people_wikidata_qid', ['wikidata_qid'])
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('licence', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('licence_url', sa.Text(), nullable=True))
        batch.add_column(sa.Column('author', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.drop_column('author')
        batch.drop_column('licence_url')
        batch.drop_column('licence')
    with op.batch_alter_table('people') as batch:
        batch.drop_index('ix_people_wikidata_qid')
        batch.drop_column('native_name')
        batch.drop_column('wikidata_qid')
