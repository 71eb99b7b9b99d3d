"""What a run shows its user, read from the store: the round tables and the run's plot (`summary`), every
checkpoint's figures side by side (`comparison`), and the videos that got no question, with the reason
(`coverage`)."""
