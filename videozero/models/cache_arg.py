"""The name under which the installed transformers release passes the key/value cache to a model.

transformers 5.24 renamed the argument `past_key_values` to `cache` (the old name still works there, with a
FutureWarning). videozero's own calls use whichever name the installed release expects, so they neither
break on the older releases the project declares nor warn on the newer ones.
"""

from __future__ import annotations

import inspect

from transformers import GenerationMixin

CACHE_ARG: str = (
    "cache"
    if "cache" in inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters
    else "past_key_values"
)
