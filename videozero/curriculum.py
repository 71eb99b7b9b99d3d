"""The difficulty curriculum: per question family, a level promoted or demoted between rounds from the
solver's measured accuracy and agreement on that family, and a family mix weighted by learnability.

The state and the reason for every change are plain JSON, stored per round (`rounds.curriculum`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class CurriculumConfig(BaseModel):
    """Thresholds of the scheduler; defaults follow R-Zero's band (questions solved about half the time)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    start_level: int = Field(0, ge=0, description="level every family starts at")
    max_level: int = Field(3, ge=0, description="highest level of any family")
    promote_accuracy: float = Field(0.75, ge=0, le=1, description="promote when accuracy is at least this")
    promote_agreement: float = Field(0.8, ge=0, le=1, description="...and agreement is at least this")
    demote_accuracy: float = Field(0.3, ge=0, le=1, description="demote when accuracy is below this")
    min_questions: int = Field(4, ge=1, description="change a level only after this many questions")
    mix_floor: float = Field(0.1, ge=0, le=1, description="every family keeps at least this share")


class FamilyMeasurement(BaseModel):
    """What a round measured on one family: solver accuracy, mean agreement and learnability, count."""

    accuracy: float = Field(ge=0, le=1)
    agreement: float = Field(ge=0, le=1)
    learnability: float = Field(ge=0, le=0.5, description="mean min(c, 1 - c) over the family's questions")
    n: int = Field(ge=0)


class FamilyState(BaseModel):
    """A family's level, its share of the next round's questions, and why it is there."""

    level: int = 0
    weight: float = 0.0
    reason: str = "start"


class CurriculumState(BaseModel):
    """The curriculum after a round: one FamilyState per family."""

    families: dict[str, FamilyState] = Field(default_factory=dict)

    def levels(self) -> dict[str, int]:
        return {name: f.level for name, f in self.families.items()}

    def weights(self) -> dict[str, float]:
        return {name: f.weight for name, f in self.families.items()}


class CurriculumScheduler:
    """Promotes families the solver has mastered, demotes those it cannot do, mixes by learnability.

    >>> sched = CurriculumScheduler(CurriculumConfig(min_questions=2))
    >>> state = sched.initial(["grounding", "ordering"])
    >>> state.levels(), state.weights()
    ({'grounding': 0, 'ordering': 0}, {'grounding': 0.5, 'ordering': 0.5})
    >>> nxt = sched.update(state, {"grounding": FamilyMeasurement(accuracy=0.9, agreement=0.9, learnability=0.1, n=8),
    ...                            "ordering": FamilyMeasurement(accuracy=0.5, agreement=0.5, learnability=0.5, n=8)})
    >>> nxt.levels()
    {'grounding': 1, 'ordering': 0}
    >>> nxt.families["grounding"].reason
    'promoted 0 -> 1: accuracy 0.90 >= 0.75 and agreement 0.90 >= 0.80 over 8 questions'
    >>> round(nxt.weights()["ordering"], 3)
    0.767
    """

    def __init__(self, config: CurriculumConfig | None = None) -> None:
        self.config = config or CurriculumConfig()

    def initial(self, families: list[str], levels: Mapping[str, int] | None = None) -> CurriculumState:
        """Every family at its start level with an equal share."""
        share = 1.0 / len(families) if families else 0.0
        return CurriculumState(
            families={
                name: FamilyState(
                    level=(levels or {}).get(name, self.config.start_level), weight=share, reason="start"
                )
                for name in families
            }
        )

    def update(self, state: CurriculumState, measured: Mapping[str, FamilyMeasurement]) -> CurriculumState:
        """The next round's state from this round's measurements (families not measured keep their level)."""
        cfg = self.config
        families: dict[str, FamilyState] = {}
        for name, current in state.families.items():
            m = measured.get(name)
            level, reason = current.level, "no questions measured: level kept"
            if m is not None and m.n < cfg.min_questions:
                reason = f"only {m.n} questions measured (< {cfg.min_questions}): level kept"
            elif m is not None:
                stats = f"over {m.n} questions"
                if m.accuracy >= cfg.promote_accuracy and m.agreement >= cfg.promote_agreement:
                    if level < cfg.max_level:
                        level += 1
                        reason = (
                            f"promoted {current.level} -> {level}: accuracy {m.accuracy:.2f} >= "
                            f"{cfg.promote_accuracy:.2f} and agreement {m.agreement:.2f} >= "
                            f"{cfg.promote_agreement:.2f} {stats}"
                        )
                    else:
                        reason = f"at the top level {level}: accuracy {m.accuracy:.2f} {stats}"
                elif m.accuracy < cfg.demote_accuracy:
                    if level > 0:
                        level -= 1
                        reason = (
                            f"demoted {current.level} -> {level}: accuracy {m.accuracy:.2f} < "
                            f"{cfg.demote_accuracy:.2f} {stats}"
                        )
                    else:
                        reason = f"at the lowest level: accuracy {m.accuracy:.2f} {stats}"
                else:
                    reason = f"level kept: accuracy {m.accuracy:.2f}, agreement {m.agreement:.2f} {stats}"
            families[name] = FamilyState(level=level, weight=0.0, reason=reason)
        weights = self.mix(
            {name: measured[name].learnability if name in measured else None for name in families}
        )
        for name, w in weights.items():
            families[name].weight = w
        return CurriculumState(families=families)

    def mix(self, learnability: Mapping[str, float | None]) -> dict[str, float]:
        """Shares proportional to learnability, each at least `mix_floor`; unmeasured families get the
        mean learnability of the measured ones (or an equal share when none was measured).

        >>> CurriculumScheduler(CurriculumConfig(mix_floor=0.1)).mix({"a": 0.5, "b": 0.0})
        {'a': 0.9, 'b': 0.1}
        """
        if not learnability:
            return {}
        known = [v for v in learnability.values() if v is not None]
        fill = sum(known) / len(known) if known else 1.0
        raw = {k: (fill if v is None else v) for k, v in learnability.items()}
        total = sum(raw.values())
        n = len(raw)
        floor = min(self.config.mix_floor, 1.0 / n)
        if total <= 0:
            return {k: 1.0 / n for k in raw}
        free = 1.0 - floor * n
        return {k: floor + free * v / total for k, v in raw.items()}
