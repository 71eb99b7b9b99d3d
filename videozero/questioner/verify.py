"""Verification of candidate questions by the frozen solver, and the questioner's reward parts.

Every candidate is rolled out N times with the whole video and fewer times in each probe mode: blind
(question and its query images only), evidence masked (the evidence frames blanked), evidence only,
and a random span of the evidence's length. From those rollouts, all kept as attempts:

- `p`: the fraction of full-video rollouts that match the question's training label (its constructed
  answer for template questions, the majority vote for model-written ones, `rollout.training_target`);
  `r_learn = min(p, 1 - p)`, R-Zero's band reward. For model-written questions p is the agreement c of
  the paper; for template questions it is the solver's success rate on the known answer, which is what
  agreement estimates when the truth is unknown.
- `r_dep = score(full) - score(blind)`; `necessity = score(full) - score(masked)`;
  `specificity = score(evidence only) - score(random span)`; scores are mean answer accuracy against
  the same label.
- `r_evid`: evidence quality in [0, 1]: zero when the spans are degenerate (outside the video, shorter
  than `min_evidence_s`, or covering more than `max_evidence_fraction` of it), else a weighted mean of
  the miner's saliency of the spans and the clamped key necessity.

`judge` turns the figures into a status and a reason: blind-answerable, out of band, or accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from videozero.evidence.views import SegmentView
from videozero.models.engines.base import GenerationEngine
from videozero.models.prompt import VideoInput
from videozero.questioner.candidate import Candidate, question_request
from videozero.questioner.verify_config import VerifyConfig
from videozero.rewards import Span, temporal_iou
from videozero.solver.rollout import QuestionRollouts, RolloutConfig, SolverQuestion, rollout_questions
from videozero.video.probes import PROBE_MODES, mode_video

# Rejection reasons stored in questions.reject_reason.
BLIND_ANSWERABLE = "blind-answerable"
OUT_OF_BAND = "out of band"
DEGENERATE = "degenerate evidence"
DUPLICATE = "duplicate"


def degenerate_reason(spans: Sequence[Span], duration: float, config: VerifyConfig) -> str | None:
    """Why evidence spans cannot anchor a question (None when they can).

    >>> c = VerifyConfig()
    >>> degenerate_reason([(1.0, 2.0)], 10.0, c) is None, degenerate_reason([], 10.0, c)
    (True, 'no evidence span')
    >>> degenerate_reason([(1.0, 1.1)], 10.0, c), degenerate_reason([(0.0, 9.0)], 10.0, c)
    ('evidence shorter than 0.4 s', 'evidence covers more than 50% of the video')
    """
    if not spans:
        return "no evidence span"
    if any(s < -1e-6 or e > duration + 1e-6 or e < s for s, e in spans):
        return "evidence outside the video"
    total = sum(e - s for s, e in spans)
    if total < config.min_evidence_s:
        return f"evidence shorter than {config.min_evidence_s:g} s"
    if duration > 0 and total > config.max_evidence_fraction * duration:
        return f"evidence covers more than {config.max_evidence_fraction:.0%} of the video"
    return None


def span_saliency(spans: Sequence[Span], segments: Sequence[SegmentView]) -> float:
    """The miner's saliency of `spans`: the best saliency x IoU over mined event and shot segments.

    >>> segs = [SegmentView(1, "event", 2.0, 4.0, 0.8), SegmentView(2, "shot", 0.0, 10.0, 0.3)]
    >>> span_saliency([(2.0, 4.0)], segs), round(span_saliency([(3.0, 4.0)], segs), 3)
    (0.8, 0.4)
    """
    best = 0.0
    for seg in segments:
        if seg.level in ("event", "shot") and seg.length > 0:
            best = max(best, seg.saliency * temporal_iou(list(spans), [seg.span]))
    return best


def evidence_reward(
    degenerate: bool, saliency: float, necessity: float | None, config: VerifyConfig
) -> float:
    """r_evid in [0, 1]: 0 for degenerate evidence, else the weighted mean of saliency and necessity.

    >>> evidence_reward(False, 0.6, 0.5, VerifyConfig()), evidence_reward(True, 0.9, 1.0, VerifyConfig())
    (0.55, 0.0)
    >>> evidence_reward(False, 0.6, -0.4, VerifyConfig())
    0.3
    """
    if degenerate:
        return 0.0
    parts = [(config.saliency_weight, min(max(saliency, 0.0), 1.0))]
    if necessity is not None:
        parts.append((config.necessity_weight, min(max(necessity, 0.0), 1.0)))
    total = sum(w for w, _ in parts)
    return round(sum(w * v for w, v in parts) / total, 6) if total else 0.0


def questioner_reward(r_learn: float, r_dep: float, r_evid: float, repetition: float = 0.0) -> float:
    """r_Q = r_learn + r_dep + r_evid - repetition.

    >>> questioner_reward(0.5, 0.25, 0.5, 0.25)
    1.0
    """
    return r_learn + r_dep + r_evid - repetition


def judge(
    p: float, score_full: float, score_blind: float | None, config: VerifyConfig
) -> tuple[str, str | None]:
    """(status, reason) from the verified figures: blind-answerable first, then the agreement band.

    >>> c = VerifyConfig()
    >>> judge(0.5, 0.5, 0.25, c), judge(0.75, 0.75, 1.0, c)[1], judge(1.0, 1.0, 0.0, c)[1]
    (('accepted', None), 'blind-answerable', 'out of band')
    """
    blind_checked = config.use_r_dep and score_blind is not None
    if blind_checked and score_blind >= config.blind_max and score_blind >= score_full:
        return "rejected", BLIND_ANSWERABLE
    if not config.band_low <= p <= config.band_high:
        return "rejected", OUT_OF_BAND
    return "accepted", None


@dataclass
class VerifyItem:
    """A candidate to verify, with what asking it needs: the video as the solver sees it, the dense
    mined frames its query images are cut from, the video's duration and its mined segments."""

    candidate: Candidate
    video: VideoInput
    dense: VideoInput
    duration: float
    segments: Sequence[SegmentView] = ()
    seed: int = 0


@dataclass
class Verdict:
    """What verification found for one candidate; `rollouts` per mode become its attempts."""

    status: str
    reason: str | None
    p: float
    agreement: float
    consensus_answer: str | None
    consensus_spans: tuple[Span, ...]
    scores: dict[str, float]
    r_learn: float
    r_dep: float
    r_evid: float
    necessity: float | None
    specificity: float | None
    saliency: float
    rollouts: dict[str, QuestionRollouts] = field(default_factory=dict)

    def r_q(self, repetition: float = 0.0, use_r_dep: bool = True) -> float:
        """The questioner's reward of this question (r_dep left out when the ablation turns it off)."""
        return questioner_reward(self.r_learn, self.r_dep if use_r_dep else 0.0, self.r_evid, repetition)

    def figures(self) -> dict[str, Any]:
        """The verification figures kept with the question (questions.verification)."""
        return {
            "p": round(self.p, 6),
            "scores": {m: round(v, 6) for m, v in self.scores.items()},
            "necessity": None if self.necessity is None else round(self.necessity, 6),
            "specificity": None if self.specificity is None else round(self.specificity, 6),
            "saliency": round(self.saliency, 6),
        }


def _solver_question(item: VerifyItem, shown: VideoInput | None, answer: str | None, spans) -> SolverQuestion:
    c = item.candidate
    return SolverQuestion(
        request=question_request(c.prompt, c.spec, item.dense, shown),
        kind=c.kind,
        answer=answer,
        evidence=tuple(spans),
        duration=item.duration,
        writer=c.writer,
        family=c.family,
    )


def _score(r: QuestionRollouts) -> float:
    return sum(s.reward.accuracy for s in r.samples) / len(r.samples) if r.samples else 0.0


def verify(
    engine: GenerationEngine, items: Sequence[VerifyItem], config: VerifyConfig | None = None
) -> list[Verdict]:
    """Roll every candidate out in every mode with the solver behind `engine` and judge it."""
    config = config or VerifyConfig()
    if not items:
        return []
    base = dict(
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        label_mode=config.label_mode,
        weights=config.weights,
        band_low=config.band_low,
        band_high=config.band_high,
    )
    full_q = [
        _solver_question(
            it,
            it.video,
            it.candidate.answer if it.candidate.writer == "template" else None,
            it.candidate.evidence,
        )
        for it in items
    ]
    full = rollout_questions(engine, full_q, RolloutConfig(n=config.n_full, seed=config.seed, **base))
    # every probe mode of every candidate in one call, so the engine fills its batches across modes (a
    # mode's few prompts alone would decode in a short batch of their own)
    asked, where = [], []
    for mode in PROBE_MODES:
        for i, (it, r) in enumerate(zip(items, full, strict=True)):
            if r.target_answer is None or (mode != "blind" and not it.candidate.evidence):
                continue
            shown = mode_video(it.video, it.candidate.evidence, mode, it.duration, seed=it.seed)
            asked.append(_as_template(_solver_question(it, shown, r.target_answer, r.target_spans)))
            where.append((mode, i))
    # probe rollouts are scored against the full-video label: a SolverQuestion whose answer is that label
    # is "constructed" from the verifier's point of view
    cfg = RolloutConfig(n=config.n_probe, seed=config.seed * 7 + 1, **{**base, "label_mode": "constructed"})
    probes: dict[str, list[QuestionRollouts | None]] = {m: [None] * len(items) for m in PROBE_MODES}
    for (mode, i), r in zip(where, rollout_questions(engine, asked, cfg), strict=True):
        probes[mode][i] = r
    verdicts = []
    for i, (it, r) in enumerate(zip(items, full, strict=True)):
        rollouts = {"full": r} | {m: probes[m][i] for m in PROBE_MODES if probes[m][i] is not None}
        scores = {m: _score(x) for m, x in rollouts.items()}
        p = scores["full"] if r.target_answer is not None else 0.0
        necessity = scores["full"] - scores["masked"] if "masked" in scores else None
        specificity = (
            scores["key_only"] - scores["random_span"]
            if "key_only" in scores and "random_span" in scores
            else None
        )
        sal = span_saliency(it.candidate.evidence, it.segments)
        degenerate = degenerate_reason(it.candidate.evidence, it.duration, config) is not None
        r_dep = scores["full"] - scores["blind"] if "blind" in scores else 0.0
        if r.target_answer is None:
            status, reason = "rejected", "no answer: no rollout followed the format"
        else:
            status, reason = judge(p, scores["full"], scores.get("blind"), config)
        verdicts.append(
            Verdict(
                status=status,
                reason=reason,
                p=p,
                agreement=r.label.agreement,
                consensus_answer=r.label.answer,
                consensus_spans=tuple(r.label.spans),
                scores=scores,
                r_learn=min(p, 1.0 - p),
                r_dep=r_dep,
                r_evid=evidence_reward(degenerate, sal, necessity, config),
                necessity=necessity,
                specificity=specificity,
                saliency=sal,
                rollouts=rollouts,
            )
        )
    return verdicts


def _as_template(q: SolverQuestion) -> SolverQuestion:
    from dataclasses import replace

    return replace(q, writer="template")
