"""What a round shows in the Prefect UI and the work directory: a table of its metrics, a markdown
summary, and a PNG plot of the run's figures across checkpoints (written to `<run dir>/metrics.png`)."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from videozero.run_config import RunConfig
from videozero.summary import RoundSummary, round_markdown, round_rows, run_plot


def _key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    raw = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() else "-" for ch in raw).strip("-")[:100]


def publish_round(config: RunConfig, summary: RoundSummary) -> Path | None:
    """Create the round's table, markdown and plot artifacts; returns the PNG path (None: no figures yet)."""
    name = _key("videozero", config.run_name, f"round-{summary.round_index}")
    create_table_artifact(
        round_rows(summary), key=name, description=f"metrics of round {summary.round_index}"
    )
    create_markdown_artifact(round_markdown(summary), key=f"{name}-summary")
    png = run_plot(config)
    if png is not None:
        data = base64.b64encode(png.read_bytes()).decode()
        create_image_artifact(
            f"data:image/png;base64,{data}",
            key=_key("videozero", config.run_name, "plot"),
            description=f"figures per checkpoint (also at {png})",
        )
    return png
