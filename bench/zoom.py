"""Does temporal zoom-in help nano? Held-out accuracy and IoU for a single pass, coarse-to-fine inference
(Zoom-Zero) and the multi-turn zoom tool (VideoZoomer) at the same total frame budget, on a run's held-out
set and on the ASL grounding benchmark, with the time each costs; and GRPO with vs without the zoom-in
accuracy reward at equal steps.

Run: python bench/zoom.py [--preset default] [--workdir DIR] [--limit 96] [--asl-limit 24] [--zoom-frames 8]
     [--tool-fraction 0.5] [--threshold T] [--confidence probability] [--steps 12] [--zoom-weight 0.5]
     [--out FILE]

The run is the default preset's (nano; its warm-up with `--tool-fraction` of its targets also in the tool's
format, so that nano can use the tool at all), through the loop's own stages: mining, the learner's build
and warm-up, the fixed held-out questions (videos never trained on). The warm-up checkpoint is then asked
the held-out questions (`--limit` of them, spread over the set) with:
- a single pass at the run's frame budget F (12), and at F + Z frames (the budget the zoom modes may use);
- coarse-to-fine: the F-frame answer, and where it is unsure (`--confidence` under a threshold chosen on
  the run's validation questions, from its training videos, unless `--threshold` is given), the question
  again on at most Z frames inside its spans, the more confident answer kept;
- the zoom tool: the F-frame overview, one call of at most Z frames, then the answer (2 turns).
Every accuracy is shown beside the held-out set's best constant answer and with its standard error;
seconds are wall time on this machine. Then GRPO from the same warm-up on template questions of the
run's training videos, `--steps` steps each, with the zoom reward (weight `--zoom-weight`, the frozen
reference answering) and without, each scored by a single pass on the same held-out questions, with the
paired difference. Reuse `--workdir` to skip what is done (the stages skip finished work). Prints figures;
never asserts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt n)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=["default", "smoke"], help="smoke: a dry run")
    parser.add_argument("--workdir", help="work directory (default: a fresh temporary one)")
    parser.add_argument(
        "--limit", type=int, default=96, help="held-out questions asked, spread over the set (0: all)"
    )
    parser.add_argument("--asl-limit", type=int, default=24, help="ASL grounding items asked (0: none)")
    parser.add_argument("--zoom-frames", type=int, default=8, help="Z: frames a zoom may add")
    parser.add_argument("--tool-fraction", type=float, default=0.5, help="warm-up targets in the tool format")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="coarse-to-fine zooms under this (default: chosen on validation)",
    )
    parser.add_argument("--confidence", default="probability", choices=["probability", "agreement"])
    parser.add_argument("--steps", type=int, default=12, help="GRPO steps per arm (0: no training arms)")
    parser.add_argument("--zoom-weight", type=float, default=0.5, help="weight of the zoom-in reward")
    parser.add_argument("--per-video", type=int, default=16, help="template questions per training video")
    parser.add_argument("--out", help="also write the output to this file")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from bench.floor import gemm_gflops
    from store.checkpoints import checkpoint_of
    from store.runs import training_video_ids
    from videozero.evaluation.asl_grounding import build_asl_grounding
    from videozero.evaluation.baselines import constant_baselines
    from videozero.evaluation.benchmarks import benchmark_items
    from videozero.evaluation.heldout import answer_questions, heldout_truths, zoom_figures
    from videozero.evaluation.runner import evaluate_items
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.questioner.supervision import template_targets
    from videozero.rewards import answer_accuracy, temporal_iou
    from videozero.run_config import evaluation_settings, load_run_config
    from videozero.solver.grpo import GRPOTrainer
    from videozero.stages.evaluate import stored_questions
    from videozero.stages.evidence import evidence_loader
    from videozero.stages.heldout import heldout_stage
    from videozero.stages.learner import learner_stage
    from videozero.stages.mine import mine_stage
    from videozero.stages.run import Lease, open_run_store
    from videozero.video.cache import VideoCache
    from videozero.zoom_config import ZoomEvalSettings, ZoomRewardSettings, ZoomToolSettings

    torch.set_num_threads(2)
    gemm = gemm_gflops()
    console = Console(record=True, width=160)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vz-bench-zoom-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = workdir / "bench-zoom.yaml"
    settings.write_text(f"learner:\n  warmup:\n    tool_fraction: {args.tool_fraction}\n")
    Z = args.zoom_frames
    tool = ZoomToolSettings(max_turns=2, max_frames=Z)
    config = load_run_config(args.preset, settings, run_name="bench-zoom", workdir=str(workdir), rounds=1)
    config = config.model_copy(update={"solver": config.solver.model_copy(update={"tool": tool})})
    store = open_run_store(config)
    lease = Lease(store, config)
    run_id = lease.run_id
    started = time.perf_counter()
    try:
        mine_stage(config, run_id)
        learner = learner_stage(config, run_id)
        heldout_stage(config, run_id)
    finally:
        lease.release("finished")
    warm = checkpoint_of(store, learner["warmup"]).path
    console.print(
        f"run {config.run_name} in {workdir}: mined, warmed up ({args.tool_fraction:.0%} of the targets also "
        f"in the tool's format) and held-out questions made in {time.perf_counter() - started:.0f} s"
    )
    cache = VideoCache(workdir / "cache")
    base = evaluation_settings(config)
    F = base.max_frames
    with store.session() as session:
        questions = stored_questions(session, run_id, split="heldout")
    if args.limit and len(questions) > args.limit:  # spread over the set: every video and family
        questions = questions[:: math.ceil(len(questions) / args.limit)]
    baselines = constant_baselines(heldout_truths(questions))
    zoom_c2f = ZoomEvalSettings(
        mode="coarse_to_fine", confidence=args.confidence, threshold=1.0, max_frames=Z
    )
    lm = load_model(warm, device="cpu")
    engine = TransformersEngine(lm, 16)
    threshold = args.threshold
    if threshold is None:  # chosen on the run's validation questions (training videos), never the held-out
        with store.session() as session:
            validation = stored_questions(session, run_id, split="validation")
        probe: list[dict] = []
        cfg = base.model_copy(update={"zoom": zoom_c2f})  # threshold 1: every answer zoomed and recorded
        answer_questions(engine, [(q, "coarse_to_fine") for q in validation], cfg, cache, probe.extend)
        truth = {q.id: q for q in validation}

        def accuracy_at(t: float) -> float:
            right = 0.0
            for r in probe:
                rec, q = r["turns"], truth[r["question_id"]]
                zoomed = (
                    rec["coarse"]["confidence"] < t
                    and rec["zoom"]["confidence"] > rec["coarse"]["confidence"]
                )
                right += answer_accuracy(
                    (rec["zoom"] if zoomed else rec["coarse"])["answer"], q.answer, q.kind
                )
            return right / max(1, len(probe))

        candidates = sorted({0.0, 1.0} | {r["turns"]["coarse"]["confidence"] + 1e-9 for r in probe})
        threshold = min(candidates, key=lambda t: (-accuracy_at(t), t))  # ties: the fewer zooms
        console.print(
            f"coarse-to-fine threshold {threshold:.3f} chosen on {len(probe)} validation questions (training "
            f"videos): accuracy {accuracy_at(threshold):.3f} there, {accuracy_at(0.0):.3f} never zooming, "
            f"{accuracy_at(1.0 + 1e-6):.3f} always zooming"
        )
    zoom_c2f = zoom_c2f.model_copy(update={"threshold": min(1.0, threshold)})
    arms = [
        (f"single pass, {F} frames", base, "full"),
        (f"single pass, {F + Z} frames", base.model_copy(update={"max_frames": F + Z}), "full"),
        (f"coarse-to-fine, {F} + <={Z}", base.model_copy(update={"zoom": zoom_c2f}), "coarse_to_fine"),
        (
            f"zoom tool, {F} + <={Z}",
            base.model_copy(update={"zoom": ZoomEvalSettings(mode="zoom_tool", tool=tool)}),
            "zoom_tool",
        ),
    ]

    def scored(rows: list[dict]) -> tuple[list[float], list[float], float]:
        by_id = {q.id: q for q in questions}
        accs, ious = [], []
        for r in rows:
            q = by_id[r["question_id"]]
            accs.append(answer_accuracy(r["parsed_answer"], q.answer, q.kind))
            if q.evidence:
                ious.append(temporal_iou([tuple(s) for s in r["parsed_spans"] or []], q.evidence))
        return accs, ious, sum(bool(r["format_ok"]) for r in rows) / max(1, len(rows))

    def heldout(engine, cfg, mode) -> tuple[list[dict], float]:
        rows: list[dict] = []
        t = time.perf_counter()
        answer_questions(engine, [(q, mode) for q in questions], cfg, cache, rows.extend)
        return rows, time.perf_counter() - t

    table = Table(
        title=f"held-out: {len(questions)} questions of run {config.run_name} (videos never trained on), "
        f"nano after its warm-up; constant answer {baselines.get('constant_accuracy', float('nan')):.3f}, "
        f"constant span mIoU {baselines.get('constant_mIoU', float('nan')):.3f}"
    )
    for col in ("mode", "accuracy ± SE", "mIoU ± SE", "format", "seconds", "extra vs F", "zoom"):
        table.add_column(col, justify="left" if col in ("mode", "zoom") else "right")
    first_seconds = None
    for label, cfg, mode in arms:
        rows, seconds = heldout(engine, cfg, mode)
        accs, ious, fmt = scored(rows)
        acc, acc_se = mean_se(accs)
        iou, iou_se = mean_se(ious)
        first_seconds = first_seconds or seconds
        zoom = zoom_figures([r["turns"] for r in rows])
        table.add_row(
            label,
            f"{acc:.3f} ± {acc_se:.3f}",
            f"{iou:.3f} ± {iou_se:.3f}",
            f"{fmt:.0%}",
            f"{seconds:.0f}",
            f"{seconds / first_seconds:.2f}x",
            ", ".join(f"{k} {v:.2f}" for k, v in zoom.items()),
        )
        console.print(f"  {label}: {seconds:.0f} s")
    console.print(table)

    if args.asl_limit:
        asl = build_asl_grounding(workdir / "asl")
        items, summary, _ = benchmark_items("asl_grounding", asl.items_path, None, args.asl_limit)
        atable = Table(title=f"ASL grounding benchmark: {len(items)} items ({summary}), same checkpoint")
        for col in ("mode", "mIoU", "R1@0.3", "R1@0.5", "R1@0.7", "seconds", "zoom"):
            atable.add_column(col, justify="left" if col in ("mode", "zoom") else "right")
        for label, cfg, _ in arms:
            records: dict = {}
            t = time.perf_counter()
            figures, _, _ = evaluate_items(engine, "asl_grounding", items, cfg, cache, records=records)
            seconds = time.perf_counter() - t
            zoom = zoom_figures(list(records.values()))
            atable.add_row(
                label,
                *(f"{figures.get(k, float('nan')):.3f}" for k in ("mIoU", "R1@0.3", "R1@0.5", "R1@0.7")),
                f"{seconds:.0f}",
                ", ".join(f"{k} {v:.2f}" for k, v in zoom.items()),
            )
        console.print(atable)
    del engine, lm

    if args.steps:
        train_q = template_targets(
            evidence_loader(store, workdir / "cache"),
            training_video_ids(store, run_id),
            config.questioner,
            args.per_video,
            seed=1,
            cache_dir=workdir / "cache",
        )
        gtable = Table(
            title=f"GRPO from the warm-up, {args.steps} steps of {config.solver.prompts_per_step} questions x "
            f"{config.solver.group_size} rollouts ({len(train_q)} template questions of the training videos), "
            f"scored by a single pass on the same held-out questions"
        )
        for col in ("solver", "accuracy ± SE", "mIoU ± SE", "s / step", "of which zoom", "mean zoom-in acc."):
            gtable.add_column(col, justify="left" if col == "solver" else "right")
        per_question: dict[str, list[float]] = {}
        for label, weight in (
            ("without the zoom reward", 0.0),
            (f"zoom reward x {args.zoom_weight}", args.zoom_weight),
        ):
            lm = load_model(warm, device="cpu")
            solver = config.solver.model_copy(
                update={
                    "tool": None,
                    "weights": config.solver.weights.model_copy(update={"zoom": weight}),
                    "zoom": ZoomRewardSettings(policy="reference", max_frames=Z),
                }
            )
            trainer = GRPOTrainer(lm, solver)
            t = time.perf_counter()
            report = trainer.train(train_q, args.steps)
            step_s = (time.perf_counter() - t) / max(1, args.steps)
            zoom_s = sum(s.seconds_zoom for s in report.steps) / max(1, args.steps)
            zooms = [s.zoom for s in report.steps if s.zoom is not None]
            rows, _ = heldout(TransformersEngine(lm, 16), base, "full")
            accs, ious, _ = scored(sorted(rows, key=lambda r: r["question_id"]))
            per_question[label] = accs
            acc, acc_se = mean_se(accs)
            iou, iou_se = mean_se(ious)
            gtable.add_row(
                label,
                f"{acc:.3f} ± {acc_se:.3f}",
                f"{iou:.3f} ± {iou_se:.3f}",
                f"{step_s:.0f}",
                f"{zoom_s:.0f}",
                f"{sum(zooms) / len(zooms):.2f}" if zooms else "-",
            )
            del trainer, lm
        console.print(gtable)
        a, b = per_question.values()
        diff, diff_se = mean_se([y - x for x, y in zip(a, b, strict=True)])
        console.print(f"paired accuracy change with the zoom reward: {diff:+.3f} ± {diff_se:.3f} (SE)")

    console.print(
        f"floor: fp32 GEMM {gemm:.0f} GFLOP/s on {torch.get_num_threads()} threads; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if args.out:
        Path(args.out).write_text(console.export_text())


if __name__ == "__main__":
    main()
