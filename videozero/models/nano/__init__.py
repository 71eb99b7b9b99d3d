"""nano, the embedded default learner; importing this package registers it with the Auto classes."""

from transformers import AutoConfig, AutoModelForImageTextToText

from videozero.models.nano.configuration_nano import NanoConfig
from videozero.models.nano.modeling_nano import NanoForConditionalGeneration

AutoConfig.register(NanoConfig.model_type, NanoConfig, exist_ok=True)
AutoModelForImageTextToText.register(NanoConfig, NanoForConditionalGeneration, exist_ok=True)

__all__ = ["NanoConfig", "NanoForConditionalGeneration"]
