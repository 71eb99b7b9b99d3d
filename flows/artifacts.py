"""What a round shows in the Prefect UI and the work directory: a table of its metrics, a markdown
summary, the videos that got no question and why, and a PNG plot of the run's figures across checkpoints
(written to `<run dir>/metrics.png`)."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from videozero.reports.summary import RoundSummary, round_markdown, round_rows
from videozero.run_config import RunConfig
from videozero.stages.report import run_plot, video_coverage


def _key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    raw = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() else "-" for ch in raw).strip("-")[:100]


def publish_round(
    config: RunConfig, summary: RoundSummary, store=None, run_id: int | None = None
) -> Path | None:
    """Create the round's table, markdown and plot artifacts, and (given the run's store) the table of
    videos without questions; returns the PNG path (None: no figures yet)."""
    name = _key("videozero", config.run_name, f"round-{summary.round_index}")
    create_table_artifact(
        round_rows(summary), key=name, description=f"metrics of round {summary.round_index}"
    )
    create_markdown_artifact(round_markdown(summary), key=f"{name}-summary")
    if store is not None and run_id is not None:
        items = video_coverage(store, run_id, config.questioner.families, config.workdir_path / "cache")
        missing = [
            {"video": c.path, "split": c.split, "duration_s": c.duration_s, "why": c.reason}
            for c in items
            if c.reason
        ]
        if missing:
            create_table_artifact(
                missing,
                key=_key("videozero", config.run_name, "videos-without-questions"),
                description=f"{len(missing)} of {len(items)} videos got no question (after round "
                f"{summary.round_index})",
            )
    png = run_plot(config)
    if png is not None:
        data = base64.b64encode(png.read_bytes()).decode()
        create_image_artifact(
            f"data:image/png;base64,{data}",
            key=_key("videozero", config.run_name, "plot"),
            description=f"figures per checkpoint (also at {png})",
        )
    return png
