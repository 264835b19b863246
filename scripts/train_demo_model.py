"""Train KneeScope's offline DEMO segmentation model on synthetic knees (NOT for real MRI).

The result is an nnU-Net v2 model folder in exactly the published layout, so the real inference path
(``nnUNetPredictor.initialize_from_trained_model_folder`` -> ``predict_single_npy_array``) runs unchanged::

    <out>/Dataset901_KneeScopeDemo/nnUNetTrainer__nnUNetPlans__3d_fullres/
        dataset.json   labels in the NATIVE order of the published knee model (so the engine's remap is exercised)
        plans.json     one 3d_fullres configuration: 1.0 mm isotropic, patch 80^3, a small PlainConvUNet
        fold_0/checkpoint_final.pth
        demo_report.json   how it was trained and its held-out Dice

How (a short custom loop instead of nnU-Net's trainer, which would need hours on 2 CPU cores):

1. Training knees: ``make_phantom`` with random side, cartilage thicknesses (1.5-3.0 mm), centre, orientation
   (sagittal/axial/coronal, some slightly oblique) and acquisition spacing; ``render_mr`` with random seed, noise
   and bias. Each image goes through nnU-Net's own ``DefaultPreprocessor`` (z-score, cubic resampling to 1 mm), so
   training inputs are exactly what the predictor feeds the network. Targets are the one-hot labels resampled
   the same way (linear), i.e. partial-volume fractions: soft targets make the network's probabilities place
   boundaries between 1 mm voxels, which is what keeps thin cartilage accurate at the original 0.36 mm grid.
2. Random 80^3 crops, left-right mirroring (label-consistent: a mirrored knee is a knee of the other side whose
   medial compartment is still medial), intensity jitter; soft cross-entropy + soft Dice with nnU-Net-style deep
   supervision, plus a training-only head that predicts the knee side from the bottleneck (see ``train``); Adam
   with a poly schedule over a budget of CPU time (``--cpu-minutes``), so a busy machine trains as much as an
   idle one.
3. Held-out knees, generated with other seeds, are segmented at their original grid through ``nnUNetPredictor``
   and scored per structure (Dice); the numbers go to ``demo_report.json``.

The phantom's medial and lateral compartments are mirror images; only the patella's 10 degree tilt tells the knee
side, so the network needs a receptive field spanning patella and tibial plateau (5 stages at 1 mm, ~12 cm).

Usage::

    python scripts/train_demo_model.py --out weights/demo --cpu-minutes 50
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import labels as L  # noqa: E402
from pipeline.synthetic import ORIENTATIONS, PhantomSpec, make_phantom, render_mr  # noqa: E402

logger = logging.getLogger("train_demo_model")

DATASET = "Dataset901_KneeScopeDemo"
TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
WORKING_SPACING_MM = 1.0
PATCH = 80
FEATURES = [4, 8, 16, 48, 96]
CONV_PER_STAGE = [1, 2, 2, 2, 2]
N_CLASSES = 10  # background + 9 structures
SIDE_LOSS_WEIGHT = 0.5
DEMO_NOTE = (
    "KneeScope DEMO model: trained only on synthetic knee phantoms rendered as MR-like images "
    "(scripts/train_demo_model.py). NOT for real MRI, research or clinical use."
)
ACQUISITION_SPACINGS = ((0.36, 0.36, 0.7), (0.5, 0.5, 1.0), (0.45, 0.45, 0.8), (0.6, 0.6, 0.6))


# --- model folder ---------------------------------------------------------------------------------------------
def dataset_json(num_training: int) -> dict:
    """nnU-Net dataset.json with the published model's NATIVE label order (values), named by structure."""
    labels = {"background": 0, **dict(sorted(L.NATIVE.items(), key=lambda kv: kv[1]))}
    return {
        "name": DATASET,
        "description": DEMO_NOTE,
        "channel_names": {"0": "MRI"},
        "labels": labels,
        "numTraining": num_training,
        "file_ending": ".nii.gz",
        "licence": "Apache-2.0 (KneeScope); synthetic training data",
    }


def architecture() -> dict:
    """plans.json ``architecture`` entry of the demo network (PlainConvUNet, 5 stages, ~0.65 M parameters)."""
    n = len(FEATURES)
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": FEATURES,
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * n,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
            "n_conv_per_stage": CONV_PER_STAGE,
            "n_conv_per_stage_decoder": [1] * (n - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def plans_json() -> dict:
    """nnU-Net plans.json with a single 3d_fullres configuration at 1 mm isotropic."""

    def rs(is_seg: bool, order: int) -> dict:
        return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}

    spacing = [WORKING_SPACING_MM] * 3
    return {
        "dataset_name": DATASET,
        "plans_name": "nnUNetPlans",
        "description": DEMO_NOTE,
        "original_median_spacing_after_transp": [0.7, 0.36, 0.36],
        "original_median_shape_after_transp": [127, 249, 174],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "KneeScope scripts/train_demo_model.py (hand-written plans)",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 600.0,
                "mean": 190.0,
                "median": 175.0,
                "min": 0.0,
                "percentile_00_5": 20.0,
                "percentile_99_5": 480.0,
                "std": 110.0,
            }
        },
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": [PATCH] * 3,
                "median_image_size_in_voxels": [89, 89, 62],
                "spacing": spacing,
                "normalization_schemes": ["ZScoreNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": rs(False, 3),
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_seg_kwargs": rs(True, 1),
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": rs(False, 1),
                "architecture": architecture(),
                "batch_dice": True,
            }
        },
    }


def build_network(deep_supervision: bool = False):
    """The demo network exactly as nnU-Net's trainer builds it from plans.json.

    With deep supervision the decoder also returns its coarser outputs (training only); the state_dict keys are
    the same either way, so the predictor loads the trained weights into its deep-supervision-free copy.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(plans_json())
    cm = pm.get_configuration("3d_fullres")
    return nnUNetTrainer.build_network_architecture(pm, cm, 1, N_CLASSES, enable_deep_supervision=deep_supervision)


def save_model_folder(out: Path, state_dict: dict, *, num_training: int, report: dict | None = None) -> Path:
    """Write dataset.json, plans.json and fold_0/checkpoint_final.pth; returns the trainer folder."""
    import torch

    folder = out / DATASET / TRAINER_FOLDER
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(dataset_json(num_training), indent=2) + "\n")
    (folder / "plans.json").write_text(json.dumps(plans_json(), indent=2) + "\n")
    # Through a freshly built network: standard memory format, and the aliases (decoder.encoder.*, all_modules.*)
    # share storage again, so each tensor is stored once.
    net = build_network()
    net.load_state_dict(state_dict)
    checkpoint = {
        "network_weights": net.state_dict(),
        "trainer_name": "nnUNetTrainer",
        "init_args": {"configuration": "3d_fullres", "fold": 0, "plans": "nnUNetPlans", "dataset": DATASET},
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "kneescope": {"demo": True, "note": DEMO_NOTE},
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    if report is not None:
        (folder / "demo_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return folder


# --- data -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One preprocessed training knee at the working spacing.

    image: (Z, Y, X) float16, z-scored then resampled by nnU-Net's preprocessor.
    target: (10, Z, Y, X) uint8, partial-volume fraction of each class (0-255), channel = NATIVE label value.
    """

    image: np.ndarray
    target: np.ndarray
    spec: dict
    lr_axis: int  # array axis (0-2) closest to the patient's left-right direction


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A random rotation of at most ``max_deg`` degrees (axis-angle, Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-max_deg, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def random_spec(rng: np.random.Generator) -> PhantomSpec:
    """A random synthetic knee: side, thicknesses, centre, orientation (sometimes oblique), acquisition spacing."""
    orientation = str(rng.choice(list(ORIENTATIONS)))
    direction = ORIENTATIONS[orientation]
    if rng.random() < 0.4:
        direction = _rotation(rng, 8.0) @ direction
    return PhantomSpec(
        side=str(rng.choice(["right", "left"])),
        femoral_mm=float(rng.uniform(1.5, 3.0)),
        tibial_mm=float(rng.uniform(1.5, 3.0)),
        patellar_mm=float(rng.uniform(1.5, 3.2)),
        spacing=ACQUISITION_SPACINGS[int(rng.integers(len(ACQUISITION_SPACINGS)))],
        orientation=orientation,
        direction=direction,
        centre_lps=tuple(float(c) for c in rng.uniform(-30, 30, 3)),
    )


def _spec_dict(spec: PhantomSpec) -> dict:
    return {
        "side": spec.side,
        "femoral_mm": round(spec.femoral_mm, 3),
        "tibial_mm": round(spec.tibial_mm, 3),
        "patellar_mm": round(spec.patellar_mm, 3),
        "spacing": list(spec.spacing),
        "orientation": spec.orientation,
    }


def _native_labels(canonical: np.ndarray) -> np.ndarray:
    """Canonical label array -> NATIVE label array (the order the model is trained to output)."""
    lut = np.zeros(256, dtype=np.uint8)
    for name, value in L.NATIVE.items():
        lut[L.CANONICAL[name]] = value
    return lut[canonical]


def make_case(seed: int) -> Case:
    """Generate, render and preprocess one training knee (deterministic for a seed)."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    rng = np.random.default_rng(seed)
    spec = random_spec(rng)
    phantom = make_phantom(spec)
    image = render_mr(
        phantom.labels,
        seed=int(rng.integers(1 << 30)),
        noise=float(rng.uniform(0.02, 0.07)),
        bias=float(rng.uniform(0.05, 0.35)),
    )
    pm = PlansManager(plans_json())
    cm = pm.get_configuration("3d_fullres")
    spacing_zyx = list(phantom.labels.spacing[::-1])
    data, _, _props = DefaultPreprocessor(verbose=False).run_case_npy(
        image.array[None].astype(np.float32), None, {"spacing": spacing_zyx}, pm, cm, dataset_json(0)
    )
    native = _native_labels(phantom.labels.array)
    onehot = np.stack([(native == c) for c in range(N_CLASSES)]).astype(np.float32)
    fractions = resample_data_or_seg_to_shape(onehot, data.shape[1:], spacing_zyx, cm.spacing, is_seg=False, order=1)
    fractions = np.clip(fractions, 0, None)
    fractions /= np.maximum(fractions.sum(0, keepdims=True), 1e-6)
    target = np.round(fractions * 255).astype(np.uint8)
    return Case(data[0].astype(np.float16), target, _spec_dict(spec), _lr_axis(phantom.labels.direction))


def _lr_axis(direction: np.ndarray) -> int:
    """Array axis closest to patient left-right: ITK index axis c (column c of direction) is array axis 2 - c."""
    return 2 - int(np.argmax(np.abs(np.asarray(direction)[0])))


def make_cases(seeds: list[int], workers: int) -> list[Case]:
    if workers <= 1:
        return [make_case(s) for s in seeds]
    from multiprocessing import get_context

    with get_context("spawn").Pool(workers) as pool:
        return pool.map(make_case, seeds)


# --- training -------------------------------------------------------------------------------------------------
def _pad_to(array: np.ndarray, size: int, value: float) -> np.ndarray:
    pads = [(0, 0)] * (array.ndim - 3) + [
        (max(0, size - n) // 2, max(0, size - n) - max(0, size - n) // 2) for n in array.shape[-3:]
    ]
    return np.pad(array, pads, constant_values=value)


def sample_patch(case: Case, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """A random 80^3 crop, mirrored left-right half the time, with intensity jitter.

    Returns the image (1,P,P,P), the target fractions (C,P,P,P) and 1.0 for a right knee (after mirroring).

    Only the left-right mirror is used: it turns a knee into a valid knee of the other side in the same
    acquisition orientation. Other flips/permutations would show upside-down knees the model never meets and
    multiply what a small network has to learn.
    """
    image = _pad_to(case.image.astype(np.float32), PATCH, 0.0)
    target = case.target.astype(np.float32) / 255.0
    background = _pad_to(target[:1], PATCH, 1.0)
    target = np.concatenate([background, _pad_to(target[1:], PATCH, 0.0)])
    start = [int(rng.integers(0, n - PATCH + 1)) for n in image.shape]
    sl = tuple(slice(s, s + PATCH) for s in start)
    image, target = image[sl][None], target[(slice(None), *sl)]
    right = case.spec["side"] == "right"
    if rng.random() < 0.5:
        # The mirrored knee's medial compartment is still labelled medial (the anatomy moved with the image).
        image, target = np.flip(image, case.lr_axis + 1), np.flip(target, case.lr_axis + 1)
        right = not right
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0, 0.1)
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(0.02, 0.15), image.shape)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(target), float(right)


def deep_supervision_loss(outputs, target):
    """nnU-Net-style deep supervision: the soft loss at every decoder scale, weights 1, 1/2, 1/4, ... (coarsest 0).

    Coarse targets are average-pooled fractions, i.e. the exact partial-volume fractions at that scale. The coarse
    outputs learn *which* structure is where (femur vs patella, medial vs lateral) fast and pass that straight
    into the deep layers, which is what plain full-resolution training learns slowest.
    """
    import torch.nn.functional as F

    weights = [1 / 2**k for k in range(len(outputs))]
    weights[-1] = 0.0
    total, loss = sum(weights), 0.0
    for k, (out, w) in enumerate(zip(outputs, weights, strict=True)):
        if w:
            t = target if k == 0 else F.avg_pool3d(target, 2**k)
            loss = loss + w / total * soft_loss(out, t)
    return loss


def soft_loss(logits, target):
    """Soft-target cross-entropy + soft Dice over the foreground classes (batch Dice)."""
    import torch

    log_p = torch.log_softmax(logits, 1)
    ce = -(target * log_p).sum(1).mean()
    p = log_p.exp()[:, 1:]
    t = target[:, 1:]
    axes = (0, 2, 3, 4)
    dice = (2 * (p * t).sum(axes) + 1e-5) / (p.sum(axes) + t.sum(axes) + 1e-5)
    return ce + (1 - dice.mean())


def train(
    cases: list[Case], val: list[Case], *, cpu_minutes: float, seed: int, batch: int, out: Path, init: Path | None
) -> dict:
    """Training loop with a budget in CPU time of this process (so a busy shared machine gets the same training
    as an idle one, only later); returns the best state_dict (by validation Dice) and the log."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_network(deep_supervision=True)
    if init is not None:
        net.load_state_dict(torch.load(init, map_location="cpu", weights_only=False)["network_weights"])
    # channels-last 3-D convolutions take about half the CPU time of the default layout here
    net = net.to(memory_format=torch.channels_last_3d)
    net.train()
    # Training-only auxiliary head: knee side (chirality) from the pooled bottleneck. The phantom's medial and
    # lateral compartments are mirror images, and only the patella's tilt tells them apart; without this direct
    # signal the bottleneck learns that cue very slowly and the network calls both compartments medial.
    side_head = torch.nn.Linear(FEATURES[-1], 1)
    opt = torch.optim.Adam([*net.parameters(), *side_head.parameters()], lr=3e-3, weight_decay=1e-5)
    side_correct: list[float] = []
    budget, t0, wall0 = cpu_minutes * 60.0, time.process_time(), time.perf_counter()
    peak_lr = 3e-3 if init is None else 2e-3
    log, best, it = [], (-1.0, None), 0
    next_val = 0.2
    while (elapsed := time.process_time() - t0) < budget:
        frac = elapsed / budget
        lr = peak_lr * min(1.0, (it + 1) / 10) * (1 - frac) ** 0.9
        for group in opt.param_groups:
            group["lr"] = lr
        picks = [cases[int(rng.integers(len(cases)))] for _ in range(batch)]
        x, y, right = zip(*(sample_patch(c, rng) for c in picks), strict=True)
        skips = net.encoder(torch.from_numpy(np.stack(x)).contiguous(memory_format=torch.channels_last_3d))
        side_logit = side_head(skips[-1].mean(dim=(2, 3, 4)))[:, 0]
        side = torch.tensor(right)
        loss = deep_supervision_loss(net.decoder(skips), torch.from_numpy(np.stack(y)))
        loss = loss + SIDE_LOSS_WEIGHT * torch.nn.functional.binary_cross_entropy_with_logits(side_logit, side)
        side_correct = [*side_correct[-99:], *((side_logit > 0).float() == side).float().tolist()]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        if it % 10 == 0:
            logger.info(
                "it %d  %.1f cpu-min  loss %.4f  lr %.2e  side accuracy (last 100) %.2f",
                it, elapsed / 60, loss.item(), lr, np.mean(side_correct),
            )  # fmt: skip
        if frac >= next_val or (elapsed + 1 >= budget):
            next_val += 0.2
            dice = validate(net, val)
            log.append(
                {
                    "iteration": it,
                    "cpu_minutes": round(elapsed / 60, 2),
                    "loss": round(loss.item(), 4),
                    "val_dice": dice,
                }
            )
            logger.info("validation it %d: mean Dice %.3f per case %s", it, np.mean(dice), dice)
            if np.mean(dice) >= best[0]:
                best = (float(np.mean(dice)), copy.deepcopy(net.state_dict()))  # deepcopy keeps shared storage
                save_model_folder(out, best[1], num_training=len(cases))
            net.train()
    return {
        "state_dict": best[1],
        "log": log,
        "iterations": it,
        "cpu_minutes": round((time.process_time() - t0) / 60, 2),
        "wall_minutes": round((time.perf_counter() - wall0) / 60, 2),
    }


def validate(net, val: list[Case]) -> list[float]:
    """Mean foreground Dice per validation case at the working spacing (argmax vs argmax of the fractions)."""
    import torch

    net.eval()
    scores = []
    with torch.no_grad():
        for case in val:
            image = _pad_to(case.image.astype(np.float32), PATCH, 0.0)
            pred = _sliding_argmax(net, image)
            truth = _pad_to(case.target, PATCH, 0).argmax(0)
            d = [
                2 * np.sum((pred == c) & (truth == c)) / max(1, np.sum(pred == c) + np.sum(truth == c))
                for c in range(1, N_CLASSES)
            ]
            scores.append(round(float(np.mean(d)), 4))
    return scores


def _sliding_argmax(net, image: np.ndarray) -> np.ndarray:
    import torch

    logits = np.zeros((N_CLASSES, *image.shape), dtype=np.float32)
    starts = [sorted({0, n - PATCH, max(0, (n - PATCH) // 2)}) for n in image.shape]
    for a in starts[0]:
        for b in starts[1]:
            for c in starts[2]:
                sl = (slice(a, a + PATCH), slice(b, b + PATCH), slice(c, c + PATCH))
                out = net(torch.from_numpy(np.ascontiguousarray(image[sl]))[None, None])
                out = (out[0] if isinstance(out, (list, tuple)) else out)[0]  # full-resolution output, first case
                logits[(slice(None), *sl)] += torch.softmax(out, 0).numpy()
    return logits.argmax(0)


# --- held-out evaluation at the original grid ------------------------------------------------------------------
HELD_OUT = (
    {"side": "right", "femoral_mm": 2.0, "tibial_mm": 2.0, "patellar_mm": 2.5},
    {"side": "left", "femoral_mm": 1.6, "tibial_mm": 2.4, "patellar_mm": 2.0},
    {"side": "right", "femoral_mm": 2.8, "tibial_mm": 1.7, "patellar_mm": 3.0, "orientation": "axial"},
    {
        "side": "left",
        "femoral_mm": 2.2,
        "tibial_mm": 2.6,
        "patellar_mm": 2.2,
        "orientation": "coronal",
        "centre_lps": (-20.0, 10.0, 5.0),
    },
)


def evaluate_held_out(folder: Path) -> list[dict]:
    """Segment held-out phantoms at 0.36x0.36x0.7 mm with nnUNetPredictor; Dice per structure vs the truth."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_mirroring=False,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    results = []
    for i, kwargs in enumerate(HELD_OUT):
        phantom = make_phantom(PhantomSpec(**kwargs))
        image = render_mr(phantom.labels, seed=10_000 + i)
        t0 = time.perf_counter()
        seg = predictor.predict_single_npy_array(
            image.array[None].astype(np.float32), {"spacing": list(image.spacing[::-1])}, None, None, False
        )
        seconds = time.perf_counter() - t0
        truth = _native_labels(phantom.labels.array)
        dice = {name: round(_dice(seg == v, truth == v), 4) for name, v in L.NATIVE.items()}
        results.append(
            {
                "spec": dict(kwargs),
                "dice": dice,
                "mean_dice": round(float(np.mean(list(dice.values()))), 4),
                "seconds": round(seconds, 1),
            }
        )
        logger.info("held-out %s: mean Dice %.3f %s", kwargs, results[-1]["mean_dice"], dice)
    return results


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    denominator = a.sum() + b.sum()
    return float(2 * np.sum(a & b) / denominator) if denominator else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument(
        "--cpu-minutes",
        type=float,
        default=50.0,
        help="training budget in CPU minutes of this process (50 = 25 min on 2 idle cores; data generation excluded)",
    )
    parser.add_argument("--init", type=Path, default=None, help="continue from this checkpoint (lower learning rate)")
    parser.add_argument("--cases", type=int, default=24, help="number of synthetic training knees")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes generating training knees")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="npz cache of generated cases (reused if present)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    cases, val = _load_or_make(args)
    data_minutes = (time.perf_counter() - t0) / 60
    logger.info("generated %d training and %d validation knees in %.1f min", len(cases), len(val), data_minutes)
    trained = train(
        cases, val, cpu_minutes=args.cpu_minutes, seed=args.seed, batch=args.batch, out=args.out, init=args.init
    )
    folder = save_model_folder(args.out, trained["state_dict"], num_training=len(cases))
    held_out = evaluate_held_out(folder)
    report = {
        "note": DEMO_NOTE,
        "script": "scripts/train_demo_model.py",
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "torch": torch.__version__,
        "data_generation_minutes": round(data_minutes, 2),
        "training_cpu_minutes": trained["cpu_minutes"],
        "training_wall_minutes": trained["wall_minutes"],
        "iterations": trained["iterations"],
        "validation_log": trained["log"],
        "held_out_original_grid": held_out,
        "held_out_mean_dice": round(float(np.mean([r["mean_dice"] for r in held_out])), 4),
        "training_knees": [c.spec for c in cases],
    }
    save_model_folder(args.out, trained["state_dict"], num_training=len(cases), report=report)
    logger.info("wrote %s (held-out mean Dice %.3f)", folder, report["held_out_mean_dice"])
    return 0


def _load_or_make(args) -> tuple[list[Case], list[Case]]:
    seeds = [args.seed * 1000 + i for i in range(args.cases + 3)]
    if args.cache is not None and args.cache.exists():
        z = np.load(args.cache, allow_pickle=True)
        specs = [json.loads(str(z[f"spec{i}"])) for i in range(len(seeds))]
        all_cases = [
            Case(z[f"image{i}"], z[f"target{i}"], spec, _lr_axis(ORIENTATIONS[spec["orientation"]]))
            for i, spec in enumerate(specs)
        ]
    else:
        all_cases = make_cases(seeds, args.workers)
        if args.cache is not None:
            arrays = {}
            for i, c in enumerate(all_cases):
                arrays.update({f"image{i}": c.image, f"target{i}": c.target, f"spec{i}": json.dumps(c.spec)})
            np.savez(args.cache, **arrays)
    return all_cases[:-3], all_cases[-3:]


if __name__ == "__main__":
    raise SystemExit(main())
