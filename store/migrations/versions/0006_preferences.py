"""preferences: factorized preference pairs (chosen, rejected, the factor perturbed, its source)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=True),
        sa.Column(
            "question_id", sa.Integer(), sa.ForeignKey("questions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("factor", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column(
            "attempt_id", sa.Integer(), sa.ForeignKey("attempts.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("chosen", sa.Text(), nullable=False),
        sa.Column("rejected", sa.Text(), nullable=False),
        sa.Column("rejected_answer", sa.Text(), nullable=False),
        sa.Column("rejected_evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("question_id", "rejected"),
    )
    op.create_index("ix_preferences_run_round_factor", "preferences", ["run_id", "round_id", "factor"])
    op.create_index("ix_preferences_question_id", "preferences", ["question_id"])


def downgrade() -> None:
    op.drop_index("ix_preferences_question_id", table_name="preferences")
    op.drop_index("ix_preferences_run_round_factor", table_name="preferences")
    op.drop_table("preferences")
