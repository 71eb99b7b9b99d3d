"""What a run shows its user, from plain objects (`stages.report` reads them from the store): the round
tables (`summary`), every checkpoint's figures side by side and the run's plot (`comparison`), and the
videos that got no question, with the reason (`coverage`)."""
