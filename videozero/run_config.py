"""The configuration of a run of the loop: one pydantic model (the Prefect UI renders it as a form).

`RunConfig` nests every stage's settings. Presets give the starting values (`default`: the nano
learner sized for a laptop; `smoke`: tiny-qwen and minimal budgets, the same stages, for tests);
a YAML file (`--config`) and command-line flags override them, in that order (`load_run_config`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from videozero.curriculum import CurriculumConfig
from videozero.errors import VideozeroError
from videozero.evaluation.ablation import AblationConfig
from videozero.questioner.round_config import QuestionerConfig
from videozero.questioner.training_config import QuestionerGRPOConfig
from videozero.questioner.verify_config import VerifyConfig
from videozero.solver.grpo_config import GRPOConfig
from videozero.solver.preference_config import PreferenceConfig
from videozero.solver.warmup_config import WarmupConfig
from videozero.zoom_config import ZoomEvalSettings

PRESETS = ("default", "smoke")

RUN_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_name(name: str) -> str:
    """`name` if it is a safe run name (it names a directory under `<workdir>/runs`, so it is data, never
    a path: no '/', '..', leading dot, control characters or spaces); else a VideozeroError saying so."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        shown = repr(name[:60] + ("..." if len(name) > 60 else "")) if isinstance(name, str) else repr(name)
        raise VideozeroError(f"run name {shown} is not allowed: use {RUN_NAME_RULE}.")
    return name


class LearnerConfig(BaseModel):
    """The solver the run starts from: `nano` and `tiny-qwen` are built locally on first use (under
    `<workdir>/models`) and reused; anything else is a checkpoint directory or a hub id."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    model: str = Field("nano", description="nano | tiny-qwen | a checkpoint directory | a hub id")
    align_steps: int = Field(80, ge=0, description="nano's projector alignment steps when it is built")
    visual_words: int = Field(
        0,
        ge=0,
        le=8,
        description="nano's visual words per frame when it is built (the frame encoder's top ImageNet "
        "classes, before its grid cells; 0: cells only; bench/results/README.md has what they measured)",
    )
    frame_recall: bool = Field(
        False,
        description="nano, when it is built: each still image shown with a video is followed by the time "
        "of the shown frame it most resembles by the frozen frame encoder (bench/results/README.md has "
        "what it measured)",
    )
    span_frames: bool = Field(
        False,
        description="nano, when it is built: each option that names spans is followed by the shown frames "
        "inside them keyed by its letter, and an option image's recall by its letter (with frame_recall: "
        "the hop from a recalled time to an option becomes a match; bench/results/README.md)",
    )
    warmup: WarmupConfig = Field(
        default_factory=WarmupConfig, description="supervised cold start (0 steps: none)"
    )


class EvalSettings(BaseModel):
    """Held-out evaluation after each round. The solver is scored on the frames it is trained and
    verified on (the questioner's `solver_fps` and `solver_max_frames`) unless `max_frames` says
    otherwise; `videozero eval --run` scores the run's checkpoints with these same settings."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    max_frames: int | None = Field(
        None,
        ge=1,
        description="frames per video (None: the solver's frame budget, questioner.solver_max_frames)",
    )
    max_new_tokens: int = Field(96, ge=8, le=4096, description="answer length cap")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N held-out questions")
    diagnostics: bool = Field(True, description="answer the round's accepted questions in every mode")
    diagnostics_limit: int | None = Field(
        24, ge=1, description="at most this many questions for the diagnostics"
    )
    zoom: ZoomEvalSettings = Field(
        default_factory=ZoomEvalSettings,
        description="held-out answers also with zoom: coarse_to_fine (Zoom-Zero) or zoom_tool (VideoZoomer)",
    )


class RunConfig(BaseModel):
    """Everything a run of `videozero iterate` needs; stored with the run."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    run_name: str = Field(
        "default",
        min_length=1,
        max_length=100,
        description=f"resume a run by its name ({RUN_NAME_RULE})",
        json_schema_extra={"pattern": f"^{_RUN_NAME.pattern}$"},  # the UI form checks it too
    )
    rounds: int = Field(2, ge=1, le=100, description="rounds to reach (a resumed run continues)")
    videos: list[str] = Field(
        default_factory=list, description="videos or folders (empty: the embedded samples)"
    )
    heldout_videos: list[str] | None = Field(
        None,
        description="videos or folders always held out, besides the share of `videos` "
        "(None: the embedded held-out scenes when `videos` is empty, none otherwise)",
    )
    validation_scenes: int = Field(
        4,
        ge=0,
        le=64,
        description="generated scenes whose template questions form the validation set (never trained "
        "on): recipes are tuned and the better checkpoint kept on it, never on the held-out set",
    )
    workdir: str = Field("videozero_work", description="store, caches, checkpoints, plots")
    db: str | None = Field(None, description="store URL (default: sqlite:///<workdir>/store.db)")
    preset: Literal["default", "smoke"] = "default"
    heldout_fraction: float = Field(0.34, ge=0, lt=1, description="share of videos held out (split by video)")
    writer: Literal["template", "model", "both"] = Field("both", description="who writes the questions")
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    questioner: QuestionerConfig = Field(default_factory=QuestionerConfig)
    solver: GRPOConfig = Field(default_factory=GRPOConfig)
    questioner_training: QuestionerGRPOConfig = Field(default_factory=QuestionerGRPOConfig)
    preference: PreferenceConfig = Field(
        default_factory=PreferenceConfig,
        description="the round's factorized preference pairs and the optional DPO stage after GRPO",
    )
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    ablation: AblationConfig = Field(default_factory=AblationConfig)
    executor: Literal["local", "ray"] = Field(
        "local",
        description="where mining, verification and held-out evaluation tasks run: this process, or Ray "
        "(with a PostgreSQL store that every node reaches)",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster address (e.g. 10.0.0.1:6379); None with executor ray: a local Ray"
    )
    ray_task_gpus: float = Field(
        0.0, ge=0, description="GPUs each Ray task of verification and evaluation reserves (1 with vLLM)"
    )
    engine: Literal["transformers", "vllm"] = Field(
        "transformers", description="what generates in Ray workers' verification and evaluation (vllm: GPU)"
    )
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _preset_first(cls, data: Any) -> Any:
        """Settings not given take the preset's values (then the field defaults): a UI form or a YAML
        file naming `preset: smoke` gets the smoke budgets for everything it leaves out."""
        if isinstance(data, dict):
            return _merge(preset_values(str(data.get("preset", "default"))), data)
        return data

    @field_validator("run_name", mode="before")
    @classmethod
    def _safe_run_name(cls, name: Any) -> str:
        try:
            return check_run_name(name)
        except VideozeroError as exc:
            raise ValueError(str(exc)) from None

    @property
    def workdir_path(self) -> Path:
        """The work directory as an absolute path: what is stored from it (checkpoint directories) still
        points to the same place when the store is used from another directory."""
        return Path(self.workdir).expanduser().absolute()

    @property
    def run_dir(self) -> Path:
        """`<workdir>/runs/<run name>`: always inside the work directory (the name is checked)."""
        runs = self.workdir_path / "runs"
        path = runs / check_run_name(self.run_name)
        if path.resolve().parent != runs.resolve():
            raise VideozeroError(f"run directory {path} resolves outside {runs}: remove the link there.")
        return path


def preset_values(name: str) -> dict[str, Any]:
    """The values a preset sets (nested dicts), before any file or flag.

    `default` is sized for two rounds of nano on 2 CPU cores in about 20 minutes, the first-use build
    and warm-up included (a GRPO step of nano costs about a minute there: the budgets are small; raise
    them on a bigger machine); `smoke` runs every stage with tiny-qwen in a few minutes and keeps every
    verified question (it learns nothing)."""
    if name == "default":
        return {
            "learner": {
                "model": "nano",
                "align_steps": 60,
                "warmup": {"steps": 24, "heldout_tasks": 0},
            },
            "questioner": {
                "per_video": 8,
                "heldout_per_video": 24,
                "model_spans_per_video": 1,
                "solver_max_frames": 12,
                # nano's samples at temperature 1.0 break the answer format half the time, which drowns
                # the agreement in format noise; at 0.7 well-formed samples rise from 47% to 66% and
                # correct ones from 12% to 18% (measured on the warm-up's tasks)
                # answers with their evidence are 27-29 SmolLM2 tokens, but ordering's (2-5 spans) 33-54 and
                # counting's up to 62: at 32 every ordering answer was cut off (and scored as unformatted)
                "verify": {"n_full": 6, "n_probe": 1, "max_new_tokens": 64, "temperature": 0.7},
            },
            "solver": {"steps": 4, "prompts_per_step": 4, "group_size": 4, "max_new_tokens": 64},
            "questioner_training": {
                "steps": 1,
                "prompts_per_step": 2,
                "group_size": 2,
                # a write in the writer's format with three span options is about 90-115 SmolLM2 tokens:
                # at 64 every one was cut off before its answer
                "max_new_tokens": 128,
                # from nano's family warm-up on the embedded training videos + 16 warm-up scenes (373
                # writes): greedy writes on the validation scenes that parse and are about the asked
                # span, of 12: 9 after 16 steps at lr 1e-3, 8 after 24; at lr 2e-4 after 24 steps 3
                # (it copied the prompt's example)
                "warmup": {"steps": 16, "lr": 1e-3},
            },
            # factorized DPO on the round's `both` pairs after GRPO (bench/preference.py, chosen on the
            # validation questions: at equal wall time (90 s) from round 1 of a default run, validation
            # mIoU +0.056 ± 0.024 against -0.013 ± 0.010 for more GRPO, accuracy within noise)
            "preference": {"enabled": True},
            "eval": {"diagnostics_limit": 6},
        }
    if name == "smoke":
        return {
            "learner": {
                "model": "tiny-qwen",
                "warmup": {"steps": 2, "batch_size": 2, "train_tasks": 4, "heldout_tasks": 0, "scenes": 1},
            },
            "validation_scenes": 1,
            "questioner": {
                "per_video": 6,
                "heldout_per_video": 6,
                "model_spans_per_video": 1,
                "solver_max_frames": 4,
                # a random model is never in the agreement band: the smoke preset keeps every verified
                # question so that the solver stage trains (plumbing, not learning)
                "verify": {
                    "n_full": 2,
                    "n_probe": 1,
                    "max_new_tokens": 16,
                    "band_low": 0.0,
                    "band_high": 1.0,
                },
            },
            "solver": {
                "steps": 1,
                "prompts_per_step": 2,
                "group_size": 2,
                "max_new_tokens": 16,
                "micro_batch_size": 4,
            },
            "questioner_training": {
                "steps": 1,
                "prompts_per_step": 1,
                "group_size": 2,
                "max_new_tokens": 16,
                "warmup": {"steps": 1, "batch_size": 2, "per_video": 4},
            },
            # the preference stage runs in the smoke preset (plumbing: one DPO step on two pairs)
            "preference": {
                "enabled": True,
                "factors": ["grounding", "answer", "both"],
                "steps": 1,
                "pairs_per_step": 2,
                "micro_batch_pairs": 2,
            },
            "curriculum": {"min_questions": 1},
            "eval": {"limit": 6, "diagnostics_limit": 4},
        }
    raise VideozeroError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}.")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def load_run_config(preset: str = "default", file: str | Path | None = None, **overrides: Any) -> RunConfig:
    """The preset's values, then the YAML file's, then the given overrides (None values are ignored).

    >>> load_run_config("smoke", rounds=3).learner.model, load_run_config("smoke", rounds=3).rounds
    ('tiny-qwen', 3)
    """
    values: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise VideozeroError(
                f"cannot read the config file {path} ({exc.strerror}): check the path."
            ) from None
        except yaml.YAMLError as exc:
            raise VideozeroError(
                f"{path} is not valid YAML ({str(exc).splitlines()[0]}): fix the file."
            ) from None
        if not isinstance(loaded, dict):
            raise VideozeroError(f"{path} must hold a mapping of settings (see `videozero iterate --help`).")
        values = _merge(values, loaded)
    values = _merge(values, {k: v for k, v in overrides.items() if v is not None})
    values["preset"] = values.get("preset", preset) if file is not None and preset == "default" else preset
    try:
        return RunConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        if first["type"] == "extra_forbidden":
            raise VideozeroError(
                f"unknown setting {where}: check its spelling against docs/iterate.md (--config and the flags)."
            ) from None
        message = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        raise VideozeroError(f"invalid setting {where}: {message} (check --config and the flags).") from None


def verify_settings(config: RunConfig) -> VerifyConfig:
    """The verification settings with the ablation applied (no r_dep: blind answers are not rejected)."""
    v = config.questioner.verify
    if not config.ablation.use_r_dep:
        v = v.model_copy(update={"use_r_dep": False})
    return v


def evaluation_settings(config: RunConfig):
    """How the run's checkpoints are scored on held-out questions (the loop, `videozero eval --run`
    and the eval flow all use this): the solver's fps and frame budget, greedy answers."""
    from videozero.models.eval_config import EvalConfig

    return EvalConfig(
        fps=config.questioner.solver_fps,
        max_frames=config.eval.max_frames or config.questioner.solver_max_frames,
        max_new_tokens=config.eval.max_new_tokens,
        batch_size=16,
        limit=config.eval.limit,
        zoom=config.eval.zoom,
    )


def stored_run_config(values: dict | None) -> RunConfig | None:
    """The configuration a run was started with, from its stored values (None when they cannot be read
    back as a RunConfig)."""
    if not values:
        return None
    try:
        return RunConfig.model_validate(values)
    except ValidationError:
        return None
