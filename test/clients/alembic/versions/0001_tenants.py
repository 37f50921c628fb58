"""companies and campaigns, distributed and colocated by tenant, the Citus multi-tenant way

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "companies",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    )
    op.create_table(
        "campaigns",
        sa.Column("company_id", sa.BigInteger, primary_key=True),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    )
    op.execute("SELECT create_distributed_table('companies', 'id')")
    op.execute("SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies')")
    op.create_index("campaigns_name", "campaigns", ["name"])
    companies = sa.table("companies", sa.column("id", sa.BigInteger), sa.column("name", sa.Text))
    op.bulk_insert(companies, [{"id": i, "name": f"company {i}"} for i in range(1, 21)])
    campaigns = sa.table(
        "campaigns", sa.column("company_id", sa.BigInteger), sa.column("id", sa.BigInteger), sa.column("name", sa.Text)
    )
    op.bulk_insert(campaigns, [{"company_id": i % 20 + 1, "id": i, "name": f"campaign {i}"} for i in range(1, 101)])


def downgrade():
    op.drop_index("campaigns_name", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_table("companies")
