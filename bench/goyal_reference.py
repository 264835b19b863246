"""Reference outputs of real Keras for KneeScope's Keras-HDF5 loader (issue 22), and the test stand-in models.

Runs in the side environment ``bench/.venv-tf`` (TensorFlow CPU + tf-keras from PyPI; git-ignored)::

    python3.11 -m venv bench/.venv-tf
    bench/.venv-tf/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0

Subcommands:

``fixtures`` (TF venv) writes ``tests/data/goyal/``: small random-weight U-Nets of the DOSMA 2-D family saved as
full-model ``.h5`` files by Keras itself, their Keras outputs on fixed inputs (``<name>.npz``: ``inputs``,
``outputs``) and ``reference.json`` (versions, seeds, sha256 of every file). The project's tests then compare
its PyTorch rebuild with these outputs, without TensorFlow:

- ``unet_transpose_cf``: channels-first, as upstream feeds (slice, 1, x, y): Conv2D+ReLU pairs, BatchNormalization
  (axis 1, epsilon 1e-3, random moving statistics), Dropout, 2x2 max pooling, **Conv2DTranspose** 3x3 stride 2
  'same' (Keras crops the full transposed convolution asymmetrically), Concatenate (axis 1), 1x1 Conv2D to 10
  classes, Softmax(axis=1).
- ``unet_upsampling_cf``: channels-first with **UpSampling2D** + an even 2x2 'same' Conv2D (asymmetric padding),
  ending in Permute -> Activation('softmax') (Keras's softmax is over the last axis) -> Permute.
- ``vocabulary_cl``: channels-last, the rest of the vocabulary: stride-2 'same' Conv2D, 'same' max pooling on an
  odd size, bilinear UpSampling2D, ReLU(max_value), LeakyReLU, Add, ZeroPadding2D, Cropping2D, Reshape, Dense,
  Conv2D(activation='softmax').
- ``vocabulary_cl_keras3``: the same network and weights saved by Keras 3 (its legacy HDF5 format).
- ``sequential_cl``: a Sequential model.

TensorFlow's CPU kernels refuse channels-first convolutions, so a channels-first model is saved as built but
evaluated through a channels-last twin with the same layer names and weights (inputs and outputs transposed).

``standin`` (TF venv, after ``standin-data`` in the project's venv) trains a tiny fully convolutional network of
the same family on synthetic knees and saves it under the published file names of ``aagatti/dosma_bones`` with
small fixed input sizes (sagittal 128x128, coronal and axial 64x128): ``tests/data/goyal/standin/``. The tests use
it as a fixture-sized stand-in for the real weights (engine, CLI, batch, app end to end).

``full-size`` (TF venv) saves random-weight full-size networks (the filter counts inferred from DOSMA's 2-D U-Nets:
32..1024 over 6 levels; sagittal 512x512, coronal and axial 160x512) to ``bench/data/goyal_fullsize_<plane>.h5``
for ``bench/goyal_speed.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "goyal"
STANDIN = FIXTURES / "standin"
STANDIN_DATA = ROOT / "bench" / "data" / "goyal_standin_training.npz"
FULL_SIZE = ROOT / "bench" / "data" / "goyal_fullsize_sagittal.h5"
SEED = 22
N_CLASSES = 10
#: Published file names (HF aagatti/dosma_bones) and the stand-in's input size per plane.
STANDIN_FILES = {
    "Goyal_Bone_Cart_July_2024_best_model.h5": (128, 128),
    "sagittal_best_model.h5": (128, 128),
    "coronal_best_model.h5": (64, 128),
    "axial_best_model.h5": (64, 128),
}
STANDIN_PLANE_OF = {
    "Goyal_Bone_Cart_July_2024_best_model.h5": "sagittal",
    "sagittal_best_model.h5": "sagittal",
    "coronal_best_model.h5": "coronal",
    "axial_best_model.h5": "axial",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- TensorFlow side ---------------------------------------------------------------------------------------------
def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import tensorflow as tf
    import tf_keras

    return tf, tf_keras


def unet(keras, fmt: str, *, size, filters, up: str, name: str, softmax: str, n_classes: int = N_CLASSES):
    """A DOSMA-family 2-D U-Net (Conv+ReLU x2, BN, Dropout per level; pool; up; concat) in data format ``fmt``.

    ``size`` is (H, W) or (None, None); ``up`` 'transpose' or 'upsampling'; ``softmax`` 'layer' (Softmax over the
    channel axis) or 'permute' (Permute to channels-last, Activation softmax, Permute back; channels-first only).
    """
    L = keras.layers
    cf = fmt == "channels_first"
    channel_axis = 1 if cf else -1
    shape = (1, *size) if cf else (*size, 1)
    x = inputs = keras.Input(shape, name="input_1")
    skips = []
    for level, n in enumerate(filters):
        x = L.Conv2D(n, 3, padding="same", activation="relu", data_format=fmt, name=f"down{level}_conv_a")(x)
        x = L.Conv2D(n, 3, padding="same", activation="relu", data_format=fmt, name=f"down{level}_conv_b")(x)
        x = L.BatchNormalization(axis=channel_axis, momentum=0.95, epsilon=1e-3, name=f"down{level}_bn")(x)
        x = L.Dropout(0.0, name=f"down{level}_dropout")(x)
        if level < len(filters) - 1:
            skips.append(x)
            x = L.MaxPooling2D(2, data_format=fmt, name=f"down{level}_pool")(x)
    for level in range(len(filters) - 2, -1, -1):
        n = filters[level]
        if up == "transpose":
            x = L.Conv2DTranspose(n, 3, strides=2, padding="same", data_format=fmt, name=f"up{level}_transpose")(x)
        else:
            x = L.UpSampling2D(2, data_format=fmt, name=f"up{level}_upsample")(x)
            x = L.Conv2D(n, 2, padding="same", activation="relu", data_format=fmt, name=f"up{level}_conv_up")(x)
        x = L.Concatenate(axis=channel_axis, name=f"up{level}_concat")([x, skips[level]])
        x = L.Conv2D(n, 3, padding="same", activation="relu", data_format=fmt, name=f"up{level}_conv_a")(x)
        x = L.Conv2D(n, 3, padding="same", activation="relu", data_format=fmt, name=f"up{level}_conv_b")(x)
        x = L.BatchNormalization(axis=channel_axis, momentum=0.95, epsilon=1e-3, name=f"up{level}_bn")(x)
        x = L.Dropout(0.0, name=f"up{level}_dropout")(x)
    x = L.Conv2D(n_classes, 1, padding="same", data_format=fmt, name="logits")(x)
    if softmax == "layer":
        x = L.Softmax(axis=channel_axis, name="softmax")(x)
    elif cf:
        x = L.Permute((2, 3, 1), name="to_channels_last")(x)
        x = L.Activation("softmax", name="softmax")(x)
        x = L.Permute((3, 1, 2), name="to_channels_first")(x)
    else:  # the channels-last twin of the Permute variant: softmax over its last (channel) axis
        x = L.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, x, name=name)


def vocabulary(keras, name: str):
    """Channels-last network using the rest of the supported layer vocabulary (sizes chosen to hit the odd cases)."""
    L = keras.layers
    x = inputs = keras.Input((21, 30, 2), name="image")
    a = L.Conv2D(6, 3, strides=2, padding="same", name="stride2_same")(x)  # 21 -> 11 (pads after only)
    a = L.ReLU(max_value=1.5, name="relu_capped")(a)
    b = L.MaxPooling2D(3, strides=2, padding="same", name="pool_same_odd")(x)  # -inf padding
    b = L.Conv2D(6, (1, 2), padding="same", use_bias=False, name="even_kernel")(b)
    b = L.LeakyReLU(name="leaky")(b)
    x = L.Add(name="add")([a, b])
    x = L.BatchNormalization(epsilon=1e-2, name="bn_eps")(x)
    x = L.UpSampling2D(2, interpolation="bilinear", name="bilinear")(x)  # 22 x 30
    x = L.ZeroPadding2D(((1, 0), (2, 1)), name="zero_pad")(x)  # 23 x 33
    x = L.Cropping2D(((1, 1), (0, 3)), name="crop")(x)  # 21 x 30
    x = L.Conv2D(8, 3, padding="valid", dilation_rate=2, activation="tanh", name="dilated_valid")(x)  # 17 x 26
    x = L.Reshape((17 * 26, 8), name="flatten_pixels")(x)
    x = L.Dense(12, activation="elu", name="dense")(x)
    x = L.Reshape((17, 26, 12), name="back_to_image")(x)
    x = L.Conv2D(5, 1, activation="softmax", name="softmax_conv")(x)
    return keras.Model(inputs, x, name=name)


def sequential(keras, name: str):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((16, 24, 1)),
            L.Conv2D(4, 3, padding="same", name="conv_a"),
            L.BatchNormalization(name="bn"),
            L.Activation("relu", name="relu"),
            L.Conv2D(3, 3, padding="valid", activation="softmax", name="conv_b"),
        ],
        name=name,
    )


def randomise_batchnorm(model, rng: np.random.Generator) -> None:
    """Moving statistics and affine parameters far from the identity, so BatchNormalization really is tested."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n).astype(np.float32),
                    rng.normal(0, 0.2, n).astype(np.float32),
                    rng.normal(0, 0.3, n).astype(np.float32),
                    rng.uniform(0.3, 2.0, n).astype(np.float32),
                ]
            )


def copy_weights(source, target) -> None:
    for layer in target.layers:
        weights = source.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights(weights)


def smooth_inputs(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Whitened smooth noise (image-like) of ``shape`` (a box-filtered random field, no scipy needed)."""
    x = rng.normal(0, 1, shape).astype(np.float32)
    for axis in range(1, len(shape)):
        if shape[axis] > 4:
            x = (np.roll(x, 1, axis) + x + np.roll(x, -1, axis)) / 3
    return ((x - x.mean()) / (x.std() + 1e-8)).astype(np.float32)


def fixtures(args) -> None:
    tf, keras = _tf()
    import keras as keras3

    FIXTURES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    keras.utils.set_random_seed(SEED)
    records = {}

    def save(model, name: str, inputs: np.ndarray, outputs: np.ndarray, notes: str, *, saver: str) -> None:
        path = FIXTURES / f"{name}.h5"
        if saver == "keras3":
            model.save(path)  # Keras 3 writes its legacy HDF5 format for a .h5 name
        else:
            model.save(path, save_format="h5", include_optimizer=False)
        np.savez_compressed(FIXTURES / f"{name}.npz", inputs=inputs, outputs=outputs.astype(np.float32))
        records[name] = {
            "file": path.name,
            "sha256": sha256(path),
            "bytes": path.stat().st_size,
            "parameters": int(model.count_params()),
            "input_shape": list(inputs.shape),
            "output_shape": list(outputs.shape),
            "saved_by": saver,
            "notes": notes,
        }

    for name, up, softmax in (
        ("unet_transpose_cf", "transpose", "layer"),
        ("unet_upsampling_cf", "upsampling", "permute"),
    ):
        size, filters = (48, 80), (4, 8, 16)
        channels_first = unet(keras, "channels_first", size=size, filters=filters, up=up, name=name, softmax=softmax)
        randomise_batchnorm(channels_first, rng)
        twin = unet(keras, "channels_last", size=size, filters=filters, up=up, name=name + "_twin", softmax=softmax)
        copy_weights(channels_first, twin)
        x = smooth_inputs((4, 1, *size), rng)
        y = twin.predict(x.transpose(0, 2, 3, 1), verbose=0).transpose(0, 3, 1, 2)
        note = f"channels-first, {up}; evaluated through its channels-last twin (TF CPU has no NCHW convolution)"
        save(channels_first, name, x, y, note, saver="tf_keras")

    model = vocabulary(keras, "vocabulary_cl")
    randomise_batchnorm(model, rng)
    x = smooth_inputs((3, 21, 30, 2), rng)
    y = model.predict(x, verbose=0)
    save(model, "vocabulary_cl", x, y, "channels-last; the rest of the layer vocabulary", saver="tf_keras")

    model3 = vocabulary(keras3, "vocabulary_cl_keras3")
    for layer in model3.layers:
        weights = model.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights(weights)
    y3 = np.asarray(model3.predict(x, verbose=0))
    save(model3, "vocabulary_cl_keras3", x, y3, "vocabulary_cl's weights saved by Keras 3", saver="keras3")

    model = sequential(keras, "sequential_cl")
    randomise_batchnorm(model, rng)
    x = smooth_inputs((2, 16, 24, 1), rng)
    save(model, "sequential_cl", x, model.predict(x, verbose=0), "a Sequential model", saver="tf_keras")

    reference = {
        "generated_by": "bench/goyal_reference.py fixtures",
        "seed": SEED,
        "versions": _versions(tf, keras, keras3),
        "keras_vs_keras3_max_abs_diff": float(np.abs(y3 - np.load(FIXTURES / "vocabulary_cl.npz")["outputs"]).max()),
        "fixtures": records,
    }
    (FIXTURES / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    print(json.dumps(reference, indent=2))


def _versions(tf, keras, keras3=None) -> dict:
    import h5py

    out = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tf_keras": keras.__version__,
        "h5py": h5py.__version__,
        "numpy": np.__version__,
    }
    if keras3 is not None:
        out["keras3"] = keras3.__version__
    return out


# --- the stand-in models -------------------------------------------------------------------------------------------
def standin_data(args) -> None:
    """(project venv) Synthetic knees through the Goyal preprocessing, per plane, at the stand-in sizes."""
    sys.path.insert(0, str(ROOT))
    from pipeline import labels as L
    from pipeline.segmentation.goyal.planes import PLANES, to_plane
    from pipeline.segmentation.goyal.preprocess import resize_slices, whiten
    from pipeline.synthetic import PhantomSpec, make_phantom, render_mr

    rng = np.random.default_rng(SEED)
    native = L.NATIVE_SCHEME.remap_table()  # native -> canonical
    to_native = np.zeros(256, dtype=np.uint8)
    for n, c in native.items():
        to_native[c] = n
    # A 2-D slice cannot tell the phantom's mirror-image compartments apart (only the patella's tilt gives the
    # side), so the stand-in learns one tibial cartilage (3) and one meniscus (5) label for both compartments.
    merge_sides = np.arange(256, dtype=np.uint8)
    merge_sides[L.NATIVE[L.LATERAL_TIBIAL_CARTILAGE]] = L.NATIVE[L.MEDIAL_TIBIAL_CARTILAGE]
    merge_sides[L.NATIVE[L.LATERAL_MENISCUS]] = L.NATIVE[L.MEDIAL_MENISCUS]
    data: dict[str, list] = {p: [] for p in ("sagittal", "coronal", "axial")}
    targets: dict[str, list] = {p: [] for p in data}
    for case in range(args.cases):
        spec = PhantomSpec(
            side=("left", "right")[case % 2],
            femoral_mm=float(rng.uniform(1.6, 2.8)),
            tibial_mm=float(rng.uniform(1.6, 2.8)),
            patellar_mm=float(rng.uniform(2.0, 3.0)),
            orientation=("sagittal", "coronal", "axial")[case % 3],
            spacing=tuple(float(s) for s in rng.uniform(0.5, 0.9, 3)),
        )
        phantom = make_phantom(spec)
        image = render_mr(phantom.labels, seed=case, noise=float(rng.uniform(0.02, 0.06)))
        for plane, size in (("sagittal", (128, 128)), ("coronal", (64, 128)), ("axial", (64, 128))):
            layout = PLANES[plane]
            stack = to_plane(image.array.astype(np.float32), image.direction, layout)
            labels = to_plane(to_native[phantom.labels.array], image.direction, layout)
            labels = merge_sides[labels]
            x = whiten(resize_slices(stack, size, order=3))
            y = resize_slices(labels, size, order=0).astype(np.uint8)
            keep = np.flatnonzero((y > 0).reshape(len(y), -1).mean(1) > 0.01)  # slices through the knee
            keep = np.union1d(keep, rng.choice(len(y), size=min(4, len(y)), replace=False))
            data[plane].append(x[keep])
            targets[plane].append(y[keep])
        print(f"case {case}: {spec.orientation} {spec.side}", flush=True)
    STANDIN_DATA.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for plane in data:
        arrays[f"{plane}_x"] = np.concatenate(data[plane]).astype(np.float32)
        arrays[f"{plane}_y"] = np.concatenate(targets[plane])
        print(plane, arrays[f"{plane}_x"].shape)
    np.savez_compressed(STANDIN_DATA, **arrays)


def standin(args) -> None:
    """(TF venv) Train one fully convolutional net on all three planes; save it per plane with fixed input sizes."""
    tf, keras = _tf()
    keras.utils.set_random_seed(SEED)
    data = np.load(STANDIN_DATA)
    filters = (8, 16, 32, 64)
    model = unet(keras, "channels_last", size=(None, None), filters=filters, up="transpose", name="standin",
                 softmax="layer")  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    datasets = []
    for plane in ("sagittal", "coronal", "axial"):
        x, y = data[f"{plane}_x"][..., None], data[f"{plane}_y"][..., None].astype(np.int32)
        datasets.append(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=SEED).batch(16))
    for epoch in range(args.epochs):
        for dataset in datasets:
            history = model.fit(dataset, epochs=1, verbose=0)
        print(f"epoch {epoch}: loss {history.history['loss'][-1]:.4f}", flush=True)
        _save_standin(keras, model, filters, epoch + 1, history, data, tf)  # every epoch: a long run can be stopped


def _save_standin(keras, model, filters, epochs, history, data, tf) -> None:
    STANDIN.mkdir(parents=True, exist_ok=True)
    records = {}
    for file_name, size in STANDIN_FILES.items():
        fixed = unet(keras, "channels_first", size=size, filters=filters, up="transpose", name="standin",
                     softmax="layer")  # fmt: skip
        copy_weights(model, fixed)
        partial = STANDIN / f".{file_name}.partial"  # renamed when complete: a reader never sees half a file
        fixed.save(partial, save_format="h5", include_optimizer=False)
        os.replace(partial, STANDIN / file_name)
        records[file_name] = {
            "plane": STANDIN_PLANE_OF[file_name],
            "input_shape": [1, *size],
            "sha256": sha256(STANDIN / file_name),
            "bytes": (STANDIN / file_name).stat().st_size,
        }
    info = {
        "generated_by": "bench/goyal_reference.py standin-data, standin",
        "what": "STAND-IN for aagatti/dosma_bones in its published layout: a tiny U-Net of the DOSMA 2-D family "
        "trained on synthetic knees only (tests; meaningless on real MRI). It labels both tibial cartilages 3 and both "
        "menisci 5 (a 2-D slice of the mirror-symmetric phantom cannot tell medial from lateral).",
        "filters": list(filters),
        "epochs": epochs,
        "final_loss": float(history.history["loss"][-1]),
        "training_slices": {p: len(data[f"{p}_x"]) for p in ("sagittal", "coronal", "axial")},
        "versions": _versions(tf, keras),
        "files": records,
    }
    (STANDIN / "standin.json").write_text(json.dumps(info, indent=2) + "\n")


def full_size(args) -> None:
    """(TF venv) Random-weight full-size networks, as DOSMA's 2-D U-Nets are sized: sagittal 512x512, coronal and
    axial 160x512 (one set of weights; the real coronal/axial files are about half the size, architecture unknown)."""
    _, keras = _tf()
    keras.utils.set_random_seed(SEED)
    filters = tuple(32 * 2**k for k in range(6))  # DOSMA's StanfordQDessUNet2D / OAIUnet2D: 32..1024, 6 levels
    FULL_SIZE.parent.mkdir(parents=True, exist_ok=True)
    sagittal = None
    for plane, size in (("sagittal", (512, 512)), ("coronal", (160, 512)), ("axial", (160, 512))):
        model = unet(keras, "channels_first", size=size, filters=filters, up="transpose", name=f"fullsize_{plane}",
                     softmax="layer")  # fmt: skip
        if sagittal is None:
            randomise_batchnorm(model, np.random.default_rng(SEED))
            sagittal = model
        else:
            copy_weights(sagittal, model)
        path = FULL_SIZE.with_name(f"goyal_fullsize_{plane}.h5")
        model.save(path, save_format="h5", include_optimizer=False)
        print(f"{path}: {model.count_params():,} parameters, {path.stat().st_size / 1e6:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fixtures").set_defaults(func=fixtures)
    data = sub.add_parser("standin-data")
    data.add_argument("--cases", type=int, default=12)
    data.set_defaults(func=standin_data)
    train = sub.add_parser("standin")
    train.add_argument("--epochs", type=int, default=12)
    train.set_defaults(func=standin)
    sub.add_parser("full-size").set_defaults(func=full_size)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
