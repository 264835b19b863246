"""The Goyal 2024 2-D U-Nets (DOSMA's ``StanfordQDessBoneUNet2D`` family): Keras HDF5 files run in PyTorch.

``keras_h5`` reads a Keras full-model .h5 with h5py (no TensorFlow, no Keras), ``keras_layers`` and ``keras_torch``
rebuild its layer graph in PyTorch; ``planes``, ``preprocess``, ``plane_path``, ``cleanup`` and ``staple`` are
upstream's volume path; ``plane_model`` loads one file onto a backend and ``segmenter`` puts it behind the
segmenter interface.

Importing this package imports neither torch nor h5py; loading a model does.
"""

#: Manifest names of the family, the predecessor's default first.
GOYAL_MODELS = ("goyal-sagittal", "goyal-sagittal-v1", "goyal-coronal", "goyal-axial", "goyal-staple")

__all__ = ["GOYAL_MODELS"]
