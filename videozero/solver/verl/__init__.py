"""verl as the solver's training backend: the rows (`export`'s verl shape), the reward
(`solver.external_rewards.compute_score`) and the `python -m verl.trainer.main_ppo` command."""
