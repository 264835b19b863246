"""A stage that did not run says why: the typed "not computed" value of optional stages (T2, shape model)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NotComputed:
    """An optional result that was not computed.

    Attributes:
        reason: why, for the user (not requested, not a qDESS series, weights unavailable, ...).
        warning: the same (or a related) text when it deserves a QC warning: the user asked for the stage and it
            could not run. None when nothing was asked for.
        details: extra JSON-ready facts (e.g. the shape model that was looked for).
    """

    reason: str
    warning: str | None = None
    details: dict = field(default_factory=dict)

    computed = False

    @property
    def surfaces(self) -> dict:
        """Surfaces the stage adds to the analysis: none, as it did not run."""
        return {}

    def to_dict(self) -> dict:
        return {"computed": False, "reason": self.reason, **self.details}
