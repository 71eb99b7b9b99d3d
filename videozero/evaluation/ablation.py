"""Switches that reproduce the paper's contrast (Video-Zero vs questions without grounding), so a user can
run both configurations and compare them with `videozero eval`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AblationConfig(BaseModel):
    """What a run leaves out; the defaults are the full method. Where each switch acts:

    - `evidence_anchoring` acts in the questioner phase: off, questions are written from the whole
      video, without mined evidence spans to anchor them (V-Zero's setting); the diagnostics then show
      how much the questions lose in key necessity and specificity.
    - `use_r_dep` acts in the questioner reward `r_Q = r_learn + r_dep + r_evid` and in verification:
      off, `r_dep` (score with the video minus score blind) is dropped from `r_Q` and blind-answerable
      questions are not rejected for it.
    - `use_alignment` acts in the solver reward `r_S = Acc * (1 + alpha * r_align)`: off, alpha is 0,
      so the solver is rewarded for the answer only, not for the evidence span it predicts.
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    evidence_anchoring: bool = Field(True, description="write questions anchored to mined evidence spans")
    use_r_dep: bool = Field(True, description="reward (and require) video dependency in the questioner")
    use_alignment: bool = Field(
        True, description="reward the solver's span alignment with the consensus span"
    )

    @property
    def label(self) -> str:
        """A short name of what is off, e.g. "no-r_dep+no-alignment" ("full" when nothing is).

        >>> AblationConfig(use_r_dep=False, use_alignment=False).label
        'no-r_dep+no-alignment'
        """
        off = [
            name
            for name, on in (
                ("no-anchoring", self.evidence_anchoring),
                ("no-r_dep", self.use_r_dep),
                ("no-alignment", self.use_alignment),
            )
            if not on
        ]
        return "+".join(off) or "full"
