"""Plan items by meter: the claim skips a meter another worker is working on (one association at a time).

A ciphered meter (or a DC's logical device) serves one association at a time and checks that each
invocation counter is above the last; two workers each with a session on it would interleave their
reserved counters and the later one would be refused as a replay. The claim therefore looks up a
meter's running items, which this index makes a probe instead of a scan.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

__all__: list[str] = []

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_plan_items_meter_state", "plan_items", ["meter_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_plan_items_meter_state", table_name="plan_items")
