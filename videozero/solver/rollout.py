"""Solver rollouts: N samples per question through an engine, parsed, scored, voted on.

One `SolverQuestion` is what every stage needs of a question: the request (question text with its clip),
the answer and evidence known by construction (None for model-written questions without one), the
answer kind, and who wrote it. `rollout_questions` samples N answers per question, parses them
defensively, scores them with the reward contract (`scoring.score_completion`) against the training target, and derives the
pseudo-label (`pseudo_label.majority_vote`). `attempt_rows` turns the result into rows for
`store.tables.Attempt`; `consensus_agreement` measures how often the majority vote agrees with the
constructed answer (the round table reads the same figure from the stored questions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from videozero.answer_format import ANSWER_END, ParsedAnswer, parse_answer
from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.prompt import Request
from videozero.rewards import RewardWeights, SolverReward, Span, canonical_answer
from videozero.scoring import Label, SolverScorer, solver_scorer, training_label
from videozero.solver.pseudo_label import PseudoLabel, Rollout, in_agreement_band, majority_vote
from videozero.video.inputs import VideoInput
from videozero.zoom_config import ZoomToolSettings

if TYPE_CHECKING:
    from videozero.solver.zoom_tool import Trajectory


@dataclass(frozen=True)
class SolverQuestion:
    """A question as the solver stages need it. `answer`/`evidence` are the constructed ones (if known)."""

    request: Request
    kind: str
    answer: str | None = None
    evidence: tuple[Span, ...] = ()
    duration: float | None = None
    writer: str = "template"
    family: str = ""
    question_id: int | None = None
    rationale: str = ""  # the <think> text known by construction (template questions), else empty
    # denser frames a zoom is cut from (the mined ones); None: zoom into the frames the request shows
    zoom_source: VideoInput | None = None


class RolloutConfig(BaseModel):
    """How a question is rolled out and which label its rollouts are scored against."""

    n: int = Field(8, ge=1, description="rollouts per question")
    temperature: float = Field(1.0, ge=0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(48, ge=8, description="enough for the answer format with a short think")
    seed: int | None = Field(None, description="sampling seed (None: not reseeded)")
    label_mode: str = Field(
        "auto",
        description="constructed: answers known by construction; consensus: majority vote and consensus "
        "span; auto: constructed for template questions, consensus for model-written ones",
    )
    band_low: float = Field(0.3, ge=0, le=1, description="agreement band: keep questions with c >= this")
    band_high: float = Field(0.8, ge=0, le=1, description="agreement band: keep questions with c <= this")
    weights: RewardWeights = Field(default_factory=RewardWeights)


@dataclass
class ScoredSample:
    """One rollout: the engine's sample, what the parser read, and its reward parts."""

    sample: Sample
    parsed: ParsedAnswer
    reward: SolverReward
    trajectory: Trajectory | None = None  # the turns of a multi-turn (zoom tool) answer; `sample` is its last

    def rows(self, request: Request) -> list[tuple[Request, list[int]]]:
        """(prompt, completion tokens) this rollout trains as: one row, or one per turn of a trajectory."""
        if self.trajectory is not None:
            return self.trajectory.rows()
        return [(request, list(self.sample.token_ids))]

    @property
    def token_count(self) -> int:
        """Tokens the model wrote for this rollout (every turn of a trajectory)."""
        if self.trajectory is not None:
            return sum(len(s.token_ids) for s in self.trajectory.segments)
        return len(self.sample.token_ids)


@dataclass
class QuestionRollouts:
    """The N scored rollouts of one question, its pseudo-label and the target they were scored against."""

    question: SolverQuestion
    samples: list[ScoredSample]
    label: PseudoLabel
    target_answer: str | None
    target_spans: tuple[Span, ...]
    target_source: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rewards(self) -> list[float]:
        return [s.reward.total for s in self.samples]

    @property
    def in_band(self) -> bool:
        return self.extra.get("in_band", False)


def training_target(
    question: SolverQuestion, label: PseudoLabel | None, label_mode: str = "auto"
) -> tuple[str | None, tuple[Span, ...], str]:
    """(answer, spans, source) a question trains on: `scoring.training_label` of its constructed answer
    and its rollouts' pseudo-label.

    >>> q = SolverQuestion(Request("q"), "option", answer="B", evidence=((1.0, 2.0),), writer="model")
    >>> label = PseudoLabel("A", 0.75, ((0.5, 1.0),), {"A": 3, "B": 1}, 4)
    >>> training_target(q, label, "auto"), training_target(q, label, "constructed")[2]
    (('A', ((0.5, 1.0),), 'consensus'), 'constructed')
    """
    consensus = label.answer if label is not None else None
    spans = label.spans if label is not None else None
    return training_label(question.answer, question.evidence, consensus, spans, question.writer, label_mode)


def score_samples(
    samples: Sequence[Sample],
    target_answer: str | None,
    target_spans: Sequence[Span],
    kind: str,
    weights: RewardWeights,
    duration: float | None = None,
    scorer: SolverScorer | None = None,
) -> list[ScoredSample]:
    """Parse and score each sample against the target through the reward contract (`scorer`, default
    `scoring.score_completion` at `weights`); with no target, only the format term counts."""
    scorer = scorer or solver_scorer(weights)
    label = Label(target_answer, tuple(target_spans), kind, duration)
    out = []
    for sample in samples:
        scored = scorer(sample.text, label)
        out.append(ScoredSample(sample, scored.parsed, scored.reward))
    return out


def rollout_questions(
    engine: GenerationEngine,
    questions: Sequence[SolverQuestion],
    config: RolloutConfig | None = None,
    scorer: SolverScorer | None = None,
    tool: ZoomToolSettings | None = None,
) -> list[QuestionRollouts]:
    """N rollouts per question, scored by `scorer` (default: `scoring.score_completion` at the config's
    weights) against each question's training target, with pseudo-labels. With `tool`, each rollout is a
    multi-turn answer with the zoom tool (`solver.zoom_tool`), scored on its last turn, less the tool's
    penalty for each refused call."""
    config = config or RolloutConfig()
    scorer = scorer or solver_scorer(config.weights)
    if not questions:
        return []
    params = SamplingParams(
        n=config.n,
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        stop=(ANSWER_END,),
    )
    if tool is None:
        generated = engine.generate([q.request for q in questions], params)
        return score_rollouts(questions, generated, config, scorer)
    from videozero.solver.zoom_tool import run_tool, tool_request

    trajectories = run_tool(
        engine,
        [tool_request(q.request) for q in questions],
        [q.duration or 0.0 for q in questions],
        [_source_of(q) for q in questions],
        params,
        tool,
    )
    results = score_rollouts(questions, [[t.final for t in group] for group in trajectories], config, scorer)
    for result, group in zip(results, trajectories, strict=True):
        for scored, t in zip(result.samples, group, strict=True):
            scored.trajectory = t
            if t.errors:
                scored.reward = replace(scored.reward, total=scored.reward.total - tool.penalty * t.errors)
    return results


def _source_of(question: SolverQuestion):
    """The frames a zoom into `question`'s video is cut from: its dense frames, else those it shows."""
    return lambda: question.zoom_source if question.zoom_source is not None else question.request.video


def score_rollouts(
    questions: Sequence[SolverQuestion],
    generated: Sequence[Sequence[Sample]],
    config: RolloutConfig,
    scorer: SolverScorer,
) -> list[QuestionRollouts]:
    """Each question's sampled answers parsed, voted on and scored against its training target."""
    results = []
    for question, samples in zip(questions, generated, strict=True):
        parsed = [parse_answer(s.text, question.duration) for s in samples]
        label = majority_vote([Rollout(p.answer, p.spans) for p in parsed], question.kind)
        answer, spans, source = training_target(question, label, config.label_mode)
        scored = score_samples(
            samples, answer, spans, question.kind, config.weights, question.duration, scorer
        )
        results.append(
            QuestionRollouts(
                question,
                scored,
                label,
                answer,
                spans,
                source,
                {"in_band": in_agreement_band(label.agreement, config.band_low, config.band_high)},
            )
        )
    return results


def attempt_rows(
    result: QuestionRollouts, question_id: int, checkpoint_id: int, mode: str = "full"
) -> list[dict[str, Any]]:
    """Rows for `store.tables.Attempt` (as `store.bulk.insert_attempts` takes them), one per rollout."""
    rows = []
    for i, s in enumerate(result.samples):
        scored = result.target_answer is not None
        rows.append(
            {
                "question_id": question_id,
                "checkpoint_id": checkpoint_id,
                "mode": mode,
                "sample_index": i,
                "raw_output": s.sample.text,
                "parsed_answer": s.parsed.answer,
                "parsed_spans": [list(span) for span in s.parsed.spans] or None,
                "format_ok": s.parsed.format_ok,
                "correct": (s.reward.accuracy >= 1.0) if scored else None,
                "iou": s.reward.alignment if scored else None,
                "reward": s.reward.total,
                "turns": s.trajectory.record() if s.trajectory is not None else None,
            }
        )
    return rows


@dataclass(frozen=True)
class ConsensusAgreement:
    """How often the majority vote equals the constructed answer, over questions that have both."""

    agree: int
    compared: int

    @property
    def rate(self) -> float | None:
        return self.agree / self.compared if self.compared else None


def consensus_agreement(results: Sequence[QuestionRollouts]) -> ConsensusAgreement:
    """Count questions whose majority answer equals their constructed answer (canonical forms).

    Questions without a constructed answer, or whose rollouts cast no vote, are not compared.
    """
    agree = compared = 0
    for r in results:
        q = r.question
        if q.answer is None or r.label.answer is None:
            continue
        compared += 1
        agree += canonical_answer(r.label.answer, q.kind) == canonical_answer(q.answer, q.kind)
    return ConsensusAgreement(agree, compared)
