"""Input and output of images and label maps; everything is read into a :class:`~pipeline.volume.Volume`.

``files`` (NIfTI/NRRD/MHA, dispatch), ``dicom`` (series discovery, echoes, headers kept), ``multiframe``,
``archives`` (zips), ``headers`` (size limits and truncation, from headers only), ``limits``, ``labelmaps``
(schemes -> canonical; DICOM-SEGs through ``dicom_seg_reader``), ``grids`` (a label map onto its image's grid),
``native_logs`` (ITK/VTK messages to logging).
No module here imports SimpleITK, pydicom or VTK at import time.
"""

from .archives import unpacked
from .dicom import DicomSource, EchoImage
from .files import VOLUME_SUFFIXES, file_stem, image_kind, load_image, sha256_of, write_volume
from .grids import align_to_grid
from .labelmaps import LABEL_SUFFIXES, LoadedLabels, check_label_map_path, load_label_map, to_canonical
from .limits import ImageLimits

__all__ = [
    "LABEL_SUFFIXES",
    "VOLUME_SUFFIXES",
    "DicomSource",
    "EchoImage",
    "ImageLimits",
    "LoadedLabels",
    "align_to_grid",
    "check_label_map_path",
    "file_stem",
    "image_kind",
    "load_image",
    "load_label_map",
    "sha256_of",
    "to_canonical",
    "unpacked",
    "write_volume",
]
