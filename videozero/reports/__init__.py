"""What a run shows its user, read from the store: the round tables, the side-by-side checkpoint
comparison and its plot (`summary`), and the videos that got no question, with the reason (`coverage`)."""
