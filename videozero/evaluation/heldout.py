"""Held-out evaluation of a solver checkpoint, and the paper's dependency diagnostics, from the store.

- `evaluate_heldout`: one greedy answer per held-out question of a run (questions with split 'heldout',
  from videos never used for training), stored as `attempts` of the checkpoint (mode full; a question
  already answered by that checkpoint is not asked again), then accuracy, mean temporal IoU, R1@0.3/0.5/0.7
  and format rate, overall and per family, stored as `metrics` (split 'heldout').
- `probe_round` / `diagnostics`: the round's accepted questions answered with the whole video, blind,
  with the evidence frames blanked, with only the evidence frames, and with only a random span of the
  evidence's length; from those attempts, video dependency (full - blind), key necessity
  (full - masked) and key specificity (key_only - random_span), each over the questions answered in both
  of its modes, stored as `metrics` (split 'diagnostics').
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.metrics import write_metrics
from store.tables import ATTEMPT_MODES, Attempt, Checkpoint, Question, Video
from videozero.answer_format import parse_answer
from videozero.errors import VideozeroError
from videozero.evaluation.baselines import (
    PairedChange,
    ScoredTruth,
    constant_baselines,
    paired_changes,
)
from videozero.evaluation.metrics import (
    R1_THRESHOLDS,
    format_rate,
    key_necessity,
    key_specificity,
    mean_iou,
    recall_at_thresholds,
    video_dependency,
)
from videozero.evaluation.runner import EvalConfig
from videozero.models.engines.base import GenerationEngine
from videozero.models.prompt import Request, VideoInput
from videozero.question_prompt import answer_kind, question_prompt
from videozero.questioner.candidate import question_request
from videozero.rewards import RewardWeights, Span, answer_accuracy, solver_reward, temporal_iou
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import MINING_SAMPLING
from videozero.video.probes import mode_video

HELDOUT_SPLIT = "heldout"
DIAGNOSTICS_SPLIT = "diagnostics"
DIAGNOSTIC_PAIRS = {
    "video_dependency": ("full", "blind", video_dependency),
    "key_necessity": ("full", "masked", key_necessity),
    "key_specificity": ("key_only", "random_span", key_specificity),
}


@dataclass(frozen=True)
class StoredQuestion:
    """A question row with what answering it needs: its video's path, answer kind and evidence spans."""

    id: int
    family: str
    text: str
    options: tuple[str, ...] | None
    answer: str
    evidence: tuple[Span, ...]
    spec: dict[str, Any]
    video_path: str
    duration: float = 0.0

    @property
    def kind(self) -> str:
        return answer_kind(self.options, self.spec)

    @property
    def prompt(self) -> str:
        return question_prompt(self.text, self.options, self.spec)


def _spans(value: Any) -> tuple[Span, ...]:
    """Spans from a JSON column; anything that is not a list of [start, end] numbers is dropped."""
    out = []
    for item in value or []:
        try:
            s, e = float(item[0]), float(item[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if math.isfinite(s) and math.isfinite(e) and e > s:
            out.append((s, e))
    return tuple(out)


def stored_questions(
    session: Session,
    run_id: int,
    split: str | None = None,
    round_id: int | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[StoredQuestion]:
    """Questions of a run (oldest first) filtered by split, round and status, with their video paths."""
    stmt = (
        select(Question, Video.path, Video.duration_s)
        .join(Video, Video.id == Question.video_id)
        .where(Question.run_id == run_id)
        .order_by(Question.id)
    )
    if split is not None:
        stmt = stmt.where(Question.split == split)
    if round_id is not None:
        stmt = stmt.where(Question.round_id == round_id)
    if status is not None:
        stmt = stmt.where(Question.status == status)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        StoredQuestion(
            id=q.id,
            family=q.family,
            text=q.text,
            options=tuple(str(o) for o in q.options) if q.options else None,
            answer=q.answer,
            evidence=_spans(q.evidence),
            spec=dict(q.spec or {}),
            video_path=path,
            duration=float(duration or 0.0),
        )
        for q, path, duration in session.execute(stmt)
    ]


# --- input modes ---------------------------------------------------------------------------------------


# --- scoring into attempts -----------------------------------------------------------------------------


def _answered(session: Session, checkpoint_id: int, question_ids: Sequence[int]) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for i in range(0, len(question_ids), 500):
        rows = session.execute(
            select(Attempt.question_id, Attempt.mode).where(
                Attempt.checkpoint_id == checkpoint_id,
                Attempt.sample_index == 0,
                Attempt.question_id.in_(question_ids[i : i + 500]),
            )
        )
        found.update((int(q), str(m)) for q, m in rows)
    return found


def score_questions(
    engine: GenerationEngine,
    store: Any,
    checkpoint_id: int,
    questions: Sequence[StoredQuestion],
    modes: Sequence[str] = ("full",),
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Greedy answers of the checkpoint to each question in each mode, stored as attempts (sample 0).

    Pairs already answered by this checkpoint are skipped; each batch is committed on its own, so an
    interrupted evaluation resumes where it stopped. Returns how many attempts were added.
    """
    config = config or EvalConfig()
    weights = RewardWeights()
    with store.session() as session:
        done = _answered(session, checkpoint_id, [q.id for q in questions])
    todo = [(q, m) for q in questions for m in modes if (q.id, m) not in done and _askable(q, m)]
    clips: dict[str, Any] = {}
    for start in range(0, len(todo), config.batch_size):
        chunk = todo[start : start + config.batch_size]
        requests, durations = [], []
        for q, mode in chunk:
            if q.video_path not in clips:
                clips = {q.video_path: load_clip(q.video_path, config.sampling, cache)} | (
                    clips if len(clips) < 16 else {}
                )
            clip = clips[q.video_path]
            video = VideoInput.from_clip(clip)
            shown = mode_video(video, q.evidence, mode, clip.duration_s, seed=q.id)
            if q.spec.get("query"):  # query images are cut from the frames the question was mined on
                key = f"{q.video_path}#dense"
                if key not in clips:
                    clips[key] = load_clip(q.video_path, MINING_SAMPLING, cache)
                requests.append(question_request(q.prompt, q.spec, VideoInput.from_clip(clips[key]), shown))
            else:
                requests.append(Request(q.prompt, shown))
            durations.append(clip.duration_s)
        samples = engine.generate(requests, config.greedy)
        rows = []
        for (q, mode), duration, outs in zip(chunk, durations, samples, strict=True):
            text = outs[0].text
            parsed = parse_answer(text, duration)
            reward = solver_reward(
                parsed.format_ok, parsed.answer, parsed.spans, q.answer, q.evidence, q.kind, weights, duration
            )
            rows.append(
                Attempt(
                    question_id=q.id,
                    checkpoint_id=checkpoint_id,
                    mode=mode,
                    sample_index=0,
                    raw_output=text,
                    parsed_answer=parsed.answer,
                    parsed_spans=[list(s) for s in parsed.spans] or None,
                    format_ok=parsed.format_ok,
                    correct=reward.accuracy >= 1.0,
                    iou=reward.alignment,
                    reward=reward.total,
                )
            )
        with store.write() as session:
            session.add_all(rows)
        if progress is not None:
            progress(start + len(chunk), len(todo))
    return len(todo)


def _askable(question: StoredQuestion, mode: str) -> bool:
    return mode in ("full", "blind") or bool(question.evidence)


# --- figures -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnsweredQuestion:
    """One stored greedy answer and the question's truth: what the held-out figures are computed from."""

    family: str
    kind: str
    answer: str
    evidence: tuple[Span, ...]
    parsed_answer: str | None
    parsed_spans: tuple[Span, ...]
    format_ok: bool


def heldout_metrics(answers: Iterable[AnsweredQuestion]) -> dict[str, float]:
    """Accuracy, mean temporal IoU, R1@0.3/0.5/0.7, format rate and n, overall and as `<family>/<name>`.

    IoU is that of the predicted spans with the evidence, whether or not the answer was right (the
    training reward gates it by correctness; an evaluation of grounding does not). Questions without
    evidence count for accuracy and format only.

    >>> a = AnsweredQuestion("when", "option", "B", ((2.0, 4.0),), "B", ((2.0, 4.0),), True)
    >>> b = AnsweredQuestion("when", "option", "C", ((0.0, 2.0),), "A", ((1.0, 3.0),), True)
    >>> m = heldout_metrics([a, b])
    >>> m["accuracy"], round(m["mIoU"], 4), m["R1@0.3"], m["R1@0.5"], m["when/n"]
    (0.5, 0.6667, 1.0, 0.5, 2.0)
    """
    groups: dict[str, list[AnsweredQuestion]] = defaultdict(list)
    for a in answers:
        groups[""].append(a)
        groups[f"{a.family}/"].append(a)
    out: dict[str, float] = {}
    for prefix in sorted(groups):
        group = groups[prefix]
        accs = [answer_accuracy(a.parsed_answer, a.answer, a.kind) for a in group]
        ious = [temporal_iou(a.parsed_spans, a.evidence) for a in group if a.evidence]
        figures = {"accuracy": sum(accs) / len(accs), "format_rate": format_rate(a.format_ok for a in group)}
        if ious:
            figures |= {"mIoU": mean_iou(ious), **recall_at_thresholds(ious, R1_THRESHOLDS)}
        figures["n"] = float(len(group))
        out |= {f"{prefix}{k}": v for k, v in figures.items()}
    return out


def _greedy_answers(session: Session, checkpoint_id: int, ids: Sequence[int], mode: str):
    """(question id, parsed answer, parsed spans, format ok) of the checkpoint's stored greedy answers."""
    for i in range(0, len(ids), 500):
        yield from session.execute(
            select(Attempt.question_id, Attempt.parsed_answer, Attempt.parsed_spans, Attempt.format_ok).where(
                Attempt.checkpoint_id == checkpoint_id,
                Attempt.mode == mode,
                Attempt.sample_index == 0,
                Attempt.question_id.in_(ids[i : i + 500]),
            )
        )


def answered_questions(
    session: Session, checkpoint_id: int, questions: Sequence[StoredQuestion], mode: str = "full"
) -> list[AnsweredQuestion]:
    """The checkpoint's stored greedy answers (sample 0) to `questions` in `mode`."""
    by_id = {q.id: q for q in questions}
    out = []
    for qid, answer, spans, ok in _greedy_answers(session, checkpoint_id, list(by_id), mode):
        q = by_id[qid]
        out.append(AnsweredQuestion(q.family, q.kind, q.answer, q.evidence, answer, _spans(spans), bool(ok)))
    return out


def question_scores(
    session: Session, checkpoint_id: int, questions: Sequence[StoredQuestion], mode: str = "full"
) -> dict[int, tuple[float, float | None]]:
    """Each answered question's (accuracy, IoU with its evidence or None without evidence) for the
    checkpoint's stored greedy answers: what paired changes are computed from."""
    by_id = {q.id: q for q in questions}
    out: dict[int, tuple[float, float | None]] = {}
    for qid, answer, spans, _ in _greedy_answers(session, checkpoint_id, list(by_id), mode):
        q = by_id[qid]
        iou = temporal_iou(_spans(spans), q.evidence) if q.evidence else None
        out[qid] = (answer_accuracy(answer, q.answer, q.kind), iou)
    return out


def heldout_truths(questions: Iterable[StoredQuestion]) -> list[ScoredTruth]:
    """The held-out questions as the constant baselines take them."""
    return [ScoredTruth(q.id, q.family, q.kind, q.answer, q.evidence, q.duration) for q in questions]


@dataclass
class HeldoutComparison:
    """The run's held-out set read against its constant baselines and a reference checkpoint: the
    baselines (`constant_accuracy`, `<family>/constant_mIoU`, ...) and, per checkpoint id, the paired
    change of each figure against the reference."""

    reference: int | None
    baselines: dict[str, float]
    changes: dict[int, dict[str, PairedChange]]


def heldout_comparison(
    session: Session,
    run_id: int,
    checkpoint_ids: Sequence[int],
    reference: int | None,
    split: str = HELDOUT_SPLIT,
) -> HeldoutComparison:
    """Constant baselines of the run's held-out (or validation) questions and every checkpoint's paired
    change against `reference` (the warm-up, usually); empty when the run has no such questions."""
    questions = stored_questions(session, run_id, split=split)
    if not questions:
        return HeldoutComparison(reference, {}, {})
    baselines = constant_baselines(heldout_truths(questions))
    changes: dict[int, dict[str, PairedChange]] = {}
    if reference is not None:
        families = {q.id: q.family for q in questions}
        ref = question_scores(session, reference, questions)
        for cid in checkpoint_ids:
            if cid != reference and ref:
                found = paired_changes(families, question_scores(session, cid, questions), ref)
                if found:
                    changes[cid] = found
    return HeldoutComparison(reference, baselines, changes)


def checkpoint_row(session: Session, checkpoint_id: int) -> Checkpoint:
    row = session.get(Checkpoint, checkpoint_id)
    if row is None:
        raise VideozeroError(
            f"checkpoint {checkpoint_id} is not in the store: list them with `videozero eval --model all`."
        )
    return row


def evaluate_heldout(
    engine: GenerationEngine,
    store: Any,
    run_id: int,
    checkpoint_id: int,
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    split: str = HELDOUT_SPLIT,
) -> dict[str, float]:
    """Score the checkpoint on the run's fixed questions of `split` (held-out, or validation) and store
    the figures under that split; {} without any."""
    config = config or EvalConfig()
    with store.session() as session:
        round_id = checkpoint_row(session, checkpoint_id).round_id
        questions = stored_questions(session, run_id, split=split, limit=config.limit)
    if not questions:
        return {}
    score_questions(engine, store, checkpoint_id, questions, ("full",), config, cache, progress)
    with store.write() as session:
        figures = heldout_metrics(answered_questions(session, checkpoint_id, questions))
        write_metrics(session, run_id, round_id, checkpoint_id, split, figures, whole_split=True)
    return figures


# --- the paper's diagnostics ---------------------------------------------------------------------------


def mode_accuracies(rows: Iterable[tuple[int, str, bool | None]]) -> dict[str, dict[int, float]]:
    """Per mode, each question's accuracy (mean over its scored attempts) from (question, mode, correct).

    >>> mode_accuracies([(1, "full", True), (1, "full", False), (2, "blind", None)])
    {'full': {1: 0.5}}
    """
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for qid, mode, correct in rows:
        if correct is not None:
            sums[mode][qid].append(1.0 if correct else 0.0)
    return {mode: {q: sum(v) / len(v) for q, v in per.items()} for mode, per in sums.items()}


def paired_diagnostics(acc: dict[str, dict[int, float]]) -> dict[str, float]:
    """The three diagnostics, each over the questions answered in both of its modes, with the accuracies
    they come from (`accuracy_<mode>`, over all questions answered in that mode) and how many questions
    each pair covers (`<diagnostic>_n`). A diagnostic without common questions is left out.

    >>> acc = {"full": {1: 1.0, 2: 1.0, 3: 0.0}, "blind": {1: 1.0, 2: 0.0}, "masked": {1: 0.0, 2: 0.0, 3: 0.0}}
    >>> d = paired_diagnostics(acc)
    >>> d["video_dependency"], d["video_dependency_n"], round(d["key_necessity"], 4), "key_specificity" in d
    (0.5, 2.0, 0.6667, False)
    """
    out = {f"accuracy_{mode}": sum(v.values()) / len(v) for mode, v in sorted(acc.items()) if v}
    for name, (a, b, diff) in DIAGNOSTIC_PAIRS.items():
        common = sorted(set(acc.get(a, {})) & set(acc.get(b, {})))
        if not common:
            continue
        mean_a = sum(acc[a][q] for q in common) / len(common)
        mean_b = sum(acc[b][q] for q in common) / len(common)
        out[name] = diff(mean_a, mean_b)
        out[f"{name}_n"] = float(len(common))
    return out


def diagnostics(
    session: Session, run_id: int, round_id: int, checkpoint_id: int | None = None
) -> dict[str, float]:
    """Video dependency, key necessity and key specificity of the round's accepted questions, from their
    stored attempts by mode (of one checkpoint, or of all that answered them)."""
    stmt = (
        select(Attempt.question_id, Attempt.mode, Attempt.correct)
        .join(Question, Question.id == Attempt.question_id)
        .where(Question.run_id == run_id, Question.round_id == round_id, Question.status == "accepted")
    )
    if checkpoint_id is not None:
        stmt = stmt.where(Attempt.checkpoint_id == checkpoint_id)
    return paired_diagnostics(mode_accuracies(session.execute(stmt)))


def probe_round(
    engine: GenerationEngine,
    store: Any,
    run_id: int,
    round_id: int,
    checkpoint_id: int,
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Answer the round's accepted questions in every mode with the checkpoint, store the diagnostics
    (split 'diagnostics'); {} when the round has no accepted questions."""
    config = config or EvalConfig()
    with store.session() as session:
        questions = stored_questions(
            session, run_id, round_id=round_id, status="accepted", limit=config.limit
        )
    if not questions:
        return {}
    score_questions(engine, store, checkpoint_id, questions, ATTEMPT_MODES, config, cache, progress)
    with store.write() as session:
        figures = diagnostics(session, run_id, round_id, checkpoint_id)
        write_metrics(session, run_id, round_id, checkpoint_id, DIAGNOSTICS_SPLIT, figures, whole_split=True)
    return figures
