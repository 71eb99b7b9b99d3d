"""The `eval` flow: held-out evaluation of a run's solver checkpoints, side by side, for a UI deployment."""

from __future__ import annotations

import base64
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from pydantic import BaseModel, Field


class EvalParams(BaseModel):
    """Which run to evaluate and where its store is; checkpoints are scored with the run's own
    evaluation settings (its frame budget), so that stored figures of one run stay comparable."""

    run_name: str = Field("default", description="the run whose checkpoints are evaluated")
    workdir: str = Field("videozero_work")
    db: str | None = None
    limit: int | None = Field(None, ge=1, description="only the first N held-out questions")
    zoom: Literal["off", "coarse_to_fine", "zoom_tool"] | None = Field(
        None,
        description="also answer with zoom, figures beside the single pass (None: the run's eval.zoom.mode)",
    )


@flow(name="videozero-eval", log_prints=True)
def evaluate(params: EvalParams) -> dict:
    """Score every solver checkpoint of the run on its held-out questions; a markdown table and a plot."""
    from videozero.reports.comparison import report_plot
    from videozero.run_config import RunConfig
    from videozero.stages.evaluate import evaluate_checkpoint
    from videozero.stages.report import run_columns, run_report
    from videozero.stages.run import open_run_store, run_config_of, run_id_of

    logger = get_run_logger()
    config = RunConfig(run_name=params.run_name, workdir=params.workdir, db=params.db)
    store = open_run_store(config)
    try:
        run_id = run_id_of(store, params.run_name)
        stored = run_config_of(store, run_id)
        if stored is not None:  # the run's own settings; this store and work directory
            config = stored.model_copy(update={"workdir": params.workdir, "db": params.db})
        config.eval.limit = params.limit
        if params.zoom is not None:
            config.eval.zoom.mode = params.zoom
        columns = run_columns(store, run_id)
        for c in columns:
            figures = evaluate_checkpoint(config, run_id, c.checkpoint_id)
            logger.info("%s: accuracy %s, mIoU %s", c.label, figures.get("accuracy"), figures.get("mIoU"))
        report = run_report(store, run_id, params.run_name)
    finally:
        store.dispose()
    lines = [
        "| figure | " + " | ".join(c.label for c in report.columns) + " |",
        "|---" * (len(report.columns) + 1) + "|",
    ]
    zoomed = f"heldout:{config.eval.zoom.mode}"
    for split, name in report.rows():
        if split not in ("heldout", zoomed) or "/" in name:
            continue
        per = report.values[(split, name)]
        label = name if split == "heldout" else f"{config.eval.zoom.mode} {name}"
        lines.append(
            f"| {label} | "
            + " | ".join(f"{per[c.label]:.3f}" if c.label in per else "-" for c in report.columns)
            + " |"
        )
    create_markdown_artifact(
        "\n".join(lines), key=f"videozero-eval-{params.run_name}".lower().replace("_", "-")
    )
    png = report_plot(report, config.run_dir / "metrics.png")
    create_image_artifact(
        f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}", description=str(png)
    )
    return {"checkpoints": len(report.columns), "plot": str(png)}
