"""Typed results of one knee analysis, and their plain-dict / CSV forms (schema in docs/results-schema.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import AnalysisConfig
from ..morphometry.anatomy import Laterality
from ..morphometry.mesh import Surface
from ..morphometry.qc import StructureStats
from ..morphometry.summary import RegionResult, ThicknessStats
from ..outcome import NotComputed
from ..volume import Volume
from .dicom_seg_plan import seg_section
from .table import row_of

if TYPE_CHECKING:
    from ..quality import SegmentationQC
    from ..shape.stage import ShapeModelResult
    from ..t2.stage import T2Result

__all__ = ["SCHEMA_VERSION", "KneeAnalysis", "RegionResult", "ThicknessStats"]

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class KneeAnalysis:
    """Everything one analysis produced. Arrays and meshes stay in memory; ``write`` puts them on disk."""

    case_id: str
    inputs: dict
    laterality: Laterality
    structures: dict[str, StructureStats]
    cartilage: dict[str, RegionResult]
    warnings: tuple[str, ...]
    labels: Volume
    subregions: Volume
    surfaces: dict[str, Surface]
    config: AnalysisConfig
    provenance: dict
    image: Volume | None = None
    t2: T2Result | NotComputed = field(default_factory=lambda: NotComputed("T2 not requested."))
    shape_model: ShapeModelResult | NotComputed = field(
        default_factory=lambda: NotComputed("Shape model not requested.")
    )
    segmentation_qc: SegmentationQC | None = None

    @property
    def t2_map(self) -> Volume | None:
        """The T2 map (ms) on the image grid, when T2 was computed."""
        return self.t2.t2map if self.t2.computed else None  # type: ignore[union-attr]

    @property
    def depth_labels(self) -> Volume | None:
        """Cartilage depth labels (region + 100 deep, + 200 superficial), when T2 was computed."""
        return self.t2.depth_labels if self.t2.computed else None  # type: ignore[union-attr]

    @property
    def shape_fit(self) -> ShapeModelResult | None:
        """The shape-model fit, when it ran."""
        return self.shape_model if self.shape_model.computed else None  # type: ignore[return-value]

    def thickness(self, region: str) -> float | None:
        """Mean thickness (mm) of a region, e.g. ``result.thickness("medial_tibial")``."""
        stats = self.cartilage[region].thickness_mm
        return None if stats is None else stats.mean

    def to_dict(self) -> dict:
        """The results.json form (docs/results-schema.md); this server's folders in texts become portable names."""
        from .provenance import portable

        return portable(
            {
                "schema_version": SCHEMA_VERSION,
                "case_id": self.case_id,
                "input": self.inputs,
                "laterality": self.laterality.to_dict(),
                "structures": {name: s.to_dict() for name, s in self.structures.items()},
                "cartilage": {name: r.to_dict() for name, r in self.cartilage.items()},
                "qc": {
                    "warnings": list(self.warnings),
                    "segmentation": None if self.segmentation_qc is None else self.segmentation_qc.to_dict(),
                },
                "t2": self.t2.to_dict(),
                "shape_model": self.shape_fit.section() if self.shape_fit is not None else self.shape_model.to_dict(),
                "dicom_seg": seg_section(self),
            }
        )

    def csv_row(self) -> dict[str, object]:
        """One flat row with a fixed column order (empty cells for missing values); see ``report.table``."""
        return row_of(self.to_dict())

    def write(self, out_dir: str | Path, *, make_zip: bool = True, results: dict | None = None) -> dict[str, Path]:
        """Write every output file into ``out_dir`` (see docs/results-schema.md); returns name -> path.
        ``results``: this analysis's ``to_dict()`` when the caller has made it already (made once per case).
        DiskFullError, before writing, when the disk has no room for them, or when it fills up while writing."""
        from ..diskspace import disk_full_named, ensure_free_space, results_bytes
        from .outputs import write_outputs

        out = Path(out_dir)
        ensure_free_space(out, results_bytes(self.labels.array.size))
        with disk_full_named(out):
            return write_outputs(self, out, make_zip=make_zip, results=results)

    def show(self, **kwargs):
        """Interactive 3-D view of the bones coloured by thickness (pyvista; trame backend in Jupyter)."""
        from .viewer import show_analysis

        return show_analysis(self, **kwargs)
