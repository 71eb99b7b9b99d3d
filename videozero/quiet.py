"""Library chatter off the user's console: the command's own bars and tables are what people read.

Called first by the `videozero` command and by the flows' package (a served flow run is a process of its
own), before transformers, tqdm or sentence-transformers are imported: tqdm and transformers read these
variables at import. Each is set only when the user has not set it. Deprecation warnings raised on
behalf of other packages are hidden (they are for those packages' authors); videozero's own, and every
other warning (UserWarning, RuntimeWarning: real problems), still show.
"""

from __future__ import annotations

import os
import warnings

QUIET_ENV = {
    "TQDM_DISABLE": "1",  # transformers' GGUF conversion and sentence-transformers' bars
    "TRANSFORMERS_VERBOSITY": "error",  # weight-loading reports and notices
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # "Loading weights" and "Writing model shards" bars
    "TOKENIZERS_PARALLELISM": "false",  # the fork notice of the Rust tokenizers
}
OWN_MODULES = r"(videozero|flows|store)(\.|$)"


def quiet_libraries() -> None:
    """Silence progress bars, notices and foreign deprecation warnings of the libraries videozero uses."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=rf"(?!{OWN_MODULES})")
