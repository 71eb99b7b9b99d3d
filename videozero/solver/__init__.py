"""The solver: rollouts with evidence spans, pseudo-labels from their consensus, GRPO training."""
