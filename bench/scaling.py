"""How one round's cost grows with the videos and questions: seconds per question at 1x, 2x and 4x.

Run: python bench/scaling.py --learner DIR [--videos 3] [--heldout 1] [--scales 1 2 4] [--out FILE]
At scale k a fresh run of the default preset mines k x `--videos` generated training scenes and
k x `--heldout` held-out scenes (questions per video as the preset sets them, so the questions grow
with the videos), then runs one round through `videozero.stages` without Prefect. The learner is
`--learner`, an already warmed-up checkpoint (e.g. `<workdir>/models/nano-warmup-*` of a
bench/round.py run), used as it is (no warm-up, no questioner warm-up), so that every scale starts from
the same model and the figures are the round's alone. Per scale it prints each stage's seconds and the
seconds per question of the stages whose work grows with the questions: proposing + verifying (per
proposed question) and evaluation (per held-out question), each as a ratio to 1x (linear growth: about
1.0). Solver and questioner GRPO run a fixed number of steps, so their seconds should stay flat.
Figures only: nothing here asserts a timing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learner", required=True, help="a warmed-up checkpoint directory")
    parser.add_argument("--videos", type=int, default=3, help="training scenes at 1x")
    parser.add_argument("--heldout", type=int, default=1, help="held-out scenes at 1x")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--workdir", help="work directory (default: a fresh temporary one)")
    parser.add_argument("--out", help="also write the output to this file")
    args = parser.parse_args()
    if not (Path(args.learner) / "config.json").is_file():
        sys.exit(f"--learner {args.learner} is not a checkpoint directory (no config.json): pass one.")

    import torch
    from rich.console import Console
    from rich.table import Table

    from videozero.run_config import load_run_config
    from videozero.stages.evaluate import eval_stage
    from videozero.stages.heldout import heldout_stage
    from videozero.stages.learner import learner_stage
    from videozero.stages.mine import mine_stage
    from videozero.stages.question import question_stage
    from videozero.stages.questioner import questioner_stage
    from videozero.stages.run import Lease, open_run_store
    from videozero.stages.solver import solver_stage
    from videozero.video.samples import generated_scenes

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vz-bench-scaling-"))
    console = Console(record=True, width=120)
    rows: list[dict] = []
    for k in args.scales:
        config = load_run_config(
            "default",
            run_name=f"scale-{k}",
            workdir=str(workdir),
            rounds=1,
            videos=[str(p) for p in generated_scenes(workdir, "scene", k * args.videos)],
            heldout_videos=[str(p) for p in generated_scenes(workdir, "heldout_scene", k * args.heldout)],
            learner={"model": str(Path(args.learner).resolve()), "warmup": {"steps": 0}},
            questioner_training={"warmup": {"steps": 0}},
        )
        store = open_run_store(config)
        lease = Lease(store, config)
        run_id = lease.run_id
        seconds: dict[str, float] = {}

        def timed(name: str, fn, *a):
            t = time.perf_counter()
            result = fn(*a)
            seconds[name] = time.perf_counter() - t  # noqa: B023 (called within this iteration)
            return result

        try:
            mined = timed("mine", mine_stage, config, run_id)
            timed("learner", learner_stage, config, run_id)
            heldout = timed("held-out questions", heldout_stage, config, run_id)
            asked = timed("question", question_stage, config, run_id, 0)
            timed("solver GRPO", solver_stage, config, run_id, 0)
            timed("questioner GRPO", questioner_stage, config, run_id, 0)
            timed("evaluation", eval_stage, config, run_id, 0)
        finally:
            lease.release("finished")
        rows.append(
            {
                "scale": k,
                "videos": mined.get("videos", 0),
                "proposed": asked.get("proposed", 0),
                "accepted": asked.get("accepted", 0),
                "heldout": heldout,
                "seconds": seconds,
            }
        )
        console.print(f"{k}x: {rows[-1]}")

    table = Table(title=f"one default round at {', '.join(f'{k}x' for k in args.scales)} ({workdir})")
    stages = ["mine", "question", "solver GRPO", "questioner GRPO", "evaluation"]
    for col in ["scale", "videos", "proposed / accepted", "held-out q", *(f"{s} s" for s in stages)]:
        table.add_column(col, justify="right")
    table.add_column("s / proposed q (x 1x)", justify="right")
    table.add_column("s / held-out q (x 1x)", justify="right")
    first = rows[0]
    for r in rows:
        s = r["seconds"]
        per_q = s["question"] / max(r["proposed"], 1)
        per_h = s["evaluation"] / max(r["heldout"], 1)
        ratio_q = per_q / (first["seconds"]["question"] / max(first["proposed"], 1))
        ratio_h = per_h / (first["seconds"]["evaluation"] / max(first["heldout"], 1))
        table.add_row(
            f"{r['scale']}x",
            str(r["videos"]),
            f"{r['proposed']} / {r['accepted']}",
            str(r["heldout"]),
            *(f"{s[name]:.1f}" for name in stages),
            f"{per_q:.2f} ({ratio_q:.2f})",
            f"{per_h:.2f} ({ratio_h:.2f})",
        )
    console.print(table)
    console.print(
        "evaluation also answers the fixed validation set and up to `eval.diagnostics_limit` accepted "
        "questions in every probe mode, so its seconds per held-out question fall a little as it grows; "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if args.out:
        Path(args.out).write_text(console.export_text())


if __name__ == "__main__":
    main()
