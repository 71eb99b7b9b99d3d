"""`videozero iterate`: the smoke preset end to end, killed mid-round and resumed without duplicates, a
run driven by another process refused, configuration files and their errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import open_store
from store.runs import claim_run
from store.tables import Attempt, Checkpoint, Metric, Question, Round, RunVideo, Video
from tests.cli import ROOT, assert_one_sentence_error, videozero
from tests.store_fingerprint import differences, fingerprint
from videozero.run_config import RunConfig, load_run_config, preset_values

PREFECT_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def _env(tmp_path: Path) -> dict[str, str]:
    return {**PREFECT_ENV, "PREFECT_HOME": str(tmp_path / "prefect-home")}


def _json(*values) -> tuple[str, ...]:
    return tuple(json.dumps(v, sort_keys=True) for v in values)


def _counts(db: str) -> dict[str, int]:
    store = open_store(db, create=False)
    with store.session() as s:
        out = {
            "questions": s.scalar(select(func.count(Question.id))),
            "attempts": s.scalar(select(func.count(Attempt.id))),
            "checkpoints": s.scalar(select(func.count(Checkpoint.id))),
            "distinct_questions": len(
                {
                    (
                        q.round_id,
                        q.split,
                        q.video_id,
                        q.writer,
                        q.text,
                        q.answer,
                        *_json(q.spec, q.evidence, q.options),
                    )
                    for q in s.scalars(select(Question))
                }
            ),
            "distinct_checkpoints": s.scalar(
                select(func.count()).select_from(
                    select(Checkpoint.path, Checkpoint.stage, Checkpoint.role).distinct().subquery()
                )
            ),
        }
    store.dispose()
    return out


def _round_questions(db: str, round_index: int) -> set[int]:
    store = open_store(db, create=False)
    with store.session() as s:
        ids = set(
            s.scalars(
                select(Question.id)
                .join(Round, Round.id == Question.round_id)
                .where(Round.round_index == round_index)
            )
        )
    store.dispose()
    return ids


# Where the smoke run is killed with SIGKILL, one process after another (each resumes the one before), in
# the order the run reaches them: a stage done is skipped on resume, so each process dies at the next
# point of the list. EVERY_STAGE kills every stage at its start, inside it and at its end (`-m
# reliability`, about 13 minutes on 2 cores with the uninterrupted run it is compared with); the suite's
# run kills inside the learner (a checkpoint written aside, not yet in place) and inside round 0's
# questioner phase (proposals stored, none verified).
SUITE_POINTS = ("checkpoint:saved", "question:proposed")
EVERY_STAGE = (
    "mine:start", "mine:end",  # videos stored, the stage not marked done
    "learner:start", "checkpoint:saved", "learner:end",  # the warm-up written aside, not yet in place
    "heldout:start", "heldout:end",
    "question:start", "question:proposed", "verify:chunk", "question:end",  # round 0
    "solver:start", "checkpoint:saved", "solver:end",
    "questioner:start", "checkpoint:saved", "questioner:end",
    "eval:start", "eval:end",
    "curriculum:start", "curriculum:end",  # the round's end committed with the next state
    "question:proposed",  # round 1
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "crash_points",
    [SUITE_POINTS, pytest.param(EVERY_STAGE, marks=pytest.mark.reliability)],
    ids=["suite", "every-stage"],
)
def test_smoke_iterate_killed_with_sigkill_resumes_and_reports(tmp_path, crash_points):
    """The smoke preset end to end, killed with SIGKILL at each of `crash_points` in turn, each process
    resuming the one before, then finished without duplicates or half-written checkpoints; every stage
    done, the closing table, the plot and `videozero eval` over it."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["iterate", "--preset", "smoke", "--rounds", "2", "--run-name", "smoke", "--workdir", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", **_env(tmp_path)}
    first_console = tmp_path / "first-console.txt"
    for i, point in enumerate(crash_points):
        log = first_console if i == 0 else tmp_path / f"console-{i}.txt"
        with log.open("w") as console_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "videozero.cli.app", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                env={**env, "VIDEOZERO_CRASH_AT": point}, stdout=console_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                code = proc.wait(timeout=600)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # whatever it started goes with it
        assert code == -signal.SIGKILL, f"{point}: exit {code}\n{log.read_text()[-3000:]}"
        partial = _counts(db)
        assert partial["questions"] == partial["distinct_questions"], point
        assert partial["checkpoints"] == partial["distinct_checkpoints"], point
        # no half-written checkpoint is ever in place: every directory the store names is complete
        store = open_store(db, create=False)
        with store.session() as s:
            paths = list(s.scalars(select(Checkpoint.path)))
        store.dispose()
        assert all(Path(p, "config.json").is_file() for p in paths if Path(p).is_absolute()), point
    # the last kill came after a round's proposals were stored, before any was verified
    proposed_round = max(r for r in (0, 1) if _round_questions(db, r))
    proposed = _round_questions(db, proposed_round)
    first = first_console.read_text()

    done = videozero(*args, env=_env(tmp_path), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    final = _counts(db)
    assert final["questions"] == final["distinct_questions"]
    assert final["checkpoints"] == final["distinct_checkpoints"]
    # the proposals of the killed round were kept, none added twice
    assert _round_questions(db, proposed_round) == proposed

    # a console a person can read: videozero's bars and tables, no library chatter, no traceback
    out = " ".join((first + done.stdout).split())
    assert "round 0" in out and "round 1" in out and "evaluation of run smoke" in out
    assert "base" in out and "warmup" in out  # the checkpoints side by side
    assert "warm-up" in out and "round 1 verify" in out and "round 1 solver GRPO" in out
    for chatter in ("Traceback", "Warning", "| INFO", "Loading weights", "it/s]"):
        assert chatter not in first + done.stdout + done.stderr, (first + done.stderr)[-3000:]
    store = open_store(db, create=False)
    with store.session() as s:
        # every question was judged once; attempts are unique per (question, checkpoint, mode, sample)
        assert s.scalar(select(func.count(Question.id)).where(Question.status == "candidate")) == 0
        rounds = s.scalars(select(Round).order_by(Round.round_index)).all()
        assert [r.round_index for r in rounds] == [0, 1]
        for r in rounds:
            statuses = {k: v["status"] for k, v in r.stages.items() if isinstance(v, dict)}
            for stage in ("question", "solver", "preference", "questioner", "eval", "curriculum"):
                assert statuses.get(stage) in ("done", "skipped"), (r.round_index, statuses)
            assert statuses["curriculum"] == "done"
            assert r.curriculum["families"] and all("reason" in f for f in r.curriculum["families"].values())
        heldout = s.scalar(select(func.count(Question.id)).where(Question.split == "heldout"))
        roles = set(s.scalars(select(Checkpoint.role)).all())
    assert heldout > 0 and roles == {"solver", "questioner"}
    with store.session() as s:
        stages = {c.stage for c in s.scalars(select(Checkpoint).where(Checkpoint.role == "solver"))}
    # the solver trained in both rounds, by GRPO then by DPO on the round's preference pairs
    assert stages == {"base", "warmup", "grpo", "preference"}
    _pairs_differ_in_their_factor(store)
    assert (tmp_path / "runs" / "smoke" / "metrics.png").stat().st_size > 1000
    # `videozero eval` re-scores a round; the run's other checkpoints keep their stored figures beside it
    plot = tmp_path / "eval.png"
    ev = videozero("eval", "--model", "round:1", "--run", "smoke", "--db", db, "--workdir", str(tmp_path),
                   "--out", str(plot))  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-2000:]
    header = " ".join(ev.stdout.split())
    assert all(label in header for label in ("base", "warmup", "round 0", "round 1")), ev.stdout
    # held-out figures beside the set's best constant guess and the paired change against the warm-up
    assert "constant" in header and "Δ accuracy" in header and "±" in header, ev.stdout
    assert plot.stat().st_size > 1000
    # the run's checkpoints are scored with the run's own frame budget, never another
    other = videozero("eval", "--model", "all", "--run", "smoke", "--db", db, "--workdir", str(tmp_path),
                      "--max-frames", "32")  # fmt: skip
    assert_one_sentence_error(other, "scores its checkpoints with max-frames 4")
    with store.session() as s:
        splits = {
            Path(path).name: split
            for path, split in s.execute(
                select(Video.path, RunVideo.split).join(RunVideo, RunVideo.video_id == Video.id)
            )
        }
    scenes = {split for name, split in splits.items() if name.startswith("heldout_scene")}
    assert scenes == {"heldout"}  # the embedded held-out scenes are always held out
    # generated scenes of their own for the validation questions and the warm-up's extra targets
    assert splits["validation_scene_0.mp4"] == "validation" and splits["warmup_scene_0.mp4"] == "warmup"
    with store.session() as s:
        validation = s.scalar(select(func.count(Question.id)).where(Question.split == "validation"))
        scored = set(s.scalars(select(Metric.checkpoint_id).where(Metric.split == "validation")))
        stages = dict(s.execute(select(Checkpoint.id, Checkpoint.stage)).all())
    # never the base; a round is scored with its last checkpoint (here its DPO)
    assert validation > 0 and {stages[c] for c in scored} == {"warmup", "preference"}
    assert "validation accuracy" in out and "model writes" in out
    assert "questioner warm-up: of" in out and "about the requested evidence" in out
    with store.session() as s:  # the questioner's warm-up, which round 0's writer starts from
        writer = s.scalars(
            select(Checkpoint).where(Checkpoint.role == "questioner", Checkpoint.stage == "warmup")
        ).one()
    store.dispose()
    assert Path(writer.path, "config.json").is_file()
    # a finished run asked again does nothing more
    before = _counts(db)
    again = videozero(*args, env=_env(tmp_path))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to run" in again.stdout and "evaluation of run smoke" in " ".join(again.stdout.split())
    assert _counts(db) == before
    if crash_points == EVERY_STAGE:  # the same seed uninterrupted: the same questions, verdicts, metrics
        straight_dir = tmp_path / "uninterrupted"
        straight = videozero(*args[:-1], str(straight_dir), env=_env(straight_dir), timeout=900)
        assert straight.returncode == 0, straight.stderr[-2000:]
        # the eval command above re-scored round 1 in the killed run's store: compare like with like
        ev = videozero("eval", "--model", "round:1", "--run", "smoke", "--workdir", str(straight_dir),
                       "--out", str(straight_dir / "eval.png"))  # fmt: skip
        assert ev.returncode == 0, ev.stderr[-2000:]
        diff = differences(fingerprint(f"sqlite:///{straight_dir / 'store.db'}"), fingerprint(db))
        assert not diff, "\n".join(diff)


def test_a_run_driven_by_another_live_process_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(db)
    claim_run(store, "busy", {}, owner="another-host:4242")
    store.dispose()
    proc = videozero(
        "iterate", "--preset", "smoke", "--run-name", "busy", "--workdir", str(tmp_path), env=_env(tmp_path)
    )
    assert_one_sentence_error(proc, "Run 'busy' is being driven by another-host:4242")


def test_config_file_and_flags_override_the_preset(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("preset: smoke\nrounds: 3\nsolver:\n  steps: 5\nquestioner:\n  per_video: 4\n")
    c = load_run_config("default", cfg, run_name="x")
    assert (c.preset, c.rounds, c.solver.steps, c.questioner.per_video, c.learner.model) == (
        "smoke",
        3,
        5,
        4,
        "tiny-qwen",
    )
    assert c.questioner.verify.n_full == 2  # the rest of the smoke preset
    c = load_run_config("smoke", cfg, rounds=1)
    assert c.rounds == 1
    # the UI form: a dict naming the preset gets that preset's budgets for what it leaves out
    form = RunConfig.model_validate({"preset": "smoke", "rounds": 1})
    assert form.solver.steps == 1 and RunConfig().solver.steps == preset_values("default")["solver"]["steps"]


def test_run_settings_load_without_the_model_libraries():
    """The run's settings (the Prefect form, `iterate`'s early errors) load without torch or transformers."""
    code = (
        "import sys; from videozero.run_config import load_run_config; "
        "load_run_config('default'); load_run_config('smoke'); "
        "print(sorted(m for m in ('torch', 'transformers', 'decord', 'prefect') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_bad_config_gets_one_sentence(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rounds: [1, 2\n")
    assert_one_sentence_error(
        videozero("iterate", "--config", str(bad), "--workdir", str(tmp_path)), "is not valid YAML"
    )
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("rounds: -1\n")
    assert_one_sentence_error(
        videozero("iterate", "--config", str(wrong), "--workdir", str(tmp_path)), "invalid setting rounds"
    )
    assert_one_sentence_error(
        videozero("iterate", "--preset", "huge", "--workdir", str(tmp_path)), "unknown preset 'huge'"
    )
    assert_one_sentence_error(
        videozero("iterate", "--videos", str(tmp_path / "none.mp4"), "--workdir", str(tmp_path)),
        "none of the videos exist",
    )


def test_ablation_switches_reach_the_stages():
    """The paper's contrast: no evidence anchoring, no r_dep, no alignment reward."""
    import numpy as np

    from videozero.evidence.views import SegmentView, VideoEvidence, whole_video
    from videozero.questioner.verify import BLIND_ANSWERABLE, judge
    from videozero.run_config import verify_settings

    full = load_run_config("smoke")
    off = load_run_config(
        "smoke", ablation={"evidence_anchoring": False, "use_r_dep": False, "use_alignment": False}
    )
    assert off.ablation.label == "no-anchoring+no-r_dep+no-alignment" and full.ablation.label == "full"
    # no r_dep: blind-answerable questions are kept and r_Q leaves r_dep out
    v_on, v_off = verify_settings(full), verify_settings(off)
    assert judge(0.5, 0.5, 1.0, v_on)[1] == BLIND_ANSWERABLE and judge(0.5, 0.5, 1.0, v_off) == (
        "accepted",
        None,
    )
    # no alignment: the solver reward's alpha is 0
    from videozero.stages.solver import solver_settings

    assert solver_settings(full, 0).weights.alpha == 1.0 and solver_settings(off, 1).weights.alpha == 0.0
    # no anchoring: the mined events are replaced by equal windows over the whole video, shots kept
    ev = VideoEvidence(
        1, "v.mp4", 12.0, np.zeros((24, 8, 8, 3), np.uint8), np.arange(24) * 0.5, np.ones((24, 4), np.float32),
        np.zeros(24, np.float32),
        [SegmentView(1, "shot", 0.0, 6.0, 0.4), SegmentView(2, "shot", 6.0, 12.0, 0.4), SegmentView(3, "event", 7.0, 8.0, 0.9)],
    )  # fmt: skip
    windows = [s for s in whole_video(ev).segments if s.level == "event"]
    assert [s.span for s in windows] == [(0.0, 6.0), (6.0, 12.0)] and {s.saliency for s in windows} == {0.5}
    assert [s.span for s in whole_video(ev).segments if s.level == "shot"] == [(0.0, 6.0), (6.0, 12.0)]


@pytest.mark.reliability
def test_sigterm_stops_iterate_and_releases_the_lease(tmp_path):
    """SIGTERM (as from a scheduler or `kill`) stops a running `iterate` like Ctrl-C: it exits, the run is
    recorded 'stopped' with no owner, and the same command resumes it."""
    from store.runs import run_by_name

    db = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["iterate", "--preset", "smoke", "--rounds", "1", "--run-name", "term", "--workdir", str(tmp_path)]
    env = {**os.environ, "NO_COLOR": "1", **_env(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "videozero.cli.app", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (tmp_path / "store.db").exists() and _counts(db)["checkpoints"] > 0:  # the learner has run
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in out, out[-2000:]
    store = open_store(db, create=False)
    with store.session() as s:
        run = run_by_name(s, "term")
        assert run.status == "stopped" and run.owner is None, (run.status, run.owner)
    store.dispose()
    done = videozero(*args, env=_env(tmp_path), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]


def _pairs_differ_in_their_factor(store) -> None:
    """Every preference pair the run stored: the chosen response is its question's training label, and
    the rejected one differs from it in exactly the factor its type names."""
    from store.preferences import round_pair_inputs
    from store.tables import Preference
    from videozero.answer_format import render_answer
    from videozero.solver.preference_pairs import differs_in, pair_label, rendered

    with store.session() as s:
        pairs = s.scalars(select(Preference)).all()
        rows = {}
        for round_id in {p.round_id for p in pairs}:
            run_id = next(p.run_id for p in pairs if p.round_id == round_id)
            rows |= {r["id"]: r for r in round_pair_inputs(s, run_id, round_id)}
    assert pairs and {p.factor for p in pairs} <= {"grounding", "answer", "both"}
    for p in pairs:
        label = pair_label(rows[p.question_id])
        assert p.chosen == render_answer(rendered(label.spans), label.answer)
        assert differs_in(p, label) == p.factor, (p.factor, p.chosen, p.rejected)
