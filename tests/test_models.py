"""Local checkpoints build, save, reload through the one loading path, and generate from real and generated clips."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.model_builds import generated_clip, nano_dir, noise_frames, real_clip_path, tiny_qwen_dir
from videozero.errors import VideozeroError
from videozero.models.engines.base import SamplingParams
from videozero.models.engines.transformers_engine import TransformersEngine
from videozero.models.loader import load_model
from videozero.models.prompt import Request, VideoInput, build_batch
from videozero.models.qwen_video import patch_times
from videozero.video.decode import SamplingConfig, decode_video

SAMPLING = SamplingConfig(fps=1.0, max_frames=6, short_side=112)


def _clips() -> list[VideoInput]:
    path, _ = generated_clip()
    return [
        VideoInput.from_clip(decode_video(real_clip_path(), SAMPLING)),
        VideoInput.from_clip(decode_video(path, SAMPLING)),
    ]


def _generate_from_clips(model_dir) -> None:
    lm = load_model(model_dir, device="cpu")
    clips = _clips()
    requests = [Request("What happens in this video?", clip) for clip in clips]
    out = TransformersEngine(lm, batch_size=2).generate(
        requests, SamplingParams(n=2, max_new_tokens=6, seed=0)
    )
    assert [len(samples) for samples in out] == [2, 2]
    for samples in out:
        for sample in samples:
            assert 1 <= len(sample.token_ids) <= 6 and isinstance(sample.text, str)
    # what the model saw is the clips' true times
    text = lm.tokenizer.decode(build_batch(lm, requests[1:]).input_ids[0])
    times = patch_times(clips[1].timestamps, lm.vision.temporal_patch_size)
    assert len(times) >= 3 and all(f"{t:.1f}" in text for t in times)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_tiny_qwen_builds_reloads_and_generates(family: str) -> None:
    path = tiny_qwen_dir(family)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (path / name).is_file()
    lm = load_model(path)
    assert lm.family == family and lm.model.config.model_type == family
    assert sum(p.numel() for p in lm.model.parameters()) < 5_000_000
    _generate_from_clips(path)


def test_nano_builds_reloads_and_generates() -> None:
    path = nano_dir()
    lm = load_model(path)
    assert lm.family == "nano" and type(lm.model).__name__ == "NanoForConditionalGeneration"
    # the LM's output head stays tied to its input embeddings through save and reload
    lm_head = lm.model.language_model.lm_head.weight
    assert lm_head.data_ptr() == lm.model.get_input_embeddings().weight.data_ptr()
    assert lm_head.shape[0] == len(lm.tokenizer)
    _generate_from_clips(path)


def test_nano_reload_is_exact_and_keeps_pretrained_language() -> None:
    from videozero.models.nano.build import load_smollm2

    lm = load_model(nano_dir())
    smol = load_smollm2()
    ids = lm.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        ours = lm.model(input_ids=ids).logits[0, -1, : smol.config.vocab_size]
        ref = smol(input_ids=ids).logits[0, -1]
    assert torch.allclose(ours, ref, atol=1e-4)
    assert "Paris" in lm.tokenizer.decode(int(ours.argmax()))


def test_nano_alignment_of_zero_steps_leaves_the_projector_as_initialised() -> None:
    from videozero.models.nano.build import align_projector, alignment_frames

    model = load_model(nano_dir()).model
    before = {k: v.clone() for k, v in model.projector.state_dict().items()}
    report = align_projector(model, alignment_frames(model, per_clip=2, generated=4), steps=0, evaluate=False)
    assert report.steps == 0
    assert all(torch.equal(before[k], v) for k, v in model.projector.state_dict().items())


def test_nano_frame_tokens_change_the_output() -> None:
    lm = load_model(nano_dir())
    frames = np.zeros((2, 112, 112, 3), dtype=np.uint8)
    dark = build_batch(lm, [Request("Colour?", VideoInput(frames, np.array([0.0, 0.5])))])
    light = build_batch(lm, [Request("Colour?", VideoInput(frames + 255, np.array([0.0, 0.5])))])
    with torch.no_grad():
        a = lm.model(**dark.inputs).logits[0, -1]
        b = lm.model(**light.inputs).logits[0, -1]
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="placeholders"):
        lm.model(input_ids=dark.input_ids)


def test_loader_errors_are_one_clear_sentence(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        VideozeroError, match=r"^model 'no-such-org/no-such-model' is neither a local directory"
    ):
        load_model("no-such-org/no-such-model")
    with pytest.raises(VideozeroError, match=r"has no config\.json"):
        load_model(tmp_path)
    with pytest.raises(VideozeroError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(VideozeroError, match="'bert' model; supported are"):
        load_model(tmp_path)
    with pytest.raises(VideozeroError, match="dtype"):
        load_model(tiny_qwen_dir("qwen3_vl"), dtype="float8")


def test_lora_attaches_through_the_loader() -> None:
    lm = load_model(
        tiny_qwen_dir("qwen3_vl"), lora={"r": 4, "target_modules": ["q_proj", "v_proj"]}, trainable=True
    )
    trainable = [n for n, p in lm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_cli_model_init_tiny_qwen(tmp_path) -> None:
    from videozero.cli.app import app

    result = CliRunner().invoke(
        app, ["model", "init", "--kind", "tiny-qwen", "--out", str(tmp_path / "tq"), "--family", "qwen2_5_vl"]
    )
    assert result.exit_code == 0, result.output
    assert "qwen2_5_vl" in result.output and (tmp_path / "tq" / "config.json").is_file()
    assert load_model(tmp_path / "tq").family == "qwen2_5_vl"


def test_cli_reports_a_bad_model_dir_in_one_sentence(tmp_path) -> None:
    import subprocess
    import sys

    for target, message in (
        (tmp_path, "has no config.json"),
        ("no-org/no-model", "neither a local directory"),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "videozero.cli.app", "model", "info", str(target)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert run.returncode == 1
        assert message in run.stderr and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) <= 3  # one sentence, soft-wrapped at most


def test_cli_model_info(tmp_path) -> None:
    from videozero.cli.app import app

    result = CliRunner().invoke(app, ["model", "info", str(tiny_qwen_dir("qwen3_vl"))])
    assert result.exit_code == 0, result.output
    assert "qwen3_vl" in result.output and "16 px" in result.output


def test_nano_frames_start_with_their_visual_words() -> None:
    """Each frame's first tokens are the embeddings of the frame encoder's own top ImageNet classes:
    the same frame shown as a query image and in the video reads the same there, a different one not."""
    from videozero.models.nano.build import class_name_embeddings
    from videozero.video.frame_encoder import frame_encoder, imagenet_classes

    lm = load_model(nano_dir(visual_words=2))
    model, config = lm.model, lm.model.config
    assert config.visual_words == 2 and config.tokens_per_frame == 2 + config.frame_grid**2
    path, _ = generated_clip()
    clip = VideoInput.from_clip(decode_video(path, SAMPLING))
    request = Request("Which second shows the Query image?", clip, images=(("Query", clip.frames[2]),))
    batch = build_batch(lm, [request])
    text = lm.tokenizer.decode(batch.input_ids[0])
    assert text.count("<|image_pad|>") == config.tokens_per_frame
    assert text.count("<|video_pad|>") == config.tokens_per_frame * len(clip)
    # the video first, each frame's time after its visual words, then the query image
    video = "<|video_pad|>" * 2 + f"{clip.timestamps[1]:.1f}" + "<|video_pad|>" * config.frame_grid**2
    assert video in text and text.index("<|video_pad|>") < text.index("Query: ")

    pixels = model.frame_pixels(clip.frames)
    cells = model.frame_cells(pixels)
    words = model.visual_word_ids(cells)
    with torch.no_grad():
        net = frame_encoder().net
        pooled = torch.nn.functional.adaptive_avg_pool2d(net.extract_features(pixels), config.frame_grid)
        logits = net._fc(pooled.mean((2, 3)))
    assert torch.equal(words, logits.topk(2, -1).indices)  # the encoder's own top classes, best first
    with torch.no_grad():
        tokens = model.project(cells).view(len(clip), config.tokens_per_frame, -1)
        query = model.frame_tokens(model.frame_pixels(clip.frames[2:3]))
    assert torch.allclose(query[:2], tokens[2, :2])
    assert torch.equal(tokens[2, 0], model.projector.words.weight[words[2, 0]])
    # a visual word starts as the mean embedding of its class name's tokens (the build's alignment
    # trains the cells only, so a built nano still holds them)
    names = class_name_embeddings(model, lm.tokenizer)
    assert names.shape == (len(imagenet_classes()), model.config.text_config.hidden_size)
    assert torch.allclose(model.projector.words.weight, names)


def test_nano_without_visual_words_loads_as_before(tmp_path) -> None:
    """A checkpoint saved before visual words (its config names none) reads frames as grid cells alone,
    with its query images before the video as before."""
    import copy
    import json

    from videozero.models.nano.modeling_nano import NanoForConditionalGeneration

    lm = load_model(nano_dir(visual_words=2))
    config = copy.deepcopy(lm.model.config)
    config.visual_words = 0
    before = NanoForConditionalGeneration(config)
    state = {k: v for k, v in lm.model.state_dict().items() if not k.startswith("projector.words")}
    assert not before.load_state_dict(state, strict=False).unexpected_keys
    before.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.pop("visual_words", None)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    old = load_model(tmp_path)
    assert old.model.config.visual_words == 0 and old.model.projector.words is None
    frames = noise_frames(2)
    request = Request("Colour?", VideoInput(frames, np.array([0.0, 0.5])), images=(("Query", frames[0]),))
    batch = build_batch(old, [request])
    text = lm.tokenizer.decode(batch.input_ids[0])
    assert text.count("<|video_pad|>") == 2 * config.frame_grid**2
    assert "<|vision_start|>0.0<|video_pad|>" in text and text.index("Query: ") < text.index("<|video_pad|>")
    with torch.no_grad():
        assert torch.isfinite(old.model(**batch.inputs).logits).all()


def test_nano_recall_names_the_shown_frame_each_image_resembles() -> None:
    """With frame_recall each still image shown with a video is followed by the time of the shown frame
    it most resembles: a frame of the video recalls itself, and once that frame is dropped another shown
    time; a blind request (no video) and a nano without recall write none."""
    lm = load_model(nano_dir())
    model = lm.model
    path, _ = generated_clip()
    clip = VideoInput.from_clip(decode_video(path, SAMPLING))
    request = Request("When?", clip, images=(("Query", clip.frames[3]), ("Noise", noise_frames(1)[0])))

    def recalled(req: Request) -> list[float]:
        text = lm.tokenizer.decode(build_batch(lm, [req]).input_ids[0])
        return [float(t) for t in re.findall(r"<\|vision_end\|> like (\d+\.\d)\n", text)]

    assert recalled(request) == []  # off by default: a checkpoint without the key reads as before
    model.config.frame_recall = True
    try:
        query, noise = recalled(request)
        shown = [round(float(t), 1) for t in clip.timestamps]
        cells = model.frame_cells(model.frame_pixels(clip.frames))
        own = model.frame_cells(model.frame_pixels(clip.frames[3:4]))[0]
        # the frame itself (or its twin): equal up to batched-convolution rounding
        assert torch.allclose(cells[shown.index(query)], own, atol=1e-3, rtol=1e-3)
        assert noise in shown
        keep = np.ones(len(clip), bool)
        keep[[i for i, t in enumerate(shown) if t == query]] = False
        dropped = Request("When?", clip.drop(~keep), images=request.images[:1])
        (other,) = recalled(dropped)
        assert other != query and other in [t for t, k in zip(shown, keep, strict=True) if k]
        assert recalled(request.without_video()) == []
    finally:
        model.config.frame_recall = False


def test_nano_span_frames_key_each_shown_time_inside_an_option() -> None:
    """With span_frames each option line that names spans is followed by the shown times inside them,
    each keyed by the option's letter, and an option image's recall by its letter; lines without a span,
    a request without a video and a nano without the key read as before."""
    lm = load_model(nano_dir())
    model = lm.model
    path, _ = generated_clip()
    clip = VideoInput.from_clip(decode_video(path, SAMPLING))
    shown = [f"{t:.1f}" for t in clip.timestamps]
    first, last = float(shown[1]), float(shown[3])
    question = (
        f"When is it shown?\nA. from {first:.1f} s to {last:.1f} s\nB. the image labelled Option B\n"
        "C. from 900.0 s to 901.0 s\nReply as <answer>the letter</answer>."
    )
    request = Request(question, clip, images=(("Option B", clip.frames[0]), ("Query", clip.frames[2])))

    def text(req: Request) -> str:
        return lm.tokenizer.decode(build_batch(lm, [req]).input_ids[0])

    plain = text(request)
    assert question in plain  # off by default
    model.config.frame_recall = True
    model.config.span_frames = True
    try:
        keyed = text(request)
        line = f"A. from {first:.1f} s to {last:.1f} s (shown {shown[1]} A, {shown[2]} A, {shown[3]} A)\n"
        assert line in keyed
        assert "B. the image labelled Option B\n" in keyed and "C. from 900.0 s to 901.0 s\n" in keyed
        (option,) = re.findall(
            r"Option B: <\|vision_start\|>(?:<\|image_pad\|>)+<\|vision_end\|> like (\S+) B\n", keyed
        )
        (query,) = re.findall(
            r"Query: <\|vision_start\|>(?:<\|image_pad\|>)+<\|vision_end\|> like (\S+)\n", keyed
        )
        assert option in shown and query in shown  # the Query is no option: no key
        assert question in text(request.without_video())
    finally:
        model.config.frame_recall = False
        model.config.span_frames = False
