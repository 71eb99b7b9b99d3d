"""tasks: where each task of a fanned-out stage ran (executor, node, process) and how long it took

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tasks_run_stage", "tasks", ["run_id", "stage"])


def downgrade() -> None:
    op.drop_index("ix_tasks_run_stage", table_name="tasks")
    op.drop_table("tasks")
