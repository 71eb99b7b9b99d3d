"""The curriculum scheduler's decisions, and the run lease that makes resume safe."""

from __future__ import annotations

import multiprocessing as mp
from datetime import timedelta

import pytest
from sqlalchemy import select

from store import Run, open_store
from store.runs import RunLockedError, claim_run, heartbeat, release_run
from videozero.curriculum import CurriculumConfig, CurriculumScheduler, FamilyMeasurement


def m(acc: float, agree: float, learn: float, n: int = 10) -> FamilyMeasurement:
    return FamilyMeasurement(accuracy=acc, agreement=agree, learnability=learn, n=n)


def test_promote_demote_keep_and_bounds() -> None:
    sched = CurriculumScheduler(CurriculumConfig(max_level=2, min_questions=5))
    state = sched.initial(["a", "b", "c", "d", "e"], levels={"b": 1, "d": 2})
    nxt = sched.update(
        state,
        {
            "a": m(0.9, 0.85, 0.1),
            "b": m(0.1, 0.6, 0.3),
            "c": m(0.5, 0.5, 0.5),
            "d": m(0.95, 0.9, 0.05),
            "e": m(0.9, 0.9, 0.1, n=3),
        },
    )
    assert nxt.levels() == {"a": 1, "b": 0, "c": 0, "d": 2, "e": 0}
    assert nxt.families["b"].reason.startswith("demoted 1 -> 0")
    assert nxt.families["d"].reason.startswith("at the top level 2")
    assert nxt.families["e"].reason.startswith("only 3 questions")
    # High accuracy but low agreement is not mastery: keep.
    kept = sched.update(state, {"a": m(0.8, 0.5, 0.4)})
    assert kept.levels()["a"] == 0 and kept.families["a"].reason.startswith("level kept")
    assert sum(nxt.weights().values()) == pytest.approx(1.0)
    assert nxt.weights()["c"] > nxt.weights()["a"] and min(nxt.weights().values()) >= 0.1 - 1e-9
    # Demote at level 0 stays at 0; JSON round trip of the state.
    again = sched.update(nxt, {"b": m(0.0, 0.2, 0.0)})
    assert again.levels()["b"] == 0 and "lowest level" in again.families["b"].reason
    assert type(again).model_validate_json(again.model_dump_json()) == again


def test_mix_without_measurements_is_even() -> None:
    sched = CurriculumScheduler()
    assert sched.mix({"a": None, "b": None}) == {"a": 0.5, "b": 0.5}
    assert sched.mix({"a": 0.0, "b": 0.0}) == {"a": 0.5, "b": 0.5}


def _claim(url: str, name: str, owner: str, q: mp.Queue) -> None:
    store = open_store(url)
    try:
        q.put(("ok", claim_run(store, name, {}, owner=owner)))
    except RunLockedError as exc:
        q.put(("locked", str(exc)))


def test_lease_refuses_a_second_live_owner_and_expires(db_url: str) -> None:
    store = open_store(db_url)
    run_id = claim_run(store, "r1", {"x": 1}, owner="host:1")
    assert claim_run(store, "r1", {}, owner="host:1") == run_id  # the same owner resumes
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_claim, args=(db_url, "r1", "host:2", q))
    p.start()
    p.join(60)
    kind, msg = q.get(timeout=5)
    assert kind == "locked" and "Run 'r1' is being driven by host:1" in msg
    heartbeat(store, run_id, owner="host:1")
    with pytest.raises(RunLockedError):
        heartbeat(store, run_id, owner="host:2")
    # A stale lease (the owner was killed) is taken over.
    assert claim_run(store, "r1", {}, owner="host:2", lease_timeout=timedelta(seconds=0)) == run_id
    with pytest.raises(RunLockedError, match="taken over"):
        heartbeat(store, run_id, owner="host:1")
    release_run(store, run_id, "finished", owner="host:2")
    with store.session() as s:
        run = s.scalars(select(Run)).one()
        assert (run.owner, run.status, run.config) == (None, "finished", {"x": 1})
        assert run.finished_at is not None
    assert claim_run(store, "r1", {}, owner="host:3") == run_id
    store.dispose()


def test_a_round_that_scores_lower_on_validation_is_not_built_on(tmp_path) -> None:
    from store.checkpoints import checkpoint_row, current_solver, latest_solver
    from store.metrics import write_metrics
    from store.runs import ensure_round

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    run_id = claim_run(store, "keep-better", {})
    base = checkpoint_row(store, "base-dir", "base", run_id=run_id)
    warm = checkpoint_row(store, "warm-dir", "warmup", run_id=run_id, base_model="base-dir")
    r0 = checkpoint_row(
        store,
        "r0/solver",
        "grpo",
        run_id=run_id,
        base_model="warm-dir",
        round_id=ensure_round(store, run_id, 0),
    )
    assert current_solver(store, run_id, 0) == (warm, "warm-dir")
    # no validation figures: the newest checkpoint, as before
    assert current_solver(store, run_id, 1) == latest_solver(store, run_id, 1) == (r0, "r0/solver")

    def validation(ckpt: int, accuracy: float) -> None:
        with store.write() as s:
            write_metrics(s, run_id, None, ckpt, "validation", {"accuracy": accuracy, "n": 64})

    validation(warm, 0.40)
    validation(r0, 0.45)
    assert current_solver(store, run_id, 1) == (r0, "r0/solver")  # better: built on
    validation(r0, 0.35)
    assert current_solver(store, run_id, 1) == (warm, "warm-dir")  # worse: round 1 starts from the warm-up
    assert latest_solver(store, run_id, 1) == (r0, "r0/solver")  # what round 0 ended with is unchanged
    r1 = checkpoint_row(
        store,
        "r1/solver",
        "grpo",
        run_id=run_id,
        base_model="warm-dir",
        round_id=ensure_round(store, run_id, 1),
    )
    validation(r1, 0.50)
    assert current_solver(store, run_id, 2) == (r1, "r1/solver")
    # the held-out figures never choose: a better held-out score changes nothing
    with store.write() as s:
        write_metrics(s, run_id, None, r0, "heldout", {"accuracy": 0.99})
    assert current_solver(store, run_id, 2) == (r1, "r1/solver")
    assert base not in (current_solver(store, run_id, k)[0] for k in range(3))
    store.dispose()
