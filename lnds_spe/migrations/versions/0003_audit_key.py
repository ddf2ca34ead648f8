"""The keyed audit chain: the audit_chain row says from which seq event hashes are MACs.

Existing events keep their plain sha256 links and still verify; events from the head's next seq
on are HMAC-SHA256 under the audit key, made now if the state dir has none (see lnds_spe.audit).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from lnds_spe.audit import audit_home, key_path, load_or_create_key, new_chain_row

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("chain_id", sa.String(32), nullable=False),
        sa.Column("keyed_from", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT max(seq) FROM audit_events")).scalar() or 0
    head = bind.execute(sa.text("SELECT seq FROM audit_head WHERE id = 1")).scalar() or 0
    key = load_or_create_key(key_path(audit_home(bind.engine.url.render_as_string(False))))
    op.bulk_insert(chain, [new_chain_row(key, max(last, head) + 1)])


def downgrade() -> None:
    op.drop_table("audit_chain")
