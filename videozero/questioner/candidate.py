"""A candidate question before and after verification, and the prompt a solver reads for it.

A `Candidate` is what a writer (a template family or the questioner model) proposes: the question text,
its options, the answer and evidence spans it claims, and a `spec` that says how to rebuild what the
solver is shown besides the video. Query media (a query frame, the clips to order, the option frames)
are stored as the true timestamps of sampled frames (`spec["query"]`), never as pixels, so a stored
question is rebuilt from the decoded video (`question_request`) with the same sampling.

`spec["query"]` and the images it names: `video/query_images.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from videozero.models.prompt import Request, VideoInput
from videozero.question_prompt import answer_kind, question_prompt
from videozero.rewards import Span
from videozero.video.query_images import query_images

__all__ = ["Candidate", "query_images", "question_request"]


@dataclass
class Candidate:
    """A proposed question. `segment_ids` are the mined segments its evidence was anchored to.

    `reject_reason` is set at proposal time when a model-written output could not be parsed; such a
    candidate keeps the raw output in `spec["raw_output"]` and is stored as rejected.
    """

    family: str
    text: str
    answer: str
    evidence: tuple[Span, ...]
    options: tuple[str, ...] | None = None
    level: int = 0
    spec: dict[str, Any] = field(default_factory=dict)
    segment_ids: tuple[int, ...] = ()
    writer: str = "template"
    reject_reason: str | None = None

    @property
    def kind(self) -> str:
        return answer_kind(self.options, self.spec)

    @property
    def prompt(self) -> str:
        return question_prompt(self.text, self.options, self.spec)


def question_request(
    prompt: str, spec: Mapping[str, Any], full: VideoInput, shown: VideoInput | None
) -> Request:
    """The request of a question: its prompt, the video as shown in this mode (None: blind), and its
    query images cut from the full video (query images are part of the question, so blind keeps them)."""
    return Request(prompt, shown, query_images(full, spec))
