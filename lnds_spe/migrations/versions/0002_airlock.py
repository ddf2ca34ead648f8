"""The airlock: export requests, their frozen files, votes, reviews, comments, released tables.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "airlock_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project", sa.String(30), nullable=False, index=True),
        sa.Column("author", sa.String(128), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("disclosure_controls", sa.Text, nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("submitted_at", sa.String(40)),
        sa.Column("decided_at", sa.String(40)),
        sa.Column("released_at", sa.String(40)),
        sa.Column("bundle_sha256", sa.String(64)),
        sa.Column("bundle_size", sa.BigInteger),
    )
    op.create_table(
        "airlock_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(40), sa.ForeignKey("airlock_requests.id"), nullable=False,
                  index=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("added_at", sa.String(40), nullable=False),
        sa.Column("checks", sa.JSON, nullable=False),
        sa.Column("removed_at", sa.String(40)),
    )
    op.create_table(
        "airlock_votes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("file_id", sa.Integer, sa.ForeignKey("airlock_files.id"), nullable=False, index=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("vote", sa.String(32), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.UniqueConstraint("file_id", "reviewer", "round"),
    )
    op.create_table(
        "airlock_reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(40), sa.ForeignKey("airlock_requests.id"), nullable=False,
                  index=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("submitted_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("request_id", "reviewer", "round"),
    )
    op.create_table(
        "airlock_comments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(40), sa.ForeignKey("airlock_requests.id"), nullable=False,
                  index=True),
        sa.Column("file_name", sa.String(500)),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
    )
    op.create_table(
        "airlock_released_tables",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(30), nullable=False, index=True),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("output", sa.String(500), nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("cells", sa.JSON, nullable=False),
        sa.Column("released_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    for table in ("airlock_released_tables", "airlock_comments", "airlock_reviews", "airlock_votes",
                  "airlock_files", "airlock_requests"):
        op.drop_table(table)
