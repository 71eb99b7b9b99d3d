"""The evaluation runner end to end: tiny-qwen on a real ASL build, held-out scoring and diagnostics in a
store populated with questions on generated clips, and `videozero eval` over two recorded rounds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import Attempt, Checkpoint, Metric, Question, Round, Run, RunVideo, Video, open_store
from store.metrics import write_metrics
from tests.cli import assert_one_sentence_error, videozero
from tests.model_builds import REAL_VIDEOS, tiny_qwen_dir
from videozero.evaluation.heldout import DIAGNOSTICS_SPLIT, HELDOUT_SPLIT
from videozero.evaluation.runner import EvalConfig, evaluate_benchmark, item_request
from videozero.models.prompt import VideoInput
from videozero.stages.evaluate import diagnostics, evaluate_heldout, probe_round
from videozero.video.probes import mode_video

ASL_CLIPS = REAL_VIDEOS / "asl_gestures"
FAST = EvalConfig(fps=2.0, max_frames=8, short_side=64, max_new_tokens=24, batch_size=8)


def _tiny_engine(path: Path):
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model

    return TransformersEngine(load_model(path, device="cpu"), batch_size=8)


@pytest.fixture(scope="module")
def asl_build(tmp_path_factory: pytest.TempPathFactory):
    if not ASL_CLIPS.is_dir():
        pytest.skip(f"{ASL_CLIPS} is absent: the ASL benchmark is built from the real sign clips")
    from videozero.evaluation.asl_grounding import AslBuildConfig, build_asl_grounding

    out = tmp_path_factory.mktemp("asl")
    return build_asl_grounding(out, ASL_CLIPS, AslBuildConfig(n_videos=2, clips_per_video=3, short_side=64))


@pytest.fixture(scope="module")
def rounds_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run with a base checkpoint and two GRPO rounds (real tiny-qwen directories), 4 held-out questions
    and 2 accepted questions per round, all on generated clips with known answers and evidence."""
    from videozero.models.tiny_qwen import build_tiny_qwen
    from videozero.solver.tasks import make_task

    root = tmp_path_factory.mktemp("rounds")
    url = f"sqlite:///{root / 'store.db'}"
    store = open_store(url)
    paths = {
        "base": tiny_qwen_dir(),
        0: build_tiny_qwen(root / "round0", seed=1),
        1: build_tiny_qwen(root / "round1", seed=2),
    }
    tasks = [
        make_task(fam, 900 + i, root / "clips")
        for i, fam in enumerate(["colour", "when", "count", "order"] * 2)
    ]
    with store.write() as s:
        run = Run(name="two-rounds")
        s.add(run)
        s.flush()
        rounds = [Round(run_id=run.id, round_index=i) for i in range(2)]
        s.add_all(rounds)
        videos = [Video(path=t.path, duration_s=t.duration, status="ok") for t in tasks]
        s.add_all(videos)
        s.flush()
        ckpts = {
            "base": Checkpoint(
                run_id=run.id, role="solver", stage="base", path=str(paths["base"]), base_model="tiny"
            ),
            0: Checkpoint(
                run_id=run.id,
                round_id=rounds[0].id,
                role="solver",
                stage="grpo",
                path=str(paths[0]),
                base_model="tiny",
            ),
            1: Checkpoint(
                run_id=run.id,
                round_id=rounds[1].id,
                role="solver",
                stage="grpo",
                path=str(paths[1]),
                base_model="tiny",
            ),
        }
        s.add_all(ckpts.values())
        for i, (task, video) in enumerate(zip(tasks, videos, strict=True)):
            heldout = i < 4
            s.add(RunVideo(run_id=run.id, video_id=video.id, split="heldout" if heldout else "train"))
            s.add(
                Question(
                    run_id=run.id,
                    round_id=None if heldout else rounds[(i - 4) // 2].id,
                    video_id=video.id,
                    split="heldout" if heldout else "train",
                    family=task.family,
                    text=task.text,
                    options=list(task.options) if task.options else None,
                    answer=task.answer,
                    evidence=[list(e) for e in task.evidence],
                    spec={"answer_kind": task.answer_kind},
                    status="accepted",
                )
            )
        s.flush()
        ids = {k: c.id for k, c in ckpts.items()}
        run_id, round_ids = run.id, [r.id for r in rounds]
    return {"url": url, "store": store, "run_id": run_id, "round_ids": round_ids, "ckpt": ids, "paths": paths}


# --- ASL, end to end -----------------------------------------------------------------------------------


def test_tiny_qwen_is_evaluated_on_the_real_asl_build(asl_build) -> None:
    request, duration = item_request(asl_build.items[0], FAST)
    assert len(request.images) >= 2 and request.video is not None  # query clip stills beside the video
    assert all(label.startswith("query clip frame") for label, _ in request.images)
    assert math.isclose(duration, asl_build.items[0].duration)

    result = evaluate_benchmark(
        _tiny_engine(tiny_qwen_dir()), "asl_grounding", asl_build.items_path, config=FAST
    )
    assert result.figures["n"] == len(asl_build.items) == 6
    assert set(result.figures) == {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "format_rate", "n"}
    assert all(0.0 <= v <= 1.0 for k, v in result.figures.items() if k != "n")
    assert set(result.outputs) == {i.item_id for i in asl_build.items}
    assert "all 2 videos found" in result.videos


def test_missing_benchmark_videos_are_skipped_and_reported(asl_build, tmp_path: Path) -> None:
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(asl_build.videos_dir / "asl_000.mp4", videos)
    result = evaluate_benchmark(
        _tiny_engine(tiny_qwen_dir()),
        "asl_grounding",
        asl_build.items_path,
        videos,
        FAST.model_copy(update={"limit": 2}),
    )
    assert result.figures["n"] == 2
    assert "1 of 2 videos not found" in result.videos and "asl_001" in result.videos


# --- input modes and diagnostics arithmetic ------------------------------------------------------------


def test_mode_videos_keep_true_times() -> None:
    import numpy as np

    video = VideoInput(np.full((8, 16, 16, 3), 200, np.uint8), np.arange(8) * 0.5)
    masked = mode_video(video, [(1.0, 2.0)], "masked", 4.0, seed=0)
    assert masked.frames[[2, 3]].max() == 0 and masked.frames[[0, 1, 4]].min() == 200
    key = mode_video(video, [(1.0, 2.0)], "key_only", 4.0, seed=0)
    assert key.timestamps.tolist() == [1.0, 1.5]
    rand = mode_video(video, [(1.0, 2.0)], "random_span", 4.0, seed=3)
    assert len(rand) >= 1 and not set(rand.timestamps.tolist()) & {1.0, 1.5}
    assert mode_video(video, [(1.0, 2.0)], "blind", 4.0, seed=0) is None


def test_diagnostics_from_hand_made_attempts(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with store.write() as s:
        run = Run(name="d")
        s.add(run)
        s.flush()
        rnd = Round(run_id=run.id, round_index=0)
        video = Video(path="/v.mp4")
        s.add_all([rnd, video])
        s.flush()
        ck = Checkpoint(run_id=run.id, role="solver", stage="grpo", path="x", base_model="x")
        qs = [
            Question(
                run_id=run.id, round_id=rnd.id, video_id=video.id, family="f", text="q", answer="A", status=st
            )
            for st in ("accepted", "accepted", "accepted", "rejected")
        ]
        s.add_all([ck, *qs])
        s.flush()
        # q0: full 1, blind 1, masked 0, key_only 1, random 0
        # q1: full 1, blind 0, masked 0, key_only 1, random 1
        # q2: full 0 and 1 (two samples -> 0.5), masked 0; no blind, key_only or random
        # q3 (rejected): every mode 1, must not count
        table = {
            0: {"full": [1], "blind": [1], "masked": [0], "key_only": [1], "random_span": [0]},
            1: {"full": [1], "blind": [0], "masked": [0], "key_only": [1], "random_span": [1]},
            2: {"full": [0, 1], "masked": [0]},
            3: {m: [1] for m in ("full", "blind", "masked", "key_only", "random_span")},
        }
        for qi, modes in table.items():
            for mode, outcomes in modes.items():
                for k, ok in enumerate(outcomes):
                    s.add(
                        Attempt(
                            question_id=qs[qi].id,
                            checkpoint_id=ck.id,
                            mode=mode,
                            sample_index=k,
                            correct=bool(ok),
                        )
                    )
        s.flush()
        d = diagnostics(s, run.id, rnd.id)
    # dependency over q0, q1: full 1.0 - blind 0.5; necessity over q0..q2: (1 + 1 + 0.5)/3 - 0
    # specificity over q0, q1: key 1.0 - random 0.5
    assert d["video_dependency"] == pytest.approx(0.5) and d["video_dependency_n"] == 2
    assert d["key_necessity"] == pytest.approx(2.5 / 3) and d["key_necessity_n"] == 3
    assert d["key_specificity"] == pytest.approx(0.5) and d["key_specificity_n"] == 2
    assert d["accuracy_full"] == pytest.approx(2.5 / 3) and d["accuracy_blind"] == pytest.approx(0.5)


def test_write_metrics_replaces_the_same_figure(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with store.write() as s:
        run = Run(name="m")
        s.add(run)
        s.flush()
        ck = Checkpoint(run_id=run.id, role="solver", stage="base", path="x", base_model="x")
        s.add(ck)
        s.flush()
        write_metrics(s, run.id, None, ck.id, "heldout", {"accuracy": 0.25, "n": 4})
        write_metrics(s, run.id, None, ck.id, "heldout", {"accuracy": 0.5})
        write_metrics(s, run.id, None, ck.id, "asl_grounding", {"accuracy": 0.75, "mIoU": 0.5})
        write_metrics(s, run.id, None, ck.id, "asl_grounding", {"mIoU": 0.25}, whole_split=True)
        rows = s.execute(
            select(Metric.split, Metric.name, Metric.value).order_by(Metric.split, Metric.name)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("asl_grounding", "mIoU", 0.25),
        ("heldout", "accuracy", 0.5),
        ("heldout", "n", 4.0),
    ]


# --- held-out scoring and diagnostics with a real checkpoint -------------------------------------------


def test_heldout_scoring_stores_attempts_and_metrics_once(rounds_store: dict) -> None:
    store, run_id, ck = rounds_store["store"], rounds_store["run_id"], rounds_store["ckpt"][0]
    engine = _tiny_engine(rounds_store["paths"][0])
    figures = evaluate_heldout(engine, store, run_id, ck, FAST)
    assert figures["n"] == 4 and {"accuracy", "mIoU", "R1@0.3", "R1@0.5", "R1@0.7", "format_rate"} <= set(
        figures
    )
    assert {f"{fam}/accuracy" for fam in ("colour", "when", "count", "order")} <= set(figures)

    def counts():
        with store.session() as s:
            attempts = s.scalar(select(func.count()).select_from(Attempt).where(Attempt.checkpoint_id == ck))
            metrics = s.execute(
                select(Metric.name, Metric.value, Metric.round_id).where(
                    Metric.checkpoint_id == ck, Metric.split == HELDOUT_SPLIT
                )
            ).all()
        return attempts, metrics

    attempts, metrics = counts()
    assert attempts == 4 and len(metrics) == len(figures)
    assert {m.round_id for m in metrics} == {rounds_store["round_ids"][0]}
    again = evaluate_heldout(engine, store, run_id, ck, FAST)
    assert again == figures and counts() == (attempts, metrics)

    diag = probe_round(engine, store, run_id, rounds_store["round_ids"][0], ck, FAST)
    assert {"video_dependency", "key_necessity", "key_specificity"} <= set(diag)
    with store.session() as s:
        modes = s.scalars(
            select(Attempt.mode).join(Question).where(Attempt.checkpoint_id == ck, Question.split == "train")
        ).all()
        stored = s.scalar(
            select(func.count())
            .select_from(Metric)
            .where(Metric.checkpoint_id == ck, Metric.split == DIAGNOSTICS_SPLIT)
        )
    assert sorted(modes) == sorted(["full", "blind", "masked", "key_only", "random_span"] * 2)
    assert stored == len(diag)


def test_heldout_with_zoom_stores_answers_records_and_figures_beside_the_single_pass(
    rounds_store: dict,
) -> None:
    from videozero.zoom_config import ZoomEvalSettings

    store, run_id, ck = rounds_store["store"], rounds_store["run_id"], rounds_store["ckpt"][0]
    engine = _tiny_engine(rounds_store["paths"][0])
    single = evaluate_heldout(engine, store, run_id, ck, FAST)
    for mode in ("coarse_to_fine", "zoom_tool"):
        zoom = ZoomEvalSettings(mode=mode, threshold=1.0, max_frames=4, fps=4.0)  # always unsure: zooms
        figures = evaluate_heldout(engine, store, run_id, ck, FAST.model_copy(update={"zoom": zoom}))
        assert {k: v for k, v in figures.items() if not k.startswith(f"{mode}/")} == single  # unchanged
        with store.session() as s:
            turns = s.scalars(
                select(Attempt.turns).where(Attempt.checkpoint_id == ck, Attempt.mode == mode)
            ).all()
            names = set(
                s.scalars(
                    select(Metric.name).where(Metric.checkpoint_id == ck, Metric.split == f"heldout:{mode}")
                )
            )
        assert len(turns) == 4 and {"accuracy", "mIoU", "format_rate"} <= names
        if mode == "coarse_to_fine":
            assert all(t["zoomed"] and len(t["zoom"]["frames"]) <= 4 for t in turns)
            assert figures["coarse_to_fine/zoomed_rate"] == 1.0 and "zoom_kept_rate" in names
        else:
            assert all(isinstance(t, list) and t[0]["said"] is not None for t in turns)
            assert "tool_calls" in names and "zoom_tool/accuracy" in figures


# --- the command ---------------------------------------------------------------------------------------


def test_videozero_eval_prints_rounds_side_by_side_and_writes_the_plot(
    rounds_store: dict, asl_build, tmp_path: Path
) -> None:
    png = tmp_path / "report.png"
    proc = videozero(
        "eval", "--model", "all", "--run", "two-rounds", "--db", rounds_store["url"],
        "--benchmark", "asl_grounding", "--annotations", str(asl_build.items_path),
        "--limit", "2", "--max-frames", "8", "--short-side", "64", "--max-new-tokens", "24",
        "--out", str(png), "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    print(out)
    header = next(line for line in out.splitlines() if "figure" in line)
    assert header.index("base") < header.index("round 0") < header.index("round 1")
    for fragment in ("heldout", "diagnostics", "asl_grounding", "key_necessity", "R1@0.5", "format_rate"):
        assert fragment in out
    # held-out figures beside the set's best constant guess, and paired changes (against the base here:
    # the run has no warm-up)
    assert "constant" in header and "Δ accuracy" in out and "±" in out
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open_store(rounds_store["url"], create=False).session() as s:
        splits = set(s.scalars(select(Metric.split).where(Metric.checkpoint_id == rounds_store["ckpt"][1])))
    assert splits == {"heldout", "diagnostics", "asl_grounding"}

    one = videozero("eval", "--model", "round:1", "--db", rounds_store["url"], "--no-heldout",
                    "--benchmark", "asl_grounding", "--annotations", str(asl_build.items_path), "--limit", "1",
                    "--max-frames", "8", "--short-side", "64", "--max-new-tokens", "24",
                    "--zoom", "coarse_to_fine", "--workdir", str(tmp_path / "work"))  # fmt: skip
    assert one.returncode == 0, one.stderr
    with open_store(rounds_store["url"], create=False).session() as s:
        names = set(
            s.scalars(
                select(Metric.name).where(
                    Metric.checkpoint_id == rounds_store["ckpt"][1], Metric.split == "asl_grounding"
                )
            )
        )
    assert {"mIoU", "coarse_to_fine/mIoU"} <= names  # the benchmark with zoom beside the single pass
    assert (tmp_path / "work" / "reports" / "two-rounds-eval.png").is_file()
    assert "round 0" in one.stdout  # the stored figures of the other rounds stay in the comparison


def test_round_references_are_checked() -> None:
    from videozero.cli.eval import select_columns
    from videozero.errors import VideozeroError
    from videozero.reports.comparison import Column

    columns = [Column("base", 1, "base"), Column("round 0", 2, "grpo", 0), Column("round 1", 3, "grpo", 1)]
    assert [c.label for c in select_columns(columns, "round:1", "r")] == ["round 1"]
    assert [c.label for c in select_columns(columns, "all", "r")] == ["base", "round 0", "round 1"]
    with pytest.raises(VideozeroError, match="is not a round reference"):
        select_columns(columns, "round:x", "r")
    with pytest.raises(VideozeroError, match=r"its checkpoints: base, round 0, round 1"):
        select_columns(columns, "warmup", "r")


def test_videozero_eval_refuses_bad_input_in_one_sentence(
    rounds_store: dict, asl_build, tmp_path: Path
) -> None:
    db = ("--db", rounds_store["url"], "--workdir", str(tmp_path))
    assert_one_sentence_error(
        videozero("eval", "--model", "round:7", *db), "no solver checkpoint for 'round:7'"
    )
    missing = tmp_path / "missing.jsonl"
    assert_one_sentence_error(
        videozero(
            "eval", "--model", "base", "--benchmark", "asl_grounding", "--annotations", str(missing), *db
        ),
        "does not exist",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_sentence_error(
        videozero(
            "eval",
            "--model",
            "base",
            "--no-heldout",
            "--benchmark",
            "asl_grounding",
            "--annotations",
            str(asl_build.items_path),
            "--videos",
            str(empty),
            *db,
        ),
        "has its video in",
    )
    assert_one_sentence_error(
        videozero(
            "eval",
            "--model",
            str(tmp_path / "no-model"),
            "--benchmark",
            "asl_grounding",
            "--annotations",
            str(asl_build.items_path),
            *db,
        ),
        "does not exist",
    )
    assert_one_sentence_error(
        videozero("eval", "--model", "all", "--db", f"sqlite:///{tmp_path / 'none.db'}"), "No store at"
    )


def test_a_model_from_outside_the_run_is_scored_on_its_heldout_questions(
    rounds_store: dict, tmp_path: Path
) -> None:
    """`eval --model DIR --run R` with a directory that is none of R's checkpoints scores it on R's held-out
    questions with R's settings, stores it beside R's checkpoints (never trained from) and shows it."""
    from store.checkpoints import latest_solver
    from videozero.models.tiny_qwen import build_tiny_qwen

    outside = build_tiny_qwen(tmp_path / "outside-model", seed=3)
    before = latest_solver(rounds_store["store"], rounds_store["run_id"], 2)
    proc = videozero(
        "eval", "--model", str(outside), "--run", "two-rounds", "--db", rounds_store["url"],
        "--max-frames", "8", "--short-side", "64", "--max-new-tokens", "24", "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "figure" in line)
    assert "outside-model" in header and "round 1" in header
    with open_store(rounds_store["url"], create=False).session() as s:
        row = s.scalars(select(Checkpoint).where(Checkpoint.stage == "external")).one()
        splits = set(s.scalars(select(Metric.split).where(Metric.checkpoint_id == row.id)))
    assert row.run_id == rounds_store["run_id"] and Path(row.path) == outside.absolute()
    assert splits == {"heldout"}
    assert latest_solver(rounds_store["store"], rounds_store["run_id"], 2) == before
