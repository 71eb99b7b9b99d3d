"""The Video-Zero loop as stage functions over the store: what `videozero iterate` and the Prefect flows
run. Nothing here imports Prefect: the flows in `flows/` wrap each stage as a task.

Run-level stages (once per run): `mine` (mine and attach the videos, split by video), `learner` (build
nano or tiny-qwen on first use, warm it up, record base and warm-up checkpoints), `heldout` (the run's
fixed held-out questions), `evaluate.evaluate_checkpoint` (base and warm-up on the held-out questions).
Round stages, in order (`ROUND_STAGES`): `question` (propose + verify with the current solver), `solver`
(GRPO on the accepted questions), `preference` (the round's factorized preference pairs; DPO on them when
enabled), `questioner` (GRPO of the model writer on r_Q), `evaluate` (held-out
evaluation and the paper's diagnostics), `curriculum` (levels and mix of the next round).

Every stage takes the run's config and ids, reads its inputs from the store and records its status and
seconds in `rounds.stages` (`run.stage_record`); a stage already 'done' is skipped, so a killed run
resumes where it stopped. The stages are the only code outside `store/` (and the CLI's query commands)
that opens store sessions: the questioner, solver, evaluation and reports packages take and return plain
objects; `report` reads back what a run shows.
"""

ROUND_STAGES = ("question", "solver", "preference", "questioner", "eval", "curriculum")
