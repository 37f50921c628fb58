"""a budget per campaign, filled for one tenant

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.add_column("campaigns", sa.Column("budget", sa.Numeric(12, 2), server_default="0", nullable=False))
    op.execute("UPDATE campaigns SET budget = 100 WHERE company_id = 1")
    op.create_check_constraint("budget_not_negative", "campaigns", "budget >= 0")


def downgrade():
    op.drop_constraint("budget_not_negative", "campaigns")
    op.drop_column("campaigns", "budget")
