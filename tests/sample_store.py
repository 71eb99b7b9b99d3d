"""A small, fully populated store for query and CLI tests: every table has rows."""

from __future__ import annotations

from store import Attempt, Checkpoint, Metric, Question, Round, Run, RunVideo, Segment, Store, Video

HOSTILE_TEXTS = [
    "What happens at 50% of the video?",
    "Is the 'red' square left of the blue one?",
    "Order the clips; then say DROP TABLE questions; --",
    "When does the dog_bark happen?",
    "Robert'); DELETE FROM questions WHERE ('1'='1",
]


def populate(store: Store) -> dict[str, int]:
    """Write one run with two rounds and a few questions of several families; return some ids."""
    with store.write() as s:
        run = Run(name="demo", config={"rounds": 2, "model": "nano"})
        s.add(run)
        s.flush()
        rounds = [Round(run_id=run.id, round_index=i, stages={"mine": "done"}) for i in range(2)]
        videos = [
            Video(
                path=f"/data/clip_{i}.mp4",
                content_hash=f"{i:064x}",
                duration_s=10.0 + i,
                fps=25.0,
                frame_count=250,
                width=320,
                height=240,
                size_bytes=1000,
                status="ok",
            )
            for i in range(3)
        ]
        s.add_all(rounds + videos)
        s.flush()
        s.add(RunVideo(run_id=run.id, video_id=videos[2].id, split="heldout"))
        s.add(
            Segment(
                video_id=videos[0].id,
                sampling="fps2",
                level="shot",
                start_s=0.0,
                end_s=4.0,
                saliency=0.7,
                saliency_parts={"motion": 0.5},
                labels=["dog"],
            )
        )
        ckpt = Checkpoint(
            run_id=run.id, round_id=None, role="solver", stage="base", path="nano", base_model="nano"
        )
        s.add(ckpt)
        s.flush()
        questions = []
        families = ["grounding", "ordering", "arrow_of_time", "grounding", "counting"]
        for i, text in enumerate(HOSTILE_TEXTS):
            q = Question(
                run_id=run.id,
                round_id=rounds[i % 2].id,
                video_id=videos[i % 3].id,
                family=families[i],
                level=i % 3,
                writer="template" if i % 2 == 0 else "model",
                text=text,
                options=["first", "second"] if i % 2 else None,
                answer="A" if i % 2 else "[1.0, 2.0]",
                evidence=[[1.0, 2.0]],
                spec={"k": i},
                status="accepted" if i < 3 else "rejected",
                reject_reason=None if i < 3 else "blind_answerable",
                agreement=0.5,
                r_learn=0.5,
                r_dep=0.25,
                r_evid=0.1,
            )
            questions.append(q)
        s.add_all(questions)
        s.flush()
        for q in questions:
            for mode in ("full", "blind"):
                for k in range(4):
                    s.add(
                        Attempt(
                            question_id=q.id,
                            checkpoint_id=ckpt.id,
                            mode=mode,
                            sample_index=k,
                            raw_output="<answer>A</answer>",
                            parsed_answer="A",
                            parsed_spans=[[1.0, 2.0]],
                            format_ok=True,
                            correct=(k < 3 if mode == "full" else k < 1),
                            iou=0.5,
                            reward=1.0,
                        )
                    )
        s.add(Metric(run_id=run.id, round_id=rounds[0].id, checkpoint_id=ckpt.id, name="accuracy", value=0.5))
        return {"run": run.id, "question": questions[0].id, "checkpoint": ckpt.id}
