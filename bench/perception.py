"""Is the evidence in nano's inputs? Frozen-feature ceilings, projected-token geometry, a retrieval probe.

Run: python bench/perception.py --nano DIR [--scenes 4] [--probe-steps 40] [--matching-steps 100] [--out FILE]
On generated validation scenes (never held out) and the loop's template questions:
1. per family, the accuracy of a nearest-neighbour rule on the frozen EfficientNet-Lite0 features nano
   sees (pooled per frame, cosine): the query image's best-matching frame picks the option span
   (grounding), the clips' matched times give the order (ordering, arrow_of_time), the frame after the
   matched moment picks the option image (what_next). Beside it the family's best constant answer: a
   ceiling far above the constant says the information is in the features and the learner is the gap;
2. the geometry of the checkpoint's frame tokens against the LM's word embeddings (norm; mean cosine
   between frames, before and after the projector): tokens that all point one way are hard to tell apart;
3. with --probe-steps, a retrieval probe: LoRA supervised steps on "at which second is the Query image
   (a frame of the video) shown?", then greedy exact-frame accuracy on other scenes against chance;
4. with --matching-steps, the query-frame matching drills (`solver.matching`): full-LM steps from the
   checkpoint on drills of the warm-up scenes, then greedy accuracy on drills of the validation scenes
   beside the best constant letter.
Prints figures; never asserts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)

OPTION_SPAN = re.compile(r"^([A-D])\. from ([0-9.]+) s to ([0-9.]+) s", re.M)
PROBE_QUESTION = (
    "At which second of the video is the image labelled Query shown? "
    "Give only the number of seconds inside <answer></answer>."
)


def nearest_neighbour_answer(question, embed) -> str | None:
    """The answer a cosine nearest-neighbour rule on frozen frame features gives (None: no rule for
    the family). `embed(frames)` returns unit feature vectors [T, D]."""
    import numpy as np
    import torch

    request = question.request
    frames = embed(request.video.frames)
    images = {label: embed(image[None], cache=False)[0] for label, image in request.images}

    def matched_position(label: str) -> float:  # soft argmax over frames, in frame units
        weights = torch.softmax((frames @ images[label]) * 50, 0)
        return float((weights * torch.arange(len(frames))).sum())

    if question.family == "grounding":
        t = float(np.asarray(request.video.timestamps)[int((frames @ images["Query"]).argmax())])
        options = OPTION_SPAN.findall(request.question)

        def gap(o: tuple[str, str, str]) -> float:  # 0 inside the option's span, else the distance to it
            start, end = float(o[1]), float(o[2])
            return 0.0 if start <= t <= end else min(abs(t - start), abs(t - end))

        return min(options, key=gap)[0] if options else None
    if question.family == "what_next":
        after = frames[min(int((frames @ images["Moment"]).argmax()) + 1, len(frames) - 1)]
        options = [label for label in images if label.startswith("Option ")]
        return max(options, key=lambda label: float(images[label] @ after))[-1]
    clips = [label for label in images if label.startswith("Clip ")]
    if question.family == "arrow_of_time":
        clips.sort(key=lambda label: int(label.rsplit(" ", 1)[1]))
        slope = np.polyfit(np.arange(len(clips)), [matched_position(c) for c in clips], 1)[0]
        return "A" if slope >= 0 else "B"
    if question.family == "ordering":
        return ",".join(c.split()[1] for c in sorted(clips, key=matched_position))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nano", required=True, help="nano checkpoint directory (`videozero model init`)")
    parser.add_argument("--scenes", type=int, default=4, help="generated validation scenes")
    parser.add_argument("--per-video", type=int, default=40, help="template questions per scene")
    parser.add_argument("--probe-steps", type=int, default=0, help="retrieval probe steps (0: skip)")
    parser.add_argument("--probe-lr", type=float, default=5e-4)
    parser.add_argument("--matching-steps", type=int, default=0, help="matching drill steps (0: skip)")
    parser.add_argument("--out", help="also write the output to this file")
    args = parser.parse_args()

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from store import open_store
    from videozero.answer_format import parse_answer
    from videozero.evaluation.baselines import ScoredTruth, best_constant_answer
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.questioner.round_config import QuestionerConfig
    from videozero.questioner.supervision import template_targets
    from videozero.rewards import answer_accuracy
    from videozero.solver.warmup import supervised_steps
    from videozero.solver.warmup_config import WarmupConfig
    from videozero.stages.evidence import evidence_loader
    from videozero.stages.mine import mine_videos
    from videozero.video.frame_encoder import frame_encoder
    from videozero.video.samples import generated_scenes

    torch.set_num_threads(2)
    console = Console(record=True, width=140)
    work = Path(tempfile.mkdtemp(prefix="vz-bench-perception-"))
    store = open_store(f"sqlite:///{work / 'store.db'}")
    qcfg = QuestionerConfig(solver_max_frames=12)

    def questions(kind: str, count: int, seed: int) -> list:
        paths = generated_scenes(work, kind, count)
        mined = mine_videos(store, paths, cache_dir=work / "cache")
        ids = [r.video_id for r in mined.results if r.video_id is not None]
        return template_targets(
            evidence_loader(store, work / "cache"),
            ids,
            qcfg,
            args.per_video,
            seed=seed,
            cache_dir=work / "cache",
        )

    t = time.perf_counter()
    val = questions("validation_scene", args.scenes, seed=9)
    lm = load_model(args.nano, device="cpu")
    size = lm.model.config.frame_size
    encoder = frame_encoder()

    embedded: dict[int, torch.Tensor] = {}  # a video's frames are shared by all its questions: once each

    def embed(frames: np.ndarray, cache: bool = True) -> torch.Tensor:
        """Unit pooled features; a video's frames (alive in its questions, so their id is stable) once."""
        if cache and id(frames) in embedded:
            return embedded[id(frames)]
        pooled = encoder.feature_maps(np.stack(list(frames)), size).mean((2, 3))
        vectors = torch.nn.functional.normalize(pooled, dim=-1)
        if cache:
            embedded[id(frames)] = vectors
        return vectors

    by_family: dict[str, list[tuple[float, object]]] = defaultdict(list)
    for q in val:
        guess = nearest_neighbour_answer(q, embed)
        if guess is not None:
            by_family[q.family].append((answer_accuracy(guess, q.answer, q.kind), q))
    table = Table(
        title=f"Nearest-neighbour ceiling on frozen features ({args.scenes} validation scenes, {size} px)"
    )
    for col in ("family", "n", "nearest-neighbour accuracy", "best constant"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for family, scored in sorted(by_family.items()):
        truths = [
            ScoredTruth(i, q.family, q.kind, q.answer, tuple(q.evidence), q.duration)
            for i, (_, q) in enumerate(scored)
        ]
        acc = [a for a, _ in scored]
        se = float(np.std(acc, ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else float("nan")
        table.add_row(
            family, str(len(acc)), f"{np.mean(acc):.2f} ± {se:.2f}", f"{best_constant_answer(truths)[1]:.2f}"
        )
    console.print(table)
    console.print(f"({len(val)} template questions; {time.perf_counter() - t:.0f} s)")

    # 2. frame-token geometry
    frames = np.stack(list(val[0].request.video.frames))
    model = lm.model
    with torch.no_grad():
        cells = model.frame_cells(model.frame_pixels(frames))
        tokens = model.project(cells).unflatten(0, (len(cells), -1))

    def mean_cosine(x: torch.Tensor) -> float:
        x = torch.nn.functional.normalize(x.flatten(1), dim=-1)
        n = len(x)
        return float(((x @ x.T).sum() - n) / (n * (n - 1)))

    words = model.get_input_embeddings().weight
    console.print(
        f"frame tokens of one scene ({len(frames)} frames): norm {tokens.norm(dim=-1).mean():.2f} "
        f"(word embeddings {words.norm(dim=-1).mean():.2f}); mean cosine between frames: frozen cells "
        f"{mean_cosine(cells):.2f}, projected tokens {mean_cosine(tokens):.2f}"
    )

    # 3. retrieval probe
    if args.probe_steps:

        def probe_set(qs: list, per: int, seed: int) -> list:
            rng, seen, out = random.Random(seed), {}, []
            for q in qs:
                seen.setdefault(id(q.request.video.frames), q.request)
            for request in seen.values():
                for _ in range(per):
                    k = rng.randrange(len(request.video.frames))
                    probe = replace(
                        request, question=PROBE_QUESTION, images=(("Query", request.video.frames[k]),)
                    )
                    out.append((probe, k))
            return out

        train = probe_set(questions("warmup_scene", 16, seed=0), 24, seed=0)
        held = probe_set(val, 12, seed=1)
        t = time.perf_counter()
        report = supervised_steps(
            lm,
            [r for r, _ in train],
            [f"<answer>{r.video.timestamps[k]:.1f}</answer>" for r, k in train],
            WarmupConfig(steps=args.probe_steps, lr=args.probe_lr, micro_batch_size=4),
        )
        outs = TransformersEngine(lm, 16).generate([r for r, _ in held], qcfg.solver_sampling.greedy)
        hits = []
        for (request, k), out in zip(held, outs, strict=True):
            said = parse_answer(out[0].text, require_evidence=False).answer
            try:
                seconds = float(said or "nan")
            except ValueError:
                seconds = math.nan
            stamps = np.asarray(request.video.timestamps)
            hits.append(not math.isnan(seconds) and int(np.abs(stamps - seconds).argmin()) == k)
        answers = {o[0].text for o in outs}
        console.print(
            f"retrieval probe: {report.steps} LoRA steps x {report.examples // max(1, report.steps)} "
            f"({report.seconds:.0f} s), loss {report.first_loss:.2f} -> {report.last_loss:.2f}; exact-frame "
            f"accuracy {np.mean(hits):.3f} ± {np.std(hits, ddof=1) / np.sqrt(len(hits)):.3f} on {len(held)} (chance {1 / len(held[0][0].video.frames):.3f}); "
            f"{len(answers)} distinct answers"
        )
    # 4. matching drills
    if args.matching_steps:
        from collections import Counter

        from videozero.solver.matching import matching_drills
        from videozero.solver.warmup import matching_steps
        from videozero.solver.warmup_config import MatchingConfig
        from videozero.stages.evidence import load_video_evidence

        def evidence(kind: str, count: int) -> list:
            mined = mine_videos(store, generated_scenes(work, kind, count), cache_dir=work / "cache")
            ids = [r.video_id for r in mined.results if r.video_id is not None]
            return [load_video_evidence(store, v, work / "cache") for v in ids]

        m = MatchingConfig(steps=args.matching_steps)
        train = matching_drills(evidence("warmup_scene", 16), m.drills, m, seed=0)
        held = matching_drills(evidence("validation_scene", args.scenes), 200, m, seed=1)
        lm = load_model(args.nano, device="cpu")  # from the checkpoint, not after the retrieval probe
        report = matching_steps(lm, train, WarmupConfig(lora=None, matching=m))
        outs = TransformersEngine(lm, 16).generate([r for r, _ in held], qcfg.solver_sampling.greedy)
        said = [parse_answer(o[0].text, require_evidence=False).answer for o in outs]
        hits = np.array([a == t[len("<answer>")] for a, (_, t) in zip(said, held, strict=True)], float)
        letters = Counter(t[len("<answer>")] for _, t in held)
        console.print(
            f"matching drills: {report.steps} full-LM steps x {m.batch_size} ({report.seconds:.0f} s), loss "
            f"{report.first_loss:.2f} -> {report.last_loss:.2f}; accuracy on {len(held)} drills of the "
            f"validation scenes {hits.mean():.3f} ± {hits.std(ddof=1) / np.sqrt(len(hits)):.3f} (best constant "
            f"{letters.most_common(1)[0][1] / len(held):.3f}, chance {1 / m.options:.3f}); answers "
            f"{dict(Counter(said).most_common(3))}"
        )
    if args.out:
        Path(args.out).write_text(console.export_text())


if __name__ == "__main__":
    main()
