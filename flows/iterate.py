"""The `iterate` flow: rounds of the Video-Zero loop as Prefect tasks over `videozero.stages`.

`iterate(config)` claims the run's lease, mines and attaches the videos, prepares the learner (built,
aligned and warmed up on first use), fixes the held-out questions, evaluates the base and warm-up
checkpoints, then runs `round_flow` for every round not yet finished: question -> solver GRPO ->
preference pairs (and DPO when enabled) -> questioner GRPO -> held-out evaluation and diagnostics -> curriculum. Tasks take ids and the config
(never models or sessions); the store records what is done, so a rerun of a killed run resumes.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal

from flows.artifacts import publish_round
from videozero.progress import StageProgress
from videozero.run_config import RunConfig
from videozero.stages.curriculum import curriculum_stage
from videozero.stages.evaluate import eval_stage, evaluate_checkpoint
from videozero.stages.heldout import heldout_stage
from videozero.stages.learner import learner_stage
from videozero.stages.mine import mine_stage
from videozero.stages.preference import preference_stage
from videozero.stages.preflight import check_run_inputs
from videozero.stages.question import question_stage
from videozero.stages.questioner import questioner_stage
from videozero.stages.report import round_summary
from videozero.stages.run import (
    Lease,
    is_bad_input,
    open_run_store,
    record_resources,
    rounds_done,
    store_went_away,
)
from videozero.stages.solver import solver_stage

# Every task reads and writes the store: resuming is the store's job, not Prefect's result cache.
TASK = {"cache_policy": NO_CACHE, "persist_result": False}


def retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry a failed task unless it failed on bad input or a refused store (another try says the same)."""
    return not is_bad_input(getattr(state, "data", None))


def retry_if_store_went_away(task, task_run, state) -> bool:
    """Retry a failed stage when the store's server went away (restarted): it resumes once it is back."""
    return store_went_away(getattr(state, "data", None))


# Mining and evaluation are retried once on any failure but bad input (a flaky decode, a lost store).
RETRY = {"retries": 1, "retry_delay_seconds": 5, "retry_condition_fn": retry_unless_bad_input}
# The other stages are retried only when the store went away: a PostgreSQL restart mid-round is waited
# for (about a minute in all) and the stage resumes from what it committed.
RETRY_STORE = {
    "retries": 3,
    "retry_delay_seconds": [5, 15, 40],
    "retry_condition_fn": retry_if_store_went_away,
}


@task(name="mine", **RETRY, **TASK)
def mine_task(config: RunConfig, run_id: int) -> dict:
    return mine_stage(config, run_id, StageProgress(get_run_logger().info))


@task(name="learner", **RETRY_STORE, **TASK)
def learner_task(config: RunConfig, run_id: int) -> dict:
    return learner_stage(config, run_id, StageProgress(get_run_logger().info))


@task(name="held-out questions", **RETRY_STORE, **TASK)
def heldout_task(config: RunConfig, run_id: int) -> int:
    return heldout_stage(config, run_id)


@task(name="evaluate checkpoint", **RETRY, **TASK)
def evaluate_task(config: RunConfig, run_id: int, checkpoint_id: int) -> dict:
    return evaluate_checkpoint(config, run_id, checkpoint_id)


@task(name="question", **RETRY_STORE, **TASK)
def question_task(config: RunConfig, run_id: int, round_index: int) -> dict:
    progress = StageProgress(get_run_logger().info, prefix=f"round {round_index} ")
    return question_stage(config, run_id, round_index, progress)


@task(name="solver GRPO", **RETRY_STORE, **TASK)
def solver_task(config: RunConfig, run_id: int, round_index: int) -> dict:
    logger = get_run_logger()
    bar = StageProgress(prefix=f"round {round_index} ")

    def progress(step) -> None:
        bar("solver GRPO", step.step, config.solver.steps, f"reward {step.reward:.2f}")
        logger.info(
            "solver step %d: reward %.3f accuracy %.2f IoU %.2f format %.0f%%, groups kept %d/%d, "
            "rollout %.0f s, update %.0f s",
            step.step, step.reward, step.accuracy, step.iou, 100 * step.format_rate, step.groups_kept, step.groups,
            step.seconds_rollout, step.seconds_update,
        )  # fmt: skip

    return solver_stage(config, run_id, round_index, progress)


@task(name="preference", **RETRY_STORE, **TASK)
def preference_task(config: RunConfig, run_id: int, round_index: int) -> dict:
    bar = StageProgress(prefix=f"round {round_index} ")

    def progress(step) -> None:
        bar("solver DPO", step.step + 1, config.preference.steps, f"loss {step.loss:.3f}")

    return preference_stage(config, run_id, round_index, progress)


@task(name="questioner GRPO", **RETRY_STORE, **TASK)
def questioner_task(config: RunConfig, run_id: int, round_index: int) -> dict:
    return questioner_stage(config, run_id, round_index)


@task(name="evaluate round", **RETRY, **TASK)
def eval_task(config: RunConfig, run_id: int, round_index: int) -> dict:
    return eval_stage(config, run_id, round_index)


@task(name="curriculum", **RETRY_STORE, **TASK)
def curriculum_task(config: RunConfig, run_id: int, round_index: int) -> dict:
    return curriculum_stage(config, run_id, round_index)


@flow(name="videozero-round", log_prints=True)
def round_flow(config: RunConfig, run_id: int, round_index: int) -> dict:
    """One round: question -> solver GRPO -> preference pairs (and DPO) -> questioner GRPO -> evaluation
    -> curriculum."""
    logger = get_run_logger()
    bar = StageProgress()
    stages = {}
    steps = (
        ("question", question_task),
        ("solver", solver_task),
        ("preference", preference_task),
        ("questioner", questioner_task),
        ("eval", eval_task),
        ("curriculum", curriculum_task),
    )
    for i, (name, fn) in enumerate(steps):
        bar(f"round {round_index}", i, len(steps), name)
        stages[name] = fn(config, run_id, round_index)
        logger.info("round %d %s: %s", round_index, name, stages[name])
    bar(f"round {round_index}", len(steps), len(steps), "done")
    store = open_run_store(config)
    try:
        record_resources(store, run_id, round_index)
        summary = round_summary(store, run_id, round_index)
        publish_round(config, summary, store, run_id)
    finally:
        store.dispose()
    return stages


@flow(name="videozero-iterate", log_prints=True)
def iterate(config: RunConfig) -> dict:
    """Run (or resume) `config.rounds` rounds of the Video-Zero loop on `config.videos`."""
    logger = get_run_logger()
    check_run_inputs(config)  # a launch from the UI is checked as the CLI checks it
    store = open_run_store(config)
    lease = Lease(store, config)
    status = "failed"
    try:
        run_id = lease.run_id
        bar = StageProgress()
        bar("preparing", 0, 4, "mine")
        mined = mine_task(config, run_id)
        logger.info("videos: %s", mined)
        bar("preparing", 1, 4, "learner")
        learner = learner_task(config, run_id)
        bar("preparing", 2, 4, "held-out questions")
        heldout_task(config, run_id)
        bar("preparing", 3, 4, "evaluate base and warm-up")
        for key in ("base", "warmup"):
            if key in learner:
                evaluate_task(config, run_id, learner[key])
        bar("preparing", 4, 4, "done")
        done = rounds_done(store, run_id)
        for r in range(done, config.rounds):
            lease.check()
            round_flow(config, run_id, r)
        status = "finished"
        return {"run_id": run_id, "rounds": config.rounds}
    except (KeyboardInterrupt, TerminationSignal):  # Ctrl-C, or SIGTERM as Prefect's engine raises it
        status = "stopped"
        raise
    finally:
        lease.release(status)
        store.dispose()
