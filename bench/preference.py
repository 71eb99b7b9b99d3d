"""Does the preference stage help? Held-out accuracy and IoU of a run's solver after more GRPO vs after
factorized DPO on the run's preference pairs, at equal wall time, per factor.

Run: python bench/preference.py --db sqlite:///videozero_work/store.db [--run default] [--start round:1]
     [--seconds 90] [--arms grpo,grounding,answer,both,all] [--beta B] [--lr LR] [--reference model|none]
     [--workdir DIR]
     [--limit N] [--out FILE]

Works on a copy of the store (the user's store is never written): the run's preference pairs are built
for every finished round (as the preference stage does), then each arm starts from the same checkpoint
(default: the run's last round) and trains for the same wall time on the same rounds' accepted training
questions: `grpo` continues the solver's GRPO (the run's own settings), `grounding` / `answer` / `both`
run DPO on that factor's pairs only, `all` on every pair. Each result is scored greedily on the run's
held-out questions and on its validation questions (training videos: recipes are chosen there, never on
the held-out set); accuracy ± binomial SE and mIoU ± SE beside the held-out set's best constant answer and
span, and each arm's paired change against the starting checkpoint ± SE, on both sets. Wall time includes DPO's
reference pass. Prints figures; never asserts them. Run it alone: two cores are easily disturbed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min; 2 cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the run's store (SQLite URL); it is copied, not written")
    parser.add_argument("--run", default=None, help="run name (default: the store's only run)")
    parser.add_argument("--start", default=None, help="round:N to start from (default: the last round)")
    parser.add_argument("--seconds", type=float, default=90.0, help="wall time of every arm's training")
    parser.add_argument("--arms", default="grpo,grounding,answer,both,all")
    parser.add_argument("--beta", type=float, default=None, help="DPO beta (default: the run's)")
    parser.add_argument("--lr", type=float, default=None, help="DPO learning rate (default: the run's)")
    parser.add_argument("--reference", choices=("model", "none"), default=None, help="default: the run's")
    parser.add_argument("--workdir", default=None, help="the run's workdir (default: the store's folder)")
    parser.add_argument("--limit", type=int, default=None, help="score only this many questions (a trial)")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()

    import torch
    from sqlalchemy import select

    from store import open_store
    from store.attempts import greedy_answers
    from store.checkpoints import checkpoint_row
    from store.engine import sqlite_file
    from store.preferences import list_preferences
    from store.queries import QuestionFilter
    from store.tables import Checkpoint, Round, Run
    from videozero.evaluation.baselines import constant_baselines, paired_change
    from videozero.evaluation.heldout import heldout_truths, question_scores
    from videozero.models.engines.transformers_engine import load_engine
    from videozero.models.loader import load_model
    from videozero.run_config import evaluation_settings, stored_run_config
    from videozero.solver.dpo import DPOTrainer, PairExample
    from videozero.solver.grpo import GRPOTrainer
    from videozero.stages.evaluate import evaluate_heldout, stored_questions
    from videozero.stages.preference import build_round_pairs
    from videozero.stages.run import round_id_of
    from videozero.stages.solver import accepted_solver_questions, solver_settings

    torch.set_num_threads(os.cpu_count() or 1)
    from sqlalchemy.engine import make_url

    source = sqlite_file(make_url(args.db))
    if source is None or not source.is_file():
        sys.exit(f"{args.db} is not a SQLite store file: give the run's sqlite:/// URL.")
    work = Path(tempfile.mkdtemp(prefix="bench-preference-"))
    copy = work / "store.db"
    shutil.copy(source, copy)
    store = open_store(f"sqlite:///{copy}", create=False)
    with store.session() as s:
        runs = s.execute(select(Run.id, Run.name, Run.config)).all()
        run = next((r for r in runs if r.name == args.run), None) if args.run else runs[-1]
        if run is None:
            sys.exit(f"no run {args.run!r} in the store (its runs: {', '.join(r.name for r in runs)}).")
        rounds = [
            i
            for (i,) in s.execute(
                select(Round.round_index).where(Round.run_id == run.id).order_by(Round.round_index)
            )
        ]
        ckpts = s.execute(
            select(Checkpoint.id, Checkpoint.path, Round.round_index)
            .join(Round, Round.id == Checkpoint.round_id)
            .where(Checkpoint.run_id == run.id, Checkpoint.role == "solver", Checkpoint.stage == "grpo")
        ).all()
    config = stored_run_config(run.config)
    if config is None:
        sys.exit(f"run {run.name!r} stored a configuration this videozero cannot read.")
    config = config.model_copy(update={"workdir": str(Path(args.workdir or source.parent).resolve())})
    start_round = int(args.start.removeprefix("round:")) if args.start else max(r for _, _, r in ckpts)
    start = max((c for c in ckpts if c.round_index == start_round), key=lambda c: c.id)
    given = {"beta": args.beta, "lr": args.lr, "reference": args.reference}
    pc = config.preference.model_copy(update={k: v for k, v in given.items() if v is not None})
    cache = config.workdir_path / "cache"

    # the pairs and questions of every round up to the start's
    used = [r for r in rounds if r <= start_round]
    questions, examples = [], {}
    for r in used:
        build_round_pairs(store, config, run.id, r)
        round_id = round_id_of(store, run.id, r)
        qs = accepted_solver_questions(
            store, run.id, round_id, config.questioner.solver_sampling.sampling, cache
        )
        questions += qs
        requests = {q.question_id: q.request for q in qs}
        with store.session() as s:
            for p in list_preferences(s, QuestionFilter(run=run.name, round=r)):
                if p["id"] in requests:
                    examples.setdefault(p["factor"], []).append(
                        PairExample(requests[p["id"]], p["chosen"], p["rejected"], p["factor"])
                    )
    counts = {f: len(v) for f, v in examples.items()}
    examples["all"] = [x for f in ("grounding", "answer", "both") for x in examples.get(f, [])]

    ecfg = evaluation_settings(config)
    if args.limit:
        ecfg = ecfg.model_copy(update={"limit": args.limit})
    with store.session() as s:
        heldout = stored_questions(s, run.id, split="heldout", limit=ecfg.limit)
        validation = stored_questions(s, run.id, split="validation", limit=ecfg.limit)
    consts = constant_baselines(heldout_truths(heldout))

    def score(checkpoint_id: int, path: str) -> dict:
        engine = load_engine(path)
        out = {}
        for split, qs in (("heldout", heldout), ("validation", validation)):
            evaluate_heldout(engine, store, run.id, checkpoint_id, ecfg, split=split)
            with store.session() as s:
                out[split] = question_scores(qs, greedy_answers(s, checkpoint_id, [q.id for q in qs]))
        del engine
        return out

    def train(arm: str, out: Path) -> tuple[str, int, float]:
        """Train the start for `args.seconds` as `arm`; (path, steps, seconds)."""
        from videozero.solver.training import save_checkpoint

        lm = load_model(start.path, device="auto")
        began = time.perf_counter()
        steps = 0
        if arm == "grpo":
            trainer = GRPOTrainer(lm, solver_settings(config, start_round + 1000))
            while time.perf_counter() - began < args.seconds:
                trainer.train(questions, steps=1)
                steps += 1
        else:
            trainer = DPOTrainer(lm, pc.model_copy(update={"seed": config.seed * 1019 + start_round}))
            steps = len(trainer.train(examples[arm], steps=10_000, seconds=args.seconds))
        seconds = time.perf_counter() - began
        return str(save_checkpoint(trainer.lm, out)), steps, seconds

    lines = [
        f"bench/preference.py: run {run.name!r}, start round {start_round} (checkpoint {start.id}), "
        f"{len(questions)} accepted training questions of rounds {used}; pairs {counts}; "
        f"beta {pc.beta}, lr {pc.lr:g}, answer weight {pc.answer_weight}, grounding weight {pc.grounding_weight}, "
        f"reference {pc.reference}; {args.seconds:.0f} s of training per arm; load {load_average()}",
        f"held-out: {len(heldout)} questions, best constant answer {consts.get('constant_accuracy', math.nan):.3f}, "
        f"best constant span mIoU {consts.get('constant_mIoU', math.nan):.3f}; validation: {len(validation)}",
    ]
    print("\n".join(lines), flush=True)
    results = {"start": (start.id, score(start.id, start.path), 0, 0.0)}
    for arm in [a.strip() for a in args.arms.split(",") if a.strip()]:
        if arm != "grpo" and not examples.get(arm):
            print(f"{arm}: no pairs, skipped", flush=True)
            continue
        path, steps, seconds = train(arm, work / arm)
        cid = checkpoint_row(store, path, f"bench-{arm}"[:16], run_id=run.id, base_model=start.path)
        results[arm] = (cid, score(cid, path), steps, seconds)
        print(f"{arm}: {steps} steps in {seconds:.0f} s", flush=True)

    def figures(scores: dict) -> tuple[float, float, float, float, int]:
        acc = [a for a, _ in scores.values()]
        ious = [i for _, i in scores.values() if i is not None]
        n = len(acc)
        p = sum(acc) / n if n else math.nan
        m = sum(ious) / len(ious) if ious else math.nan
        sd = math.sqrt(sum((x - m) ** 2 for x in ious) / (len(ious) - 1)) if len(ious) > 1 else 0.0
        return p, math.sqrt(p * (1 - p) / n) if n else math.nan, m, sd / math.sqrt(max(1, len(ious))), n

    table = []
    base = results["start"][1]
    for split, title in (
        ("heldout", "held-out"),
        ("validation", "validation (training videos: choose here)"),
    ):
        table += [
            "",
            title,
            f"{'arm':<10} {'steps':>5} {'seconds':>7}  {'accuracy':>15} {'Δ acc vs start':>16}  "
            f"{'mIoU':>15} {'Δ IoU vs start':>16}",
        ]
        for arm, (_, scores, steps, seconds) in results.items():
            found, ref = scores[split], base[split]
            acc, acc_se, miou, iou_se, _ = figures(found)
            d_acc = paired_change([(found[q][0], ref[q][0]) for q in found if q in ref])
            d_iou = paired_change(
                [(found[q][1], ref[q][1]) for q in found if q in ref and found[q][1] is not None]
            )
            table.append(
                f"{arm:<10} {steps:>5} {seconds:>7.0f}  {acc:>7.3f} ± {acc_se:.3f} "
                f"{str(d_acc) if arm != 'start' else '-':>16}  {miou:>7.3f} ± {iou_se:.3f} "
                f"{str(d_iou) if arm != 'start' else '-':>16}"
            )
    table.append(f"(load average at the end: {load_average()})")
    print("\n".join(table), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines + table) + "\n")
    store.dispose()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
