"""Question de-duplication and the repetition penalty, with the real bundled MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from videozero.questioner.candidate import Candidate
from videozero.questioner.dedup import (
    EMBED_DIM,
    DuplicateOf,
    QuestionEmbedder,
    dedup_text,
    deduplicate,
    near_duplicates,
    repetition_penalty,
)

RED = "When does the red car appear?"
RED_PARAPHRASE = "When does the red car show up?"
UNRELATED = "How many people are wearing hats?"
ORDER = "In which order do clips A, B, C happen?"
PERMS = ("A, B, C", "B, A, C", "C, A, B")
NONE = DuplicateOf()


@pytest.fixture(scope="module")
def embedder() -> QuestionEmbedder:
    e = QuestionEmbedder(device="cpu")
    e.embed(["warm up"])
    return e


def cand(text: str, evidence: tuple[tuple[float, float], ...], family: str = "grounding", **kw) -> Candidate:
    return Candidate(family=family, text=text, answer="x", evidence=evidence, **kw)


def test_embed_shape_norm_and_single_load(embedder: QuestionEmbedder) -> None:
    e = embedder.embed([RED, UNRELATED, ORDER])
    assert e.shape == (3, EMBED_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    empty = embedder.embed([])
    assert empty.shape == (0, EMBED_DIM) and empty.dtype == np.float32
    assert QuestionEmbedder("cpu").model is embedder.model


def test_paraphrase_similar_unrelated_not(embedder: QuestionEmbedder) -> None:
    a, b, c = embedder.embed([RED, RED_PARAPHRASE, UNRELATED])
    assert float(a @ b) >= 0.9
    assert float(a @ c) < 0.5


def test_dedup_text_has_family_and_options() -> None:
    assert dedup_text(cand(ORDER, ((0, 1),), family="ordering", options=PERMS)) == (
        "ordering | In which order do clips A, B, C happen? | A, B, C | B, A, C | C, A, B"
    )


def test_paraphrase_same_video_same_evidence_is_duplicate(embedder: QuestionEmbedder) -> None:
    dups, _ = deduplicate([cand(RED, ((2, 4),)), cand(RED_PARAPHRASE, ((2.2, 4),))], [1, 1], embedder, [])
    assert dups == [NONE, DuplicateOf(batch_index=0)]


def test_same_text_other_video_not_duplicate(embedder: QuestionEmbedder) -> None:
    dups, _ = deduplicate([cand(RED, ((2, 4),)), cand(RED, ((2, 4),))], [1, 2], embedder, [])
    assert dups == [NONE, NONE]


def test_same_text_disjoint_evidence_not_duplicate(embedder: QuestionEmbedder) -> None:
    dups, _ = deduplicate([cand(RED, ((2, 4),)), cand(RED, ((10, 12),))], [1, 1], embedder, [])
    assert dups == [NONE, NONE]


def test_ordering_questions_on_other_clips_not_duplicates(embedder: QuestionEmbedder) -> None:
    def order(ev: tuple[tuple[float, float], ...]) -> Candidate:
        return cand(ORDER, ev, family="ordering", options=PERMS)

    clips_1 = ((0, 1), (5, 6), (9, 10))
    clips_2 = ((20, 21), (25, 26), (29, 30))
    dups, _ = deduplicate([order(clips_1), order(clips_2), order(clips_1)], [7, 7, 7], embedder, [])
    assert dups == [NONE, NONE, DuplicateOf(batch_index=0)]


def test_in_batch_duplicates_reference_first(embedder: QuestionEmbedder) -> None:
    batch = [cand(UNRELATED, ((0, 1),)), cand(RED, ((2, 4),)), cand(RED_PARAPHRASE, ((2, 4),))]
    batch.append(cand(RED, ((2, 4),)))
    dups, _ = deduplicate(batch, [1, 1, 1, 1], embedder, [])
    assert dups == [NONE, NONE, DuplicateOf(batch_index=1), DuplicateOf(batch_index=1)]


def test_stored_duplicates_reference_stored_id(embedder: QuestionEmbedder) -> None:
    stored = [
        (11, 1, dedup_text(cand(UNRELATED, ())), ((0, 1),)),
        (12, 1, dedup_text(cand(RED, ())), ((2, 4),)),
        (13, 2, dedup_text(cand(RED, ())), ((2, 4),)),
    ]
    batch = [cand(RED_PARAPHRASE, ((2, 4),)), cand(RED, ((2, 4),)), cand(RED, ((2, 4),))]
    dups, _ = deduplicate(batch, [1, 1, 3], embedder, stored)
    assert dups == [DuplicateOf(stored_id=12), DuplicateOf(stored_id=12), NONE]


def test_rejected_candidates_are_left_out(embedder: QuestionEmbedder) -> None:
    batch = [cand(RED, ((2, 4),), reject_reason="unparseable"), cand(RED, ((2, 4),)), cand(RED, ((2, 4),))]
    dups, pen = deduplicate(batch, [1, 1, 1], embedder, [])
    assert dups == [NONE, NONE, DuplicateOf(batch_index=1)]
    np.testing.assert_allclose(pen, [0.0, 1.0, 1.0])


def test_identical_normalised_text_always_duplicate() -> None:
    emb = np.eye(2, dtype=np.float32)  # orthogonal: cosine alone would never match
    out = near_duplicates(
        emb[:1],
        [((0, 2),)],
        [1],
        emb[1:],
        [((0, 2),)],
        [1],
        [5],
        texts_new=["when does the RED car appear ?"],
        texts_old=[RED],
    )
    assert out == [DuplicateOf(stored_id=5)]


def test_repetition_penalty_hand_computed(embedder: QuestionEmbedder) -> None:
    emb = embedder.embed([RED, RED_PARAPHRASE, UNRELATED, ORDER])
    np.testing.assert_allclose(repetition_penalty(emb), [0.5, 0.5, 0.0, 0.0])
    # three paraphrases of one question and one other in a batch of five: 3/5 each, then 0
    emb = embedder.embed(
        [RED, RED_PARAPHRASE, "When does the red car appear in the video?", ORDER, UNRELATED]
    )
    np.testing.assert_allclose(repetition_penalty(emb), [0.6, 0.6, 0.6, 0.0, 0.0])


def test_repetition_penalty_single_linkage() -> None:
    # two separate chains: 0-1-2 (each step 20 degrees) and 3-4, in a batch of 6
    deg = np.radians([0, 20, 40, 90, 100, 180])
    emb = np.stack([np.cos(deg), np.sin(deg), np.zeros(6)], axis=1)
    np.testing.assert_allclose(repetition_penalty(emb), [3 / 6] * 3 + [2 / 6] * 2 + [0.0])
    np.testing.assert_allclose(repetition_penalty(emb, threshold=0.99), np.zeros(6))


def test_empty_inputs(embedder: QuestionEmbedder) -> None:
    e = np.zeros((0, EMBED_DIM), dtype=np.float32)
    assert near_duplicates(e, [], [], e, [], [], []) == []
    one = embedder.embed([RED])
    assert near_duplicates(one, [((0, 1),)], [1], e, [], [], []) == [NONE]
    assert repetition_penalty(e).shape == (0,)
    dups, pen = deduplicate([], [], embedder, [])
    assert dups == [] and pen.shape == (0,)
    dups, pen = deduplicate([cand(RED, ((0, 1),))], [1], embedder, [])
    assert dups == [NONE] and pen.tolist() == [0.0]
