"""a migration that fails half-way: everything the run did must be rolled back

Revision ID: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.create_table("ads", sa.Column("company_id", sa.BigInteger), sa.Column("id", sa.BigInteger))
    op.execute("SELECT create_distributed_table('ads', 'company_id', colocate_with => 'companies')")
    op.add_column("campaigns", sa.Column("paused", sa.Boolean))
    # violates the CHECK constraint of 0002 on the workers' shards: the run fails here
    op.execute("UPDATE campaigns SET budget = -1 WHERE company_id = 2")


def downgrade():
    pass
