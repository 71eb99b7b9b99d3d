"""Which answer layout lets an LM carry an option's letter? A text-only probe of grounding's last hop.

Run: python bench/option_hop.py [--format key-after/line ...] [--spans shots] [--steps 40] [--heldout 100] [--threads 2]

Grounding with nano's frame recall is a text task: the prompt says the query image looks like the frame
at time t (`Query: <image> like 13.5`) and lists spans as options; the answer is the option whose span
holds t. This probe trains nano's LM (SmolLM2-135M, full, AdamW lr 1e-4 with warm-up and cosine decay,
batch 8, loss on the target only) on synthetic such questions (2-5 non-overlapping spans of 0.6-2.5 s in
a 20-30 s video, the time inside the answer's span) written in one layout, and scores greedy answers on
other such questions: the answer letter, and the option named by the written evidence span (is the span
found, whether or not its letter is carried). Layouts (question / think):

- letter-first/time: `B. from 11.6 s to 14.1 s` / `Query 13.5` (the rationale before key-after)
- letter-first/line: the same question / `Query 13.5: B. from 11.6 s to 14.1 s`
- letter-first/span-key: the same question / `Query 13.5: from 11.6 s to 14.1 s, B`
- key-after/line: `from 11.6 s to 14.1 s (B)` / `Query 13.5: from 11.6 s to 14.1 s (B)`
- key-after/compare: the same question / every option line in turn, each followed by where its span
  lies against the time: `Query 13.5: from 2.0 s to 4.1 s (A) before; from 11.6 s to 14.1 s (B) holds`

Options (`--spans`): `events`, 2-5 short spans of 0.6-2.5 s apart from each other (the time often shares
its whole seconds with its answer's start or end: a token match suffices), or `shots`, 2-5 of the 3.5-6.5 s
shots that cut the whole video, as grounding's options on the generated scenes (a token match rarely
suffices: the answer needs the time compared with the spans' numbers).

(question_prompt writes letter-first; the constructed rationale thinks letter-first/time.) What the probe
does not have: nano's frames, the other five families sharing the budget, and recall errors; a layout that
wins here has still to win in bench/learning.py (bench/results/README.md: key-after/line did not).

Every accuracy is printed with its standard error beside chance (the mean of 1/options) and the best
constant letter of the same scored questions. Minutes per layout at 40 steps on 2 cores; prints figures,
never asserts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()

LAYOUTS = (
    "letter-first/time",
    "letter-first/line",
    "letter-first/span-key",
    "key-after/line",
    "key-after/compare",
)


def item(rng, layout: str, kind: str = "events") -> tuple[str, str, str, list[tuple[str, float, float]]]:
    """(question, target, answer letter, [(letter, start, end)]) of one synthetic grounding question."""
    from videozero.answer_format import format_instruction, render_answer
    from videozero.question_prompt import option_letter, question_prompt
    from videozero.questioner.families import span_text

    k = int(rng.integers(2, 6))
    duration = float(rng.uniform(20, 30))
    if kind == "shots":  # k of the shots that cut the whole video, as grounding's options on real scenes
        cuts = [0.0]
        while cuts[-1] < duration - 3.5:
            cuts.append(round(min(cuts[-1] + float(rng.uniform(3.5, 6.5)), duration), 1))
        cuts[-1] = round(duration, 1)
        shots = list(itertools.pairwise(cuts))
        spans = [shots[i] for i in rng.choice(len(shots), min(k, len(shots)), replace=False)]
        k = len(spans)
    else:
        while True:
            starts = sorted(rng.uniform(0, duration - 3, k))
            spans = [
                (round(s, 1), round(min(s + ln, duration), 1))
                for s, ln in zip(starts, rng.uniform(0.6, 2.5, k), strict=True)
            ]
            if all(spans[i][1] < spans[i + 1][0] - 0.3 for i in range(k - 1)):
                break
        spans = [spans[i] for i in rng.permutation(k)]
    a = int(rng.integers(k))
    s, e = spans[a]
    margin = 0.1 if kind == "shots" else 0.0  # shots: the time strictly inside, as a frame of the shot
    t = round(float(rng.uniform(s + margin, e - margin)), 1)
    texts = [span_text(sp) for sp in spans]
    query = f"Query: <image> like {t}\nWhen is the scene in the image labelled Query shown in the video?"
    if layout.startswith("letter-first"):  # the solver's own question text
        question = question_prompt(query, texts)
        lines = [f"{option_letter(i)}. {x}" for i, x in enumerate(texts)]
    else:
        lines = [f"{x} ({option_letter(i)})" for i, x in enumerate(texts)]
        question = "\n".join([query, *lines, format_instruction("option")])
    think = {
        "letter-first/time": f"Query {t}",
        "letter-first/line": f"Query {t}: {lines[a]}",
        "letter-first/span-key": f"Query {t}: {texts[a]}, {option_letter(a)}",
        "key-after/line": f"Query {t}: {lines[a]}",
        "key-after/compare": f"Query {t}: "
        + "; ".join(f"{line} {relation(t, x, y)}" for line, (x, y) in zip(lines, spans, strict=True)),
    }[layout]
    target = render_answer([(s, e)], option_letter(a), think)
    return question, target, option_letter(a), [(option_letter(i), x, y) for i, (x, y) in enumerate(spans)]


def relation(t: float, start: float, end: float) -> str:
    """Where a span lies against the query's time: `before`, `holds` or `after`."""
    return "before" if end < t else "after" if start > t else "holds"


def token_match(scored: list) -> tuple[float, float, float]:
    """What matching tokens alone explains on `scored`: the share of questions whose time (`like 13.5`)
    has the whole seconds of its answer's start or end, the share where a distractor's has them, and the
    accuracy of answering the option(s) that match (ties split, no match: chance)."""
    answer = distractor = score = 0.0
    for question, _, letter, spans in scored:
        t = int(float(re.search(r"like ([\d.]+)", question).group(1)))
        matched = [o[0] for o in spans if t in (int(o[1]), int(o[2]))]
        answer += letter in matched
        distractor += any(m != letter for m in matched)
        score += (letter in matched) / len(matched) if matched else 1 / len(spans)
    n = len(scored)
    return answer / n, distractor / n, score / n


def se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / n)


def probe(layout: str, steps: int, heldout: int, kind: str) -> str:
    import numpy as np
    import torch

    from videozero.answer_format import parse_answer
    from videozero.models.nano.build import load_smollm2
    from videozero.models.vocabulary import shared_tokenizer
    from videozero.rewards import answer_accuracy

    torch.manual_seed(0)
    tok = shared_tokenizer()
    lm = load_smollm2()

    def chat(q: str) -> str:
        return tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )

    rng = np.random.default_rng(0)
    train = [item(rng, layout, kind) for _ in range(steps * 8)]
    scored = [item(np.random.default_rng(10_000 + i), layout, kind) for i in range(heldout)]
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-4, weight_decay=0.0)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * i / steps))
    )
    lm.train()
    started = time.perf_counter()
    for step in range(steps):
        opt.zero_grad()
        for q, target, _, _ in train[step * 8 : (step + 1) * 8]:
            p = tok(chat(q), add_special_tokens=False).input_ids
            y = tok(target + "<|im_end|>", add_special_tokens=False).input_ids
            hidden = lm.model(input_ids=torch.tensor([p + y])).last_hidden_state[0, len(p) - 1 : -1]
            (torch.nn.functional.cross_entropy(lm.lm_head(hidden), torch.tensor(y)) / 8).backward()
        opt.step()
        sched.step()
    per_step = (time.perf_counter() - started) / steps
    lm.eval()
    tok.padding_side = "left"
    letter = named = 0
    with torch.no_grad():
        for i in range(0, heldout, 20):
            chunk = scored[i : i + 20]
            batch = tok(
                [chat(q) for q, _, _, _ in chunk], return_tensors="pt", padding=True, add_special_tokens=False
            )
            out = lm.generate(**batch, max_new_tokens=192, do_sample=False, pad_token_id=tok.pad_token_id)
            for (_, _, answer, spans), row in zip(chunk, out, strict=True):
                text = tok.decode(row[batch.input_ids.shape[1] :], skip_special_tokens=True)
                parsed = parse_answer(text)  # the loop's own reading and scoring of an answer
                letter += answer_accuracy(parsed.answer, answer, "option")
                if parsed.spans:
                    s, e = parsed.spans[0]
                    named += min(spans, key=lambda o: abs(o[1] - s) + abs(o[2] - e))[0] == answer
    n = heldout
    return (
        f"{layout:<22} letter {letter / n:.2f} (SE {se(letter / n, n):.2f})   "
        f"option named by the evidence {named / n:.2f} (SE {se(named / n, n):.2f})   {per_step:.1f} s/step"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", action="append", choices=LAYOUTS, help="layouts to probe (default: all)")
    parser.add_argument("--steps", type=int, default=40, help="training steps of 8 questions")
    parser.add_argument("--heldout", type=int, default=100, help="scored questions")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--spans",
        choices=("events", "shots"),
        default="events",
        help="options: short separated spans (events) or shots cutting the whole video (shots)",
    )
    args = parser.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    scored = [item(np.random.default_rng(10_000 + i), LAYOUTS[0], args.spans) for i in range(args.heldout)]
    chance = sum(1 / len(spans) for *_, spans in scored) / len(scored)
    best, count = Counter(a for _, _, a, _ in scored).most_common(1)[0]
    answer, distractor, matched = token_match(scored)
    print(
        f"{args.heldout} scored questions, 2-5 options: chance {chance:.2f}, best constant letter "
        f"{best} {count / args.heldout:.2f}; {args.steps} steps x 8 on {args.threads} threads; "
        f"{args.spans}: the time's whole seconds are those of its answer's start or end in "
        f"{answer:.2f} of the questions, of a distractor's in {distractor:.2f}; answering by that token "
        f"match alone scores {matched:.2f}"
    )
    for layout in args.format or LAYOUTS:
        print(probe(layout, args.steps, args.heldout, args.spans), flush=True)


if __name__ == "__main__":
    main()
