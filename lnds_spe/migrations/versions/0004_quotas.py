"""Quotas: each project's home volume and outputs folder size limits (K/M/G, like memory).

Existing projects get the defaults: 5G per home volume, 10G for the project's outputs.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("home_quota", sa.String(16), nullable=False,
                                   server_default="5G"))
        batch.add_column(sa.Column("outputs_quota", sa.String(16), nullable=False,
                                   server_default="10G"))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("outputs_quota")
        batch.drop_column("home_quota")
