"""`videozero qa`: list, show, summarise and export the questions in the QA store."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from store.queries import QuestionFilter, count_questions, list_questions, question_detail, question_stats
from videozero.cli.common import DbOption, console, open_existing
from videozero.errors import VideozeroError

app = typer.Typer(help="Query and export the generated questions.", no_args_is_help=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class Status(StrEnum):
    candidate = "candidate"
    accepted = "accepted"
    rejected = "rejected"


class Split(StrEnum):
    train = "train"
    heldout = "heldout"
    validation = "validation"


RunOpt = Annotated[str | None, typer.Option("--run", help="Run name.")]
RoundOpt = Annotated[int | None, typer.Option("--round", help="Round index (0 is the first round).")]
FamilyOpt = Annotated[str | None, typer.Option("--family", help="Question family, e.g. grounding.")]
StatusOpt = Annotated[Status | None, typer.Option("--status", help="candidate, accepted or rejected.")]
SplitOpt = Annotated[Split | None, typer.Option("--split", help="train, heldout or validation questions.")]
LevelMinOpt = Annotated[int | None, typer.Option("--level-min", help="Lowest difficulty level.")]
LevelMaxOpt = Annotated[int | None, typer.Option("--level-max", help="Highest difficulty level.")]
VideoOpt = Annotated[str | None, typer.Option("--video", help="Video path contains this (literal).")]
TextOpt = Annotated[str | None, typer.Option("--search", "-s", help="Question text contains this (literal).")]


def _filter(
    run: str | None,
    round_: int | None,
    family: str | None,
    status: Status | None,
    split: Split | None,
    level_min: int | None = None,
    level_max: int | None = None,
    video: str | None = None,
    text: str | None = None,
) -> QuestionFilter:
    return QuestionFilter(
        run=run,
        round=round_,
        family=family,
        status=status.value if status else None,
        split=split.value if split else None,
        level_min=level_min,
        level_max=level_max,
        video=video,
        text=text,
    )


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _flat(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


@app.command("list")
def list_(
    db: DbOption = None,
    run: RunOpt = None,
    round_: RoundOpt = None,
    family: FamilyOpt = None,
    status: StatusOpt = None,
    split: SplitOpt = None,
    level_min: LevelMinOpt = None,
    level_max: LevelMaxOpt = None,
    video: VideoOpt = None,
    search: TextOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many rows (0: all).")] = 50,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, json or csv.")] = OutputFormat.table,
) -> None:
    """List questions, newest first, filtered by run, round, family, status, difficulty, video or text."""
    flt = _filter(run, round_, family, status, split, level_min, level_max, video, search)
    store = open_existing(db)
    with store.session() as session:
        rows = list_questions(session, flt, limit=limit or None)
        total = count_questions(session, flt) if fmt is OutputFormat.table else len(rows)
    store.dispose()
    if fmt is OutputFormat.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    if fmt is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows({k: _flat(v) for k, v in row.items()} for row in rows)
        return
    table = Table(title=f"{len(rows)} of {total} questions", title_justify="left")
    for col in ("id", "run", "round", "family", "level", "writer", "status", "reason", "c", "r_dep", "video"):
        table.add_column(
            col, no_wrap=True, justify="right" if col in ("id", "round", "level", "c") else "left"
        )
    table.add_column("question", overflow="fold", max_width=60)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["run"],
            _fmt(row["round"]),
            row["family"],
            str(row["level"]),
            row["writer"],
            row["status"],
            _fmt(row["reject_reason"]),
            _fmt(row["agreement"]),
            _fmt(row["r_dep"]),
            Path(row["video"]).name,
            row["text"],
            style="dim" if row["status"] == "rejected" else None,
        )
    console.print(table)


def _verification(v: dict | None) -> str:
    """Per-mode scores and the figures behind r_Q, one line."""
    if not v:
        return "-"
    scores = "  ".join(f"{m} {_fmt(x)}" for m, x in (v.get("scores") or {}).items())
    extra = "  ".join(
        f"{k} {_fmt(v.get(k))}" for k in ("p", "necessity", "specificity", "saliency", "repetition") if k in v
    )
    return f"{scores}\n{extra}" if scores else extra


def _query(spec: dict | None) -> str:
    """The still images the question shows besides the video (labels and the times they are cut at)."""
    items = (spec or {}).get("query") or []
    if not items:
        return "the video only"
    parts = []
    for item in items:
        times = ", ".join(f"{float(t):.1f}" for t in item.get("times", []))
        parts.append(f"{item.get('label', '?')} @ {times} s" + (" (reversed)" if item.get("reverse") else ""))
    return "; ".join(parts)


def zoom_lines(record: object) -> list[str]:
    """An answer with zoom as lines: a coarse-to-fine record (the coarse answer, where it zoomed, the
    zoomed answer, which was kept) or a zoom tool's turns (what was said, the span asked for and the frames
    shown, or why the tool refused).

    >>> zoom_lines({"coarse": {"answer": "B", "confidence": 0.4}, "zoomed": True, "kept": "zoom",
    ...             "zoom": {"answer": "C", "confidence": 0.9, "frames": [2.0, 2.5], "spans": [[2, 3]]}})
    ['coarse: B (confidence 0.40)', 'zoomed into 2 frames (2.0, 2.5 s): C (confidence 0.90)', 'kept: zoom']
    >>> zoom_lines([{"said": "<video_zoom>x</video_zoom>", "call": {"error": "not JSON"}}, {"said": "<answer>A"}])
    ["turn 1: '<video_zoom>x</video_zoom>'", '  tool refused: not JSON', "turn 2: '<answer>A'"]
    """
    lines: list[str] = []
    if isinstance(record, dict):
        coarse, zoom = record.get("coarse") or {}, record.get("zoom") or {}
        lines.append(f"coarse: {coarse.get('answer')} (confidence {_fmt(coarse.get('confidence'))})")
        if record.get("zoomed"):
            frames = zoom.get("frames") or []
            shown = ", ".join(f"{float(t):.1f}" for t in frames[:16]) + (" ..." if len(frames) > 16 else "")
            lines.append(
                f"zoomed into {len(frames)} frames ({shown} s): {zoom.get('answer')} "
                f"(confidence {_fmt(zoom.get('confidence'))})"
            )
        lines.append(f"kept: {record.get('kept')}")
        return lines
    for k, turn in enumerate(record if isinstance(record, list) else [], start=1):
        if not isinstance(turn, dict):
            continue
        lines.append(f"turn {k}: {str(turn.get('said', ''))[:300]!r}")
        call = turn.get("call")
        if isinstance(call, dict) and call.get("error"):
            lines.append(f"  tool refused: {call['error']}")
        elif isinstance(call, dict):
            frames = call.get("frames") or []
            segment = call.get("segment") or ["?", "?"]
            lines.append(
                f"  zoom [{segment[0]}, {segment[1]}] s at {call.get('fps')} fps: {len(frames)} frames at "
                + ", ".join(f"{float(t):.1f}" for t in frames[:16])
                + " s"
            )
    return lines


@app.command()
def show(
    question_id: Annotated[int, typer.Argument(metavar="ID", help="Question id (from `videozero qa list`).")],
    db: DbOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.table,
) -> None:
    """Show one question: text, options, answer, evidence, reward parts, verdict, its attempts and its
    preference pairs."""
    from store.preferences import question_preferences

    store = open_existing(db)
    with store.session() as session:
        q = question_detail(session, question_id)
        q["preferences"] = question_preferences(session, question_id)
    store.dispose()
    if fmt is not OutputFormat.table:
        json.dump(q, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    verdict = q["status"] + (f" ({q['reject_reason']})" if q["reject_reason"] else "")
    if q["dedup_of"]:
        verdict += f", duplicate of question {q['dedup_of']}"
    spans = ", ".join(f"[{s:.2f}, {e:.2f}] s" for s, e in q["evidence"] or []) or "-"
    consensus = q["consensus_evidence"] or []
    for label, value in (
        ("question", f"{q['id']}  ({q['run']}, round {_fmt(q['round'])}, {q['split']})"),
        ("family", f"{q['family']}  level {q['level']}  written by {q['writer']}"),
        ("video", q["video"]),
        ("text", q["text"]),
        (
            "options",
            "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(q["options"])) if q["options"] else "-",
        ),
        ("answer", q["answer"]),
        ("evidence", spans),
        (
            "consensus",
            f"{_fmt(q['consensus_answer'])}  "
            + (", ".join(f"[{s:.2f}, {e:.2f}] s" for s, e in consensus) if consensus else ""),
        ),
        ("verdict", verdict),
        (
            "rewards",
            f"agreement {_fmt(q['agreement'])}  r_learn {_fmt(q['r_learn'])}  "
            f"r_dep {_fmt(q['r_dep'])}  r_evid {_fmt(q['r_evid'])}  r_Q {_fmt(q['r_q'])}",
        ),
        ("verification", _verification(q["verification"])),
        ("shown", _query(q["spec"])),
    ):
        head.add_row(label, value)
    console.print(head)
    if q["attempt_summary"]:
        table = Table(title="attempts by checkpoint and mode", title_justify="left")
        for col in ("checkpoint", "mode", "n", "format", "accuracy", "mean IoU", "mean reward"):
            table.add_column(col, justify="left" if col in ("checkpoint", "mode") else "right")
        for a in q["attempt_summary"]:
            table.add_row(
                f"{a['checkpoint_id']} ({a['stage']})",
                a["mode"],
                str(a["n"]),
                _fmt(a["format_rate"]),
                _fmt(a["accuracy"]),
                _fmt(a["mean_iou"]),
                _fmt(a["mean_reward"]),
            )
        console.print(table)
        plain = [x for x in q["sample_outputs"] if not x.get("turns")]
        for sample in plain[:5]:
            console.print(
                Text.assemble((f"{sample['mode']} sample 0: ", "dim"), repr(sample["raw_output"][:300])),
                highlight=False,
            )
        for sample in (x for x in q["sample_outputs"] if x.get("turns")):
            console.print(
                Text(f"{sample['mode']} of checkpoint {sample['checkpoint_id']}:", style="dim"),
                highlight=False,
            )
            for line in zoom_lines(sample["turns"]):
                console.print(Text("  " + line), highlight=False)
    else:
        console.print(Text("no attempts recorded", style="dim"))
    if q["preferences"]:
        table = Table(title="preference pairs (chosen: the training label)", title_justify="left")
        for col in ("factor", "source", "rejected"):
            table.add_column(col, overflow="fold")
        for p in q["preferences"]:
            source = p["source"] + (f" (attempt {p['attempt_id']})" if p["attempt_id"] else "")
            table.add_row(p["factor"], source, Text(p["rejected"]))
        console.print(Text.assemble(("chosen: ", "bold"), q["preferences"][0]["chosen"]), highlight=False)
        console.print(table)


@app.command()
def stats(
    db: DbOption = None,
    run: RunOpt = None,
    round_: RoundOpt = None,
    family: FamilyOpt = None,
    split: SplitOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, json or csv.")] = OutputFormat.table,
) -> None:
    """Per run, round and family: generated, accepted, rejection reasons, solver accuracy by mode."""
    flt = _filter(run, round_, family, None, split)
    store = open_existing(db)
    with store.session() as session:
        rows = question_stats(session, flt)
    store.dispose()
    records = [
        {
            "run": r.run,
            "round": r.round,
            "family": r.family,
            "generated": r.generated,
            "accepted": r.accepted,
            "rejected": r.rejected,
            "acceptance": round(r.acceptance, 4),
            "reject_reasons": r.reject_reasons,
            "accuracy_by_mode": r.accuracy_by_mode,
            "attempts_by_mode": r.attempts_by_mode,
        }
        for r in rows
    ]
    if fmt is OutputFormat.json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if fmt is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]) if records else ["run"])
        writer.writeheader()
        writer.writerows({k: _flat(v) for k, v in rec.items()} for rec in records)
        return
    modes = sorted({m for r in rows for m in r.accuracy_by_mode})
    table = Table(title="questions per run, round and family", title_justify="left")
    for col in ("run", "round", "family", "generated", "accepted", "rate", "rejection reasons"):
        table.add_column(
            col, justify="right" if col in ("round", "generated", "accepted", "rate") else "left"
        )
    for mode in modes:
        table.add_column(f"acc {mode}", justify="right")
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in r.reject_reasons.items()) or "-"
        table.add_row(
            r.run,
            _fmt(r.round),
            r.family,
            str(r.generated),
            str(r.accepted),
            f"{r.acceptance:.0%}",
            reasons,
            *[_fmt(r.accuracy_by_mode.get(m)) for m in modes],
        )
    console.print(table if rows else Text("no questions match", style="dim"))


class Shape(StrEnum):
    openrlhf = "openrlhf"
    verl = "verl"
    easyr1 = "easyr1"
    trl = "trl"
    trl_dpo = "trl-dpo"
    openrlhf_dpo = "openrlhf-dpo"


class Factor(StrEnum):
    grounding = "grounding"
    answer = "answer"
    both = "both"


class LabelMode(StrEnum):
    auto = "auto"
    constructed = "constructed"
    consensus = "consensus"


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file, .jsonl or .parquet.")],
    shape: Annotated[
        Shape,
        typer.Option(
            "--shape",
            help="Row shape: openrlhf, verl, easyr1 or trl (questions); trl-dpo or openrlhf-dpo (the "
            "questions' preference pairs).",
        ),
    ] = Shape.openrlhf,
    factor: Annotated[
        list[Factor] | None,
        typer.Option("--factor", help="preference shapes: only pairs of this factor (repeatable)."),
    ] = None,
    label_mode: Annotated[
        LabelMode,
        typer.Option(
            "--label",
            help="auto (constructed for templates, consensus for model-written), constructed, consensus.",
        ),
    ] = LabelMode.auto,
    fps: Annotated[
        float, typer.Option("--fps", min=0.1, max=30, help="frames per second verl samples from each video")
    ] = 2.0,
    max_frames: Annotated[
        int, typer.Option("--max-frames", min=1, max=768, help="most frames verl samples from each video")
    ] = 32,
    db: DbOption = None,
    run: RunOpt = None,
    round_: RoundOpt = None,
    family: FamilyOpt = None,
    status: StatusOpt = Status.accepted,
    split: SplitOpt = Split.train,
    level_min: LevelMinOpt = None,
    level_max: LevelMaxOpt = None,
    video: VideoOpt = None,
    search: TextOpt = None,
) -> None:
    """Export questions (accepted training questions by default), or their preference pairs, as JSONL or
    Parquet for other trainers."""
    from store.preferences import list_preferences
    from videozero.export import PREFERENCE_SHAPES, VideoSampling, media_folder, write_export

    pairs = shape.value in PREFERENCE_SHAPES
    if factor and not pairs:
        raise VideozeroError(
            "--factor selects preference pairs: use it with --shape trl-dpo or openrlhf-dpo."
        )
    flt = _filter(run, round_, family, status, split, level_min, level_max, video, search)
    store = open_existing(db)
    with store.session() as session:
        if pairs:
            rows = list_preferences(session, flt, [f.value for f in factor or ()])
        else:
            rows = list(reversed(list_questions(session, flt, limit=None)))
    store.dispose()
    n = write_export(rows, out, shape.value, label_mode.value, VideoSampling(fps, max_frames))
    media = media_folder(out)
    shown = f"; their images in {media}" if media.exists() else ""
    what = "preference pairs" if pairs else "questions"
    console.print(f"wrote {n} {what} in the {shape.value} shape to {out}{shown}")
    if pairs and n == 0:
        console.print(
            "no preference pair matched: pairs are built by each round's preference stage "
            "(`videozero qa pairs --run NAME` builds them for a run made before it existed)."
        )


@app.command()
def pairs(
    run: Annotated[str, typer.Option("--run", help="The run whose rounds get their pairs.")],
    db: DbOption = None,
    per_question: Annotated[
        int | None,
        typer.Option("--per-question", min=0, max=16, help="pairs per question (default: the run's setting)"),
    ] = None,
) -> None:
    """Build (again) the factorized preference pairs of every round of a run from what the store holds: a
    run made before the preference stage existed gets its pairs; each round's are replaced, never doubled."""
    from store.runs import round_indices
    from videozero.solver.preference_pairs import FACTORS, factor_counts
    from videozero.stages.preference import build_round_pairs
    from videozero.stages.run import run_config_of, run_id_of

    store = open_existing(db)
    rid = run_id_of(store, run)
    config = run_config_of(store, rid)
    if config is None:
        raise VideozeroError(f"run {run!r} stored a configuration this videozero cannot read: rerun it.")
    if per_question is not None:
        config = config.model_copy(
            update={"preference": config.preference.model_copy(update={"pairs_per_question": per_question})}
        )
    table = Table(title=f"preference pairs of run {run}", title_justify="left")
    for col in ("round", "pairs", *FACTORS, "from rollouts"):
        table.add_column(col, justify="right")
    for index in round_indices(store, rid):
        built = build_round_pairs(store, config, rid, index)
        table.add_row(
            str(index),
            str(len(built)),
            *(str(n) for n in factor_counts(built).values()),
            str(sum(p.source == "rollout" for p in built)),
        )
    store.dispose()
    console.print(table)
