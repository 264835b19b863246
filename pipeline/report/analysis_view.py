"""What the writers read of an analysis, as a protocol: ``KneeAnalysis`` satisfies it.

The writers (outputs, PDF, DICOM-SEG, viewer) depend on this protocol rather than on the results class, so the results
class can offer ``write()`` and ``show()`` without the two importing each other (no import cycle in ``report/``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import AnalysisConfig
    from ..morphometry.anatomy import Laterality
    from ..morphometry.mesh import Surface
    from ..morphometry.qc import StructureStats
    from ..morphometry.summary import RegionResult
    from ..outcome import NotComputed
    from ..shape.stage import ShapeModelResult
    from ..t2.stage import T2Result
    from ..volume import Volume


class AnalysisView(Protocol):
    """The read-only face of one knee analysis (see ``pipeline.report.results.KneeAnalysis``)."""

    @property
    def case_id(self) -> str: ...
    @property
    def inputs(self) -> dict: ...
    @property
    def laterality(self) -> Laterality: ...
    @property
    def structures(self) -> dict[str, StructureStats]: ...
    @property
    def cartilage(self) -> dict[str, RegionResult]: ...
    @property
    def warnings(self) -> tuple[str, ...]: ...
    @property
    def labels(self) -> Volume: ...
    @property
    def subregions(self) -> Volume: ...
    @property
    def surfaces(self) -> dict[str, Surface]: ...
    @property
    def config(self) -> AnalysisConfig: ...
    @property
    def provenance(self) -> dict: ...
    @property
    def image(self) -> Volume | None: ...
    @property
    def t2(self) -> T2Result | NotComputed: ...
    @property
    def t2_map(self) -> Volume | None: ...
    @property
    def depth_labels(self) -> Volume | None: ...
    @property
    def shape_fit(self) -> ShapeModelResult | None: ...

    def to_dict(self) -> dict: ...
