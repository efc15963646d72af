"""a queue of 100,000 people: indexes for enqueue, claim and status

jobs(person_id, kind, state) finds a person's open collect job (enqueue, in bulk) and the
claim's "held live elsewhere" check without walking every running job; people(collection_id,
state) counts a collection by state and lists its failures from the index alone (status).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_jobs_person_kind_state', 'jobs', ['person_id', 'kind', 'state'])
    op.create_index('ix_people_collection_state', 'people', ['collection_id', 'state'])


def downgrade() -> None:
    op.drop_index('ix_people_collection_state', 'people')
    op.drop_index('ix_jobs_person_kind_state', 'jobs')
