"""What a run stored, without ids, paths or times: its questions with their verdicts, and its metrics. Two
runs of the same seed, one killed and resumed and one not, should have the same fingerprint.

`python -m tests.store_fingerprint URL_A URL_B` prints where two stores differ."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import select

from store import open_store
from store.tables import Checkpoint, Metric, Question, Round, Video


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 5)


def fingerprint(db: str) -> dict[str, list[tuple]]:
    store = open_store(db, create=False)
    with store.session() as s:
        rounds = dict(s.execute(select(Round.id, Round.round_index)).all())
        videos = {i: Path(p).name for i, p in s.execute(select(Video.id, Video.path)).all()}
        stages = {c.id: (c.role, c.stage, rounds.get(c.round_id)) for c in s.scalars(select(Checkpoint))}
        questions = sorted(  # by repr: rows hold None beside numbers
            (
                (rounds.get(q.round_id), q.split, videos[q.video_id], q.writer, q.family, q.level, q.text,
                 q.answer, q.status, q.reject_reason, _r(q.r_learn), _r(q.r_dep), _r(q.r_evid),
                 _r(q.agreement), q.consensus_answer)
                for q in s.scalars(select(Question))
            ),
            key=repr,
        )  # fmt: skip
        metrics = sorted(
            ((rounds.get(m.round_id), stages.get(m.checkpoint_id), m.split, m.name, _r(m.value))
             for m in s.scalars(select(Metric))),
            key=repr,
        )  # fmt: skip
    store.dispose()
    return {"questions": questions, "metrics": metrics}


def differences(a: dict[str, list[tuple]], b: dict[str, list[tuple]], show: int = 5) -> list[str]:
    out = []
    for key in a:
        only_a = [x for x in a[key] if x not in set(b[key])]
        only_b = [x for x in b[key] if x not in set(a[key])]
        if only_a or only_b:
            out.append(
                f"{key}: {len(a[key])} vs {len(b[key])}; {len(only_a)} only in the first, e.g. {only_a[:show]}"
            )
            out.append(f"{key}: {len(only_b)} only in the second, e.g. {only_b[:show]}")
    return out


if __name__ == "__main__":
    diff = differences(fingerprint(sys.argv[1]), fingerprint(sys.argv[2]))
    print("\n".join(diff) or "the same questions, verdicts and metrics")
