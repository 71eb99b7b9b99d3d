"""A store for the browser's tests: a generated clip really mined (segments in the store, frames in the
cache), and a run whose questions, rollouts and figures are written with known values, so a page can be
checked against them: where the evidence is, where each mode's rollout put its span, which figure each
checkpoint scored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from store import Attempt, Checkpoint, Metric, Question, Round, Run, RunVideo, Store, Video
from store.tables import Preference
from store.videos import video_segments
from videozero.stages.mine import mine_videos
from videozero.video.decode import MINING_SAMPLING
from videozero.video.samples import generated_specs
from videozero.video.synthetic import write_clip

CLIP = "demo_3shots.mp4"
EVIDENCE = (2.0, 4.0)
# mode -> (sample index, span, answer, correct): the known question's rollouts, one checkpoint
ROLLOUTS = {
    "full": [(0, (2.1, 3.9), "A", True), (1, (0.5, 1.5), "B", False)],
    "blind": [(0, (5.0, 6.0), "B", False)],
    "masked": [(0, (1.0, 2.5), "B", False)],
    "key_only": [(0, (2.0, 4.2), "A", True)],
    "random_span": [(0, (6.5, 7.5), "B", False)],
}
CHOSEN = "<think></think><evidence>[2.0, 4.0]</evidence><answer>A</answer>"
REJECTED = "<think></think><evidence>[6.0, 8.0]</evidence><answer>A</answer>"  # a stored grounding pair
RAW_OUTPUT = "<think>the <b>red</b> square</think><evidence>[2.1, 3.9]</evidence><answer>A</answer>"
HOSTILE_TEXT = "When does <script>alert('x')</script> '; DROP TABLE questions; -- happen?"
FAMILY_ACCURACY = {
    "warmup": {"grounding": 0.25, "ordering": 0.5},
    "round 0": {"grounding": 0.75, "ordering": 0.5},
}


@dataclass(frozen=True)
class BrowseStore:
    url: str
    workdir: Path
    run_id: int
    run_name: str
    video_id: int
    video_path: Path
    duration: float
    question_id: int
    hostile_id: int
    attempt_id: int  # the full-mode sample 0 attempt (RAW_OUTPUT)
    broken_video_id: int  # a stored video whose file is not a video


def build(store: Store, url: str, workdir: Path) -> BrowseStore:
    """Mine the clip into `store` (frames under `<workdir>/cache`) and write the run around it."""
    clip = write_clip(generated_specs()[CLIP], workdir / "clips" / CLIP)
    summary = mine_videos(store, [clip.path], MINING_SAMPLING, cache_dir=workdir / "cache")
    video_id = summary.results[0].video_id
    assert video_id is not None, summary.results
    broken = workdir / "clips" / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with store.write() as s:
        broken_row = Video(path=str(broken), status="error", error="not a video")
        s.add(broken_row)
        s.flush()
        run = Run(
            name="browse-demo",
            config={"workdir": str(workdir), "learner": {"model": "nano"}},
            status="finished",
        )
        s.add(run)
        s.flush()
        s.add(RunVideo(run_id=run.id, video_id=video_id, split="train"))
        rnd = Round(
            run_id=run.id,
            round_index=0,
            stages={
                "question": {"status": "done", "seconds": 12.5, "proposed": 3, "accepted": 1},
                "solver": {"status": "done", "seconds": 30.25, "steps": 4},
                "eval": {"status": "done", "seconds": 8.0},
            },
            curriculum={
                "families": {
                    "grounding": {"level": 1, "weight": 0.6, "reason": "level raised: accuracy 0.80"}
                },
                "measured": {"grounding": {"accuracy": 0.8, "agreement": 0.7, "n": 5}},
            },
        )
        s.add(rnd)
        s.flush()
        ckpts = {
            "base": Checkpoint(run_id=run.id, role="solver", stage="base", path=str(workdir / "models/nano"), base_model="nano"),
            "warmup": Checkpoint(run_id=run.id, role="solver", stage="warmup", path=str(workdir / "models/nano-warmup"), base_model="nano"),
            "round 0": Checkpoint(run_id=run.id, round_id=rnd.id, role="solver", stage="grpo", path=str(workdir / "runs/browse-demo/round-0/solver"), base_model="nano"),
        }  # fmt: skip
        s.add_all(ckpts.values())
        s.flush()
        known = Question(
            run_id=run.id, round_id=rnd.id, video_id=video_id, split="train", family="grounding", level=1,
            writer="template", text="When is the red square on screen?",
            options=["from 2.0 s to 4.0 s", "from 5.0 s to 6.0 s"], answer="A", evidence=[list(EVIDENCE)],
            spec={"query": [{"label": "Query", "times": [3.0]}]}, status="accepted", r_learn=0.5, r_dep=0.75,
            r_evid=0.25, r_q=1.5, agreement=0.5, consensus_answer="A", consensus_evidence=[[2.1, 3.9]],
            verification={"p": 0.5, "necessity": 0.25},
        )  # fmt: skip
        hostile = Question(
            run_id=run.id, round_id=rnd.id, video_id=video_id, split="train", family="ordering", level=0,
            writer="model", text=HOSTILE_TEXT, options=None, answer="1,2", evidence=[[0.0, 1.0]],
            status="rejected", reject_reason="unanswerable", consensus_answer="<i>2,1</i>",
            consensus_evidence=[["x", 1], [2.0, 3.0, 4.0], "ab", [1.0, 2.0]],  # as a model might write it
            verification={"note": "<b>bold</b>", "parts": [1, 2], "p": 0.5},
        )  # fmt: skip
        heldout = [
            Question(
                run_id=run.id, video_id=video_id, split="heldout", family=family, level=0, writer="template",
                text=f"held-out {family} {i}", options=["from 0.0 s to 1.0 s", "from 2.0 s to 4.0 s"],
                answer="AB"[i % 2], evidence=[[0.0, 1.0] if i % 2 == 0 else [2.0, 4.0]], status="accepted",
            )
            for family in ("grounding", "ordering")
            for i in range(4)
        ]  # fmt: skip
        s.add_all([known, hostile, *heldout])
        s.flush()
        first = None
        for mode, samples in ROLLOUTS.items():
            for index, span, answer, correct in samples:
                a = Attempt(
                    question_id=known.id, checkpoint_id=ckpts["warmup"].id, mode=mode, sample_index=index,
                    raw_output=RAW_OUTPUT if (mode, index) == ("full", 0) else f"<answer>{answer}</answer>",
                    parsed_answer=answer, parsed_spans=[list(span)], format_ok=True, correct=correct,
                    iou=0.5, reward=1.0 if correct else 0.0,
                )  # fmt: skip
                s.add(a)
                s.flush()
                first = first or a.id
        s.add(
            Preference(
                run_id=run.id, round_id=rnd.id, question_id=known.id, factor="grounding", source="shift",
                chosen=CHOSEN, rejected=REJECTED, rejected_answer="A", rejected_evidence=[[6.0, 8.0]],
            )
        )  # fmt: skip
        for label in ("warmup", "round 0"):
            for q in heldout:
                right = FAMILY_ACCURACY[label][q.family] * 4 > int(q.text.rsplit(" ", 1)[1])
                s.add(
                    Attempt(
                        question_id=q.id, checkpoint_id=ckpts[label].id, mode="full", sample_index=0,
                        raw_output="", parsed_answer=q.answer if right else "Z", parsed_spans=q.evidence,
                        format_ok=True, correct=right, iou=1.0, reward=1.0 if right else 0.0,
                    )
                )  # fmt: skip
            values = {f"{f}/accuracy": v for f, v in FAMILY_ACCURACY[label].items()}
            values |= {f"{f}/n": 4.0 for f in FAMILY_ACCURACY[label]}
            values |= {"accuracy": sum(FAMILY_ACCURACY[label].values()) / 2, "n": 8.0, "mIoU": 0.5}
            for name, value in values.items():
                s.add(Metric(run_id=run.id, round_id=rnd.id if label != "warmup" else None,
                             checkpoint_id=ckpts[label].id, name=name, value=value, split="heldout"))  # fmt: skip
        out = BrowseStore(
            url=url, workdir=workdir, run_id=run.id, run_name=run.name, video_id=video_id, video_path=clip.path,
            duration=float(clip.duration_s), question_id=known.id, hostile_id=hostile.id, attempt_id=int(first), broken_video_id=broken_row.id,
        )  # fmt: skip
    with store.session() as s:
        assert video_segments(s, video_id), "the clip was mined into no segment"
    return out
