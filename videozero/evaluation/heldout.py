"""Held-out evaluation of a solver checkpoint and the paper's dependency diagnostics, as plain functions:
`answer_questions` asks and scores, `heldout_metrics` / `paired_diagnostics` compute the figures. The
evaluation stage (`stages.evaluate`) reads the questions and stored answers and writes attempts and metrics.

- `stages.evaluate.evaluate_heldout`: one greedy answer per held-out question of a run (questions with split 'heldout',
  from videos never used for training), stored as `attempts` of the checkpoint (mode full; a question
  already answered by that checkpoint is not asked again), then accuracy, mean temporal IoU, R1@0.3/0.5/0.7
  and format rate, overall and per family, stored as `metrics` (split 'heldout').
- `stages.evaluate.probe_round` / `diagnostics`: the round's accepted questions answered with the whole video, blind,
  with the evidence frames blanked, with only the evidence frames, and with only a random span of the
  evidence's length; from those attempts, video dependency (full - blind), key necessity
  (full - masked) and key specificity (key_only - random_span), each over the questions answered in both
  of its modes, stored as `metrics` (split 'diagnostics').
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from videozero.evaluation.zoom import zoom_answers
from videozero.models.engines.base import GenerationEngine
from videozero.models.prompt import Request, VideoInput
from videozero.question_prompt import answer_kind, question_prompt
from videozero.questioner.candidate import question_request
from videozero.rewards import RewardWeights, Span, answer_accuracy, temporal_iou
from videozero.scoring import Label, score_completion
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import MINING_SAMPLING
from videozero.video.probes import mode_video
from videozero.video.zoom import DenseSources
from videozero.zoom_config import ZOOM_MODES

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


def stored_question(row: Mapping[str, Any]) -> StoredQuestion:
    """A stored question (a row of `store.attempts.question_rows`) as evaluation asks it."""
    return StoredQuestion(
        id=int(row["id"]),
        family=str(row["family"]),
        text=str(row["text"]),
        options=tuple(str(o) for o in row["options"]) if row.get("options") else None,
        answer=row["answer"],
        evidence=_spans(row.get("evidence")),
        spec=dict(row.get("spec") or {}),
        video_path=str(row["video_path"]),
        duration=float(row.get("duration") or 0.0),
    )


# --- input modes ---------------------------------------------------------------------------------------


# --- scoring into attempts -----------------------------------------------------------------------------


def answer_questions(
    engine: GenerationEngine,
    todo: Sequence[tuple[StoredQuestion, str]],
    config: EvalConfig,
    cache: VideoCache | None,
    keep: Callable[[list[dict[str, Any]]], None],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """One greedy answer of the engine to each (question, mode) of `todo`, scored by the reward contract
    against the question's answer and evidence; each batch's attempt rows (dicts of `Attempt` columns,
    sample 0) go to `keep` as soon as they exist, so a caller that stores them resumes where it stopped."""
    weights = RewardWeights()
    clips: dict[str, Any] = {}
    dense = DenseSources(config.zoom.fps, config.short_side, cache)  # what the zoom modes zoom into
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
            shown = mode_video(video, q.evidence, _shown_mode(mode), clip.duration_s, seed=q.id)
            if q.spec.get("query"):  # query images are cut from the frames the question was mined on
                key = f"{q.video_path}#dense"
                if key not in clips:
                    clips[key] = load_clip(q.video_path, MINING_SAMPLING, cache)
                requests.append(question_request(q.prompt, q.spec, VideoInput.from_clip(clips[key]), shown))
            else:
                requests.append(Request(q.prompt, shown))
            durations.append(clip.duration_s)
        answers = _answers(engine, chunk, requests, durations, config, dense)
        rows = []
        for (q, mode), duration, (text, turns) in zip(chunk, durations, answers, strict=True):
            scored = score_completion(text, Label(q.answer, q.evidence, q.kind, duration), weights)
            parsed, reward = scored.parsed, scored.reward
            rows.append(
                {
                    "question_id": q.id,
                    "mode": mode,
                    "sample_index": 0,
                    "raw_output": text,
                    "parsed_answer": parsed.answer,
                    "parsed_spans": [list(s) for s in parsed.spans] or None,
                    "format_ok": parsed.format_ok,
                    "correct": reward.accuracy >= 1.0,
                    "iou": reward.alignment,
                    "reward": reward.total,
                    "turns": turns,
                }
            )
        keep(rows)
        if progress is not None:
            progress(start + len(chunk), len(todo))


def _shown_mode(mode: str) -> str:
    """The probe mode whose view a mode starts from: the zoom modes start from the whole video."""
    return "full" if mode in ZOOM_MODES else mode


def _answers(
    engine: GenerationEngine,
    chunk: Sequence[tuple[StoredQuestion, str]],
    requests: Sequence[Request],
    durations: Sequence[float],
    config: EvalConfig,
    dense: DenseSources,
) -> list[tuple[str, Any]]:
    """(greedy answer text, zoom record or None) of each request: one pass for the probe modes, the zoom
    mode's answers (`evaluation.zoom`, zooming into `dense`'s frames) for the zoom modes."""
    out: list[tuple[str, Any]] = [("", None)] * len(chunk)
    plain = [i for i, (_, mode) in enumerate(chunk) if mode not in ZOOM_MODES]
    if plain:
        for i, outs in zip(plain, engine.generate([requests[i] for i in plain], config.greedy), strict=True):
            out[i] = (outs[0].text, None)
    for mode in ZOOM_MODES:
        picked = [i for i, (_, m) in enumerate(chunk) if m == mode]
        if not picked:
            continue
        settings = config.zoom.model_copy(update={"mode": mode})
        sources = [dense.of(chunk[i][0].video_path) for i in picked]
        found = zoom_answers(
            engine,
            [requests[i] for i in picked],
            [durations[i] for i in picked],
            [chunk[i][0].kind for i in picked],
            sources,
            settings,
            config.greedy,
        )
        for i, answer in zip(picked, found, strict=True):
            out[i] = answer
    return out


def askable(question: StoredQuestion, mode: str) -> bool:
    """Whether a question can be asked in `mode` (the evidence probe modes need evidence spans)."""
    return mode in ("full", "blind", *ZOOM_MODES) or bool(question.evidence)


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


def zoom_figures(records: Iterable[Any]) -> dict[str, float]:
    """How often answers with zoom zoomed: coarse-to-fine's `zoomed_rate` (the coarse answer was unsure)
    and `zoom_kept_rate` (the zoomed answer was kept), or the tool's `tool_calls` per answer and
    `tool_refused` (calls the tool refused, per answer).

    >>> zoom_figures([{"zoomed": True, "kept": "zoom"}, {"zoomed": False, "kept": "coarse"}])
    {'zoomed_rate': 0.5, 'zoom_kept_rate': 0.5}
    >>> zoom_figures([[{"said": "a", "call": {"segment": [1, 2]}}, {"said": "b"}], [{"said": "c"}]])
    {'tool_calls': 0.5, 'tool_refused': 0.0}
    """
    records = [r for r in records if r is not None]
    if not records:
        return {}
    if isinstance(records[0], dict):
        n = len(records)
        return {
            "zoomed_rate": sum(bool(r.get("zoomed")) for r in records) / n,
            "zoom_kept_rate": sum(r.get("kept") == "zoom" for r in records) / n,
        }
    calls = [t.get("call") for r in records for t in r if isinstance(t, dict) and t.get("call")]
    return {
        "tool_calls": len(calls) / len(records),
        "tool_refused": sum(1 for c in calls if c.get("error")) / len(records),
    }


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


def answered_questions(
    questions: Sequence[StoredQuestion], answers: Iterable[tuple[int, str | None, Any, bool | None]]
) -> list[AnsweredQuestion]:
    """The stored greedy answers `(question id, parsed answer, parsed spans, format ok)` to `questions`."""
    by_id = {q.id: q for q in questions}
    out = []
    for qid, answer, spans, ok in answers:
        q = by_id[qid]
        out.append(AnsweredQuestion(q.family, q.kind, q.answer, q.evidence, answer, _spans(spans), bool(ok)))
    return out


def question_scores(
    questions: Sequence[StoredQuestion], answers: Iterable[tuple[int, str | None, Any, bool | None]]
) -> dict[int, tuple[float, float | None]]:
    """Each answered question's (accuracy, IoU with its evidence or None without evidence) from the
    stored greedy answers: what paired changes are computed from."""
    by_id = {q.id: q for q in questions}
    out: dict[int, tuple[float, float | None]] = {}
    for qid, answer, spans, _ in answers:
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
    questions: Sequence[StoredQuestion],
    scores: Mapping[int, dict[int, tuple[float, float | None]]],
    reference: int | None,
) -> HeldoutComparison:
    """Constant baselines of `questions` and every checkpoint's paired change against `reference` (the
    warm-up, usually), from each checkpoint's `question_scores`; empty without questions."""
    if not questions:
        return HeldoutComparison(reference, {}, {})
    baselines = constant_baselines(heldout_truths(questions))
    changes: dict[int, dict[str, PairedChange]] = {}
    ref = scores.get(reference) if reference is not None else None
    if ref:
        families = {q.id: q.family for q in questions}
        for cid, found_scores in scores.items():
            if cid != reference:
                found = paired_changes(families, found_scores, ref)
                if found:
                    changes[cid] = found
    return HeldoutComparison(reference, baselines, changes)


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
