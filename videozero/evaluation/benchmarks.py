"""Public video benchmarks read from their real annotation files, and scored with their official metrics.

Each reader turns one benchmark's file into `GroundingItem`s (one per query); `resolve_videos` finds each
item's video in a user's folder and reports the missing ones instead of failing; `score` computes the
benchmark's own figures from one `Prediction` per item.

| name                 | annotation file                       | figures                                         |
|----------------------|---------------------------------------|-------------------------------------------------|
| charades_sta         | `VID START END##sentence` lines       | R1@0.3/0.5/0.7, mIoU                             |
| activitynet_captions | {vid: {duration, timestamps, sentences}} | R1@0.3/0.5/0.7, mIoU                          |
| qvhighlights         | JSONL rows with relevant_windows      | R1@0.5/0.7, mAP (0.5:0.95), mAP@0.5, mAP@0.75    |
| nextgqa              | val.csv + gsub_val.json beside it     | Acc@QA, Acc@GQA, mIoP, IoP@0.3/0.5, mIoU, IoU@0.3/0.5 |
| asl_grounding        | items.jsonl written by asl_grounding  | R1@0.3/0.5/0.7, mIoU                             |
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from videozero.answer_format import parse_answer
from videozero.errors import VideozeroError
from videozero.evaluation.metrics import (
    format_rate,
    moment_retrieval_r1,
    nextgqa_metrics,
    qvhighlights_metrics,
)
from videozero.question_prompt import option_letter, question_prompt
from videozero.rewards import answer_accuracy
from videozero.video.decode import VIDEO_SUFFIXES

Span = tuple[float, float]


@dataclass(frozen=True)
class GroundingItem:
    """One benchmark query: the video it is about, the text, the ground-truth spans (seconds), and for
    multiple-choice questions the options and the correct option's letter.

    `duration` is None where the annotation file does not give it (Charades-STA); `video_path` is set by
    `resolve_videos`; `extra` keeps benchmark-specific fields (NExT-GQA's type, QVHighlights' saliency).
    """

    benchmark: str
    item_id: str
    video_id: str
    query: str
    gt_spans: tuple[Span, ...]
    duration: float | None = None
    options: tuple[str, ...] | None = None
    answer: str | None = None
    video_path: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def answer_kind(self) -> str:
        """ "option" for multiple choice, else "text" (grounding benchmarks score only the span)."""
        return "option" if self.options else "text"

    @property
    def question(self) -> str:
        """The question as the model reads it, before options and the format instruction."""
        if self.options:
            return self.query
        if "question" in self.extra:
            return str(self.extra["question"])
        return f'When does this happen in the video: "{self.query}"? Answer with a short description of it.'

    def prompt(self) -> str:
        """The full text a solver sees after the video: question, lettered options, answer format.

        >>> item = GroundingItem("charades_sta", "AO8RW_1", "AO8RW", "a person is putting a book on a shelf.", ((0.0, 6.9),))
        >>> print(item.prompt().splitlines()[0])
        When does this happen in the video: "a person is putting a book on a shelf."? Answer with a short description of it.
        """
        return question_prompt(self.question, self.options, {"answer_kind": self.answer_kind})


@dataclass(frozen=True)
class Prediction:
    """What a model said about one item: its answer, its spans in rank order (the first is its top-1),
    optional per-span scores (QVHighlights ranks by them; missing scores count as 1, keeping the
    order), and whether the output followed the answer format."""

    answer: str | None = None
    spans: tuple[Span, ...] = ()
    scores: tuple[float, ...] | None = None
    format_ok: bool = True

    @classmethod
    def from_output(cls, text: str, duration: float | None = None) -> Prediction:
        """Parse a model's raw output (`<think>..</think><evidence>[s, e]</evidence><answer>..</answer>`).

        >>> Prediction.from_output("<think></think><evidence>[2, 4.5]</evidence><answer>B</answer>")
        Prediction(answer='B', spans=((2.0, 4.5),), scores=None, format_ok=True)
        """
        parsed = parse_answer(text, duration=duration)
        return cls(answer=parsed.answer, spans=parsed.spans, format_ok=parsed.format_ok)

    def scored_windows(self) -> list[tuple[float, float, float]]:
        """(start, end, score) per span, as QVHighlights' submission format."""
        scores = self.scores if self.scores is not None else (1.0,) * len(self.spans)
        return [(s, e, float(c)) for (s, e), c in zip(self.spans, scores, strict=False)]


@dataclass(frozen=True)
class BenchmarkSet:
    """The items read from one annotation file, and notes on rows left out (as the official loaders do)."""

    name: str
    path: Path
    items: list[GroundingItem]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VideoResolution:
    """Items whose video was found (with `video_path` set), the ids of the videos not found, a summary."""

    found: list[GroundingItem]
    missing_video_ids: list[str]
    skipped_item_ids: list[str]
    summary: str


# --- readers -------------------------------------------------------------------------------------------


def _bad(path: Path, where: str, what: str) -> VideozeroError:
    return VideozeroError(
        f"{path}, {where}: {what}; fix or remove it, or pass the benchmark's original file."
    )


def _read_text(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise VideozeroError(
            f"{path} does not exist: pass the benchmark's annotation file with --annotations."
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise VideozeroError(
            f"{path} is not UTF-8 text (byte {exc.start}): pass the annotation file itself."
        ) from None
    except OSError as exc:
        raise VideozeroError(f"{path} cannot be read ({exc.strerror}): check its permissions.") from None


def _load_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(path, f"line {exc.lineno}", f"invalid JSON ({exc.msg})") from None


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _span(value: Any) -> Span | None:
    """A [start, end] pair of finite numbers, or None."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    s, e = _number(value[0]), _number(value[1])
    return None if s is None or e is None else (s, e)


def load_charades_sta(path: Path) -> BenchmarkSet:
    """Charades-STA (`VIDEO_ID START END##sentence` per line). Rows with start >= end are left out, as
    2D-TAN's loader does (`if s_time < e_time`); the file has no durations."""
    path = Path(path)
    items, reversed_rows = [], 0
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        head, sep, sentence = line.partition("##")
        fields = head.split()
        s, e = (_number(fields[1]), _number(fields[2])) if len(fields) == 3 else (None, None)
        if not sep or s is None or e is None or not sentence.strip():
            raise _bad(path, f"line {n}", f"expected 'VIDEO_ID START END##sentence', got {line[:80]!r}")
        if s >= e:
            reversed_rows += 1
            continue
        items.append(
            GroundingItem("charades_sta", f"{fields[0]}_{n}", fields[0], sentence.strip(), ((s, e),))
        )
    notes = [f"{reversed_rows} rows with start >= end left out (as 2D-TAN's loader)"] if reversed_rows else []
    return BenchmarkSet("charades_sta", path, items, notes)


def load_activitynet_captions(path: Path) -> BenchmarkSet:
    """ActivityNet Captions as a grounding benchmark: one item per (video, sentence, timestamp)."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise _bad(
            path, "top level", "expected an object mapping video ids to {duration, timestamps, sentences}"
        )
    items, reversed_rows = [], 0
    for vid, ann in data.items():
        ok = isinstance(ann, dict) and _number(ann.get("duration")) is not None
        stamps, sentences = (ann.get("timestamps"), ann.get("sentences")) if ok else (None, None)
        if (
            not ok
            or not isinstance(stamps, list)
            or not isinstance(sentences, list)
            or len(stamps) != len(sentences)
        ):
            raise _bad(path, f"video {vid!r}", "expected duration, and as many timestamps as sentences")
        for i, (stamp, sentence) in enumerate(zip(stamps, sentences, strict=True)):
            span = _span(stamp)
            if span is None or not isinstance(sentence, str):
                raise _bad(path, f"video {vid!r}, sentence {i}", f"bad timestamp {stamp!r} or sentence")
            if span[0] >= span[1]:
                reversed_rows += 1
                continue
            items.append(
                GroundingItem(
                    "activitynet_captions",
                    f"{vid}_{i}",
                    vid,
                    sentence.strip(),
                    (span,),
                    float(ann["duration"]),
                )
            )
    notes = [f"{reversed_rows} timestamps with start >= end left out"] if reversed_rows else []
    return BenchmarkSet("activitynet_captions", path, items, notes)


def load_qvhighlights(path: Path) -> BenchmarkSet:
    """QVHighlights (JSONL: qid, query, vid, duration, relevant_windows, saliency...)."""
    path = Path(path)
    items = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(path, f"line {n}", f"invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not {"qid", "query", "vid", "duration"} <= row.keys():
            raise _bad(path, f"line {n}", "expected an object with qid, query, vid, duration")
        if "relevant_windows" not in row:
            raise VideozeroError(
                f"{path}, line {n}: no relevant_windows (the test split has no ground truth): "
                "use the val split, or score test predictions on the official server."
            )
        windows = (
            [_span(w) for w in row["relevant_windows"]]
            if isinstance(row["relevant_windows"], list)
            else [None]
        )
        if not windows or any(w is None for w in windows) or _number(row["duration"]) is None:
            raise _bad(
                path, f"line {n}", "relevant_windows must be [[start, end], ...] and duration a number"
            )
        extra = {k: row[k] for k in ("relevant_clip_ids", "saliency_scores") if k in row}
        items.append(
            GroundingItem(
                "qvhighlights",
                str(row["qid"]),
                str(row["vid"]),
                str(row["query"]).strip(),
                tuple(windows),
                float(row["duration"]),
                extra=extra,  # type: ignore[arg-type]
            )
        )
    return BenchmarkSet("qvhighlights", path, items)


NEXTGQA_COLUMNS = ("video_id", "question", "answer", "qid", "a0", "a1", "a2", "a3", "a4")


def _nextgqa_pair(path: Path) -> tuple[Path, Path]:
    """(questions csv, gsub json) from either of the two files (`val.csv` <-> `gsub_val.json`)."""
    path = Path(path)
    if path.suffix == ".json":
        csv_path, gsub_path = path.with_name(path.stem.removeprefix("gsub_") + ".csv"), path
    else:
        csv_path, gsub_path = path, path.with_name(f"gsub_{path.stem}.json")
    for p in (csv_path, gsub_path):
        if not p.is_file():
            raise VideozeroError(
                f"{p} does not exist: NExT-GQA needs the questions ({csv_path.name}) and their grounding "
                f"({gsub_path.name}) side by side."
            )
    return csv_path, gsub_path


def load_nextgqa(path: Path) -> BenchmarkSet:
    """NExT-GQA: multiple-choice questions (csv, answer given as text) and their evidence windows
    (gsub json, keyed by video then qid). Questions without windows are left out, as the official
    `eval_ground` only scores those in the gsub file."""
    csv_path, gsub_path = _nextgqa_pair(path)
    gsub = _load_json(gsub_path)
    if not isinstance(gsub, dict):
        raise _bad(gsub_path, "top level", "expected an object mapping video ids to {duration, location}")
    reader = csv.DictReader(_read_text(csv_path).splitlines())
    missing = [c for c in NEXTGQA_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise _bad(csv_path, "line 1", f"header lacks the columns {', '.join(missing)}")
    items, ungrounded = [], 0
    for n, row in enumerate(reader, start=2):
        if None in row or any(row[c] is None for c in NEXTGQA_COLUMNS):
            raise _bad(
                csv_path, f"line {n}", f"expected {len(reader.fieldnames or [])} comma-separated fields"
            )
        vid, qid = row["video_id"].strip(), row["qid"].strip()
        options = tuple(row[f"a{i}"].strip() for i in range(5))
        answer_text = row["answer"].strip()
        if answer_text not in options:
            raise _bad(csv_path, f"line {n}", f"the answer {answer_text!r} is none of the options a0..a4")
        ann = gsub.get(vid)
        locs = ann.get("location", {}).get(qid) if isinstance(ann, dict) else None
        if locs is None:
            ungrounded += 1
            continue
        spans = [_span(w) for w in locs] if isinstance(locs, list) else [None]
        duration = _number(ann.get("duration"))
        if not spans or any(s is None for s in spans) or duration is None:
            raise _bad(
                gsub_path, f"video {vid!r}, qid {qid}", "location must be [[start, end], ...] with a duration"
            )
        items.append(
            GroundingItem(
                "nextgqa",
                f"{vid}_{qid}",
                vid,
                row["question"].strip(),
                tuple(spans),  # type: ignore[arg-type]
                duration,
                options,
                option_letter(options.index(answer_text)),
                extra={"type": row.get("type", ""), "answer_text": answer_text, "fps": ann.get("fps")},
            )
        )
    notes = (
        [f"{ungrounded} questions without evidence windows in {gsub_path.name} left out"]
        if ungrounded
        else []
    )
    return BenchmarkSet("nextgqa", csv_path, items, notes)


def load_items(path: Path) -> list[GroundingItem]:
    """Read items.jsonl written by `build_asl_grounding`; videos are looked up in `videos/` beside it."""
    path = Path(path)
    if not path.is_file():
        raise VideozeroError(
            f"{path} does not exist: build the benchmark first (python -m videozero.evaluation.asl_grounding --out DIR)."
        )
    videos_dir = path.parent / "videos"
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            gt = (float(row["gt_span"][0]), float(row["gt_span"][1]))
            query_span = (float(row["query_span"][0]), float(row["query_span"][1]))
            sign, video, query_video = str(row["sign"]), str(row["video_id"]), str(row["query_video"])
            item_id, duration = str(row["item_id"]), float(row["duration"])
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            raise VideozeroError(
                f"{path}, line {n}: not an ASL grounding item (item_id, video_id, sign, gt_span, duration, "
                "query_video, query_span): rebuild the benchmark."
            ) from None
        video_path = videos_dir / f"{video}.mp4"
        items.append(
            GroundingItem(
                "asl_grounding",
                item_id,
                video,
                f"the sign for '{sign}'",
                (gt,),
                duration,
                video_path=str(video_path) if video_path.is_file() else None,
                extra={
                    "sign": sign,
                    "question": f"When is the sign for '{sign}' shown in the video? The query clip shows this sign. "
                    "Answer with the sign's name.",
                    "query_video": query_video,
                    "query_video_path": str(videos_dir / f"{query_video}.mp4"),
                    "query_span": query_span,
                },
            )
        )
    return items


def _load_asl(path: Path) -> BenchmarkSet:
    return BenchmarkSet("asl_grounding", Path(path), load_items(path))


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark: its reader, where its file lies under shared/benchmarks, and how it is scored."""

    name: str
    load: Callable[[Path], BenchmarkSet]
    default_file: str | None
    metric: str


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("charades_sta", load_charades_sta, "charades_sta/charades_sta_train.txt", "moment_r1"),
        BenchmarkSpec(
            "activitynet_captions", load_activitynet_captions, "activitynet_captions/val.json", "moment_r1"
        ),
        BenchmarkSpec(
            "qvhighlights", load_qvhighlights, "qvhighlights/highlight_val_release.jsonl", "qvhighlights"
        ),
        BenchmarkSpec("nextgqa", load_nextgqa, "nextgqa/val.csv", "nextgqa"),
        BenchmarkSpec("asl_grounding", _load_asl, None, "moment_r1"),
    )
}


def _spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise VideozeroError(f"unknown benchmark {name!r}: choose one of {', '.join(BENCHMARKS)}.")
    return BENCHMARKS[name]


def default_annotations(name: str, benchmarks_dir: Path) -> Path:
    """The benchmark's annotation file inside a folder laid out as shared/benchmarks."""
    spec = _spec(name)
    if spec.default_file is None:
        raise VideozeroError(
            f"{name} has no shipped annotation file: build it first and pass its items.jsonl."
        )
    return Path(benchmarks_dir) / spec.default_file


def load_benchmark(name: str, annotations: Path) -> BenchmarkSet:
    """Read benchmark `name` from its annotation file; bad rows raise VideozeroError naming file and line."""
    return _spec(name).load(Path(annotations))


# --- videos --------------------------------------------------------------------------------------------


def index_videos(videos_dir: Path) -> dict[str, Path]:
    """File stem -> path of every video file under `videos_dir` (any depth; the first in sorted order wins)."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise VideozeroError(f"{videos_dir} is not a folder: pass the folder holding the benchmark's videos.")
    index: dict[str, Path] = {}
    for root, dirs, files in os.walk(videos_dir):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_SUFFIXES:
                index.setdefault(stem, Path(root) / name)
    return index


def _candidates(video_id: str) -> list[str]:
    """File stems a video may be stored under (ActivityNet ids appear with and without their `v_`)."""
    names = [video_id]
    names.append(video_id[2:] if video_id.startswith("v_") else f"v_{video_id}")
    return names


def resolve_videos(items: Iterable[GroundingItem], videos_dir: Path) -> VideoResolution:
    """Attach each item's video file from `videos_dir` (`<id>.mp4|.mkv|.webm|.avi|.mov`, at any depth);
    items whose video is absent are skipped and reported, never an error."""
    index = index_videos(videos_dir)
    found, missing_items, missing_videos = [], [], {}
    for item in items:
        path = next((index[c] for c in _candidates(item.video_id) if c in index), None)
        if path is None:
            missing_items.append(item.item_id)
            missing_videos.setdefault(item.video_id, None)
        else:
            found.append(replace(item, video_path=str(path)))
    n_videos = len({i.video_id for i in found}) + len(missing_videos)
    if missing_videos:
        first = ", ".join(list(missing_videos)[:5])
        summary = (
            f"{len(missing_videos)} of {n_videos} videos not found in {videos_dir} "
            f"({len(missing_items)} of {len(found) + len(missing_items)} items skipped), e.g. {first}"
        )
    else:
        summary = f"all {n_videos} videos found in {videos_dir} ({len(found)} items)"
    return VideoResolution(found, list(missing_videos), missing_items, summary)


def benchmark_items(
    name: str, annotations: Path, videos_dir: Path | None = None, limit: int | None = None
) -> tuple[list[GroundingItem], str, list[str]]:
    """The items of benchmark `name` whose videos exist, a summary of the video lookup, the reader's notes.

    `videos_dir` defaults to `videos/` beside the annotation file (where the ASL build writes them).
    Raises a VideozeroError when no item's video is found: nothing could be evaluated.
    """
    bench = load_benchmark(name, annotations)
    if not bench.items:
        raise VideozeroError(f"{annotations} holds no {name} items: pass the benchmark's annotation file.")
    folder = Path(videos_dir) if videos_dir is not None else Path(annotations).parent / "videos"
    resolution = resolve_videos(bench.items, folder)
    if not resolution.found:
        raise VideozeroError(
            f"none of the {len(bench.items)} {name} items has its video in {folder}: pass the folder "
            "holding the benchmark's videos with --videos."
        )
    items = resolution.found[:limit] if limit else resolution.found
    return items, resolution.summary, list(bench.notes)


# --- scoring -------------------------------------------------------------------------------------------


def score(
    benchmark: str, items: Sequence[GroundingItem], predictions: Mapping[str, Prediction]
) -> dict[str, float]:
    """The benchmark's official figures (fractions in [0, 1]) over `items`, plus `format_rate` and `n`.

    `predictions` maps item_id to Prediction. An item without a prediction counts as a wrong, ungrounded
    answer (the official NExT-GQA script would drop it instead; scoring it 0 never flatters a run), so
    pass only the items that were run, e.g. `resolve_videos(...).found`.
    """
    spec = _spec(benchmark)
    empty = Prediction(format_ok=False)
    preds = [predictions.get(item.item_id, empty) for item in items]
    gts = [item.gt_spans for item in items]
    if spec.metric == "moment_r1":
        figures = moment_retrieval_r1([p.spans for p in preds], gts)
    elif spec.metric == "qvhighlights":
        figures = qvhighlights_metrics([p.scored_windows() for p in preds], gts)
    else:
        correct = [
            answer_accuracy(p.answer, item.answer or "", item.answer_kind) == 1.0
            for p, item in zip(preds, items, strict=True)
        ]
        figures = nextgqa_metrics([p.spans for p in preds], gts, correct)
    return {**figures, "format_rate": format_rate(p.format_ok for p in preds), "n": float(len(items))}
