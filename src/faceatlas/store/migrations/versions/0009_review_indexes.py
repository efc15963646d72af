"""review pages at scale: indexes for the collection page's filters, sorts and counts

faces(person_id, state) counts accepted faces per person, faces(person_id, reason) and
images(person_id, reason) answer "has a face/photo with this reason", faces(person_id,
detail) counts arbitration's notes (purity flags), people(collection_id, name) lists a
collection by name (list_people), people(collection_id, lower(ascii_name), name, id) in the
collection page's default order.

Revision ID: 0009
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_faces_person_state', 'faces', ['person_id', 'state'])
    op.create_index('ix_faces_person_reason', 'faces', ['person_id', 'reason'])
    op.create_index('ix_faces_person_detail', 'faces', ['person_id', 'detail'])
    op.create_index('ix_images_person_reason', 'images', ['person_id', 'reason'])
    op.create_index('ix_people_collection_name', 'people', ['collection_id', 'name'])
    op.create_index('ix_people_collection_sort', 'people',
                    ['collection_id', sa.text('lower(ascii_name)'), 'name', 'id'])


def downgrade() -> None:
    op.drop_index('ix_people_collection_sort', 'people')
    op.drop_index('ix_people_collection_name', 'people')
    op.drop_index('ix_images_person_reason', 'images')
    op.drop_index('ix_faces_person_detail', 'faces')
    op.drop_index('ix_faces_person_reason', 'faces')
    op.drop_index('ix_faces_person_state', 'faces')
