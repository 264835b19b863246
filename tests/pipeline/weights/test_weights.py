"""Weights: the manifest, a hand-built Hugging Face cache in the published layout, offline use, clear failures.

Also home of ``write_tiny_published_model``: a random-weight ResEnc model pair structurally like
``aagatti/nnunet_knee`` (docs: model-formats.md §3.6), used here and in test_segment.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import pytest

from pipeline import weights
from pipeline.errors import WeightsUnavailableError
from pipeline.segmentation import map_model_labels, structure_for_label_name

DATASET = "Dataset500_KneeMRI"
PREFIX = "nnUNetTrainer__nnUNetResEncUNetMPlans__"
#: DOSMA-style short names, so the name matching (not the fallback) is what maps them.
SHORT_NAMES = {
    "background": 0, "pat_cart": 1, "fem_cart": 2, "med_tib_cart": 3, "lat_tib_cart": 4,
    "med_men": 5, "lat_men": 6, "fem": 7, "tib": 8, "pat": 9,
}  # fmt: skip
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _tiny_plans() -> dict:
    def rs(is_seg: bool, order: int) -> dict:
        return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}

    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
        "arch_kwargs": {
            "n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            "n_blocks_per_stage": [1, 3, 4], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }  # fmt: skip

    def config(identifier: str, spacing: float, **extra) -> dict:
        return {
            "data_identifier": identifier, "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [16, 32, 32], "median_image_size_in_voxels": [40, 80, 80], "spacing": [spacing] * 3,
            "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": rs(False, 3),
            "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_seg_kwargs": rs(True, 1),
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": rs(False, 1), "architecture": arch, "batch_dice": False, **extra,
        }  # fmt: skip

    return {
        "dataset_name": "Dataset950_TinyKnee", "plans_name": "nnUNetResEncUNetMPlans",
        "original_median_spacing_after_transp": [0.7, 0.36, 0.36],
        "original_median_shape_after_transp": [160, 384, 384],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "nnUNetPlannerResEncM", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 600.0, "mean": 190.0, "median": 175.0, "min": 0.0, "percentile_00_5": 20.0,
            "percentile_99_5": 480.0, "std": 110.0}},
        "configurations": {
            "3d_fullres": config("nnUNetResEncUNetMPlans_3d_fullres", 2.0),
            "3d_lowres": config("nnUNetResEncUNetMPlans_3d_lowres", 4.0, next_stage="3d_cascade_fullres"),
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
        },
    }  # fmt: skip


def write_tiny_published_model(
    root: Path,
    *,
    configurations: tuple[str, ...] = ("3d_fullres", "3d_lowres", "3d_cascade_fullres"),
    fold: int = 1,
    checkpoint: str = "checkpoint_best.pth",
    labels: dict | None = None,
) -> Path:
    """Random-weight models in the HF layout: ``root/models/Dataset500_KneeMRI/<trainer>__<plans>__<cfg>/``."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = _tiny_plans()
    dataset = {
        "channel_names": {"0": "RSS"},
        "labels": labels or SHORT_NAMES,
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    pm = PlansManager(plans)
    torch.manual_seed(0)
    for cfg in configurations:
        folder = root / "models" / DATASET / f"{PREFIX}{cfg}"
        (folder / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        (folder / "plans.json").write_text(json.dumps(plans))
        (folder / "dataset.json").write_text(json.dumps(dataset))
        cm = pm.get_configuration(cfg)
        n_in = 1 + (len(dataset["labels"]) - 1 if cm.previous_stage_name else 0)
        net = nnUNetTrainer.build_network_architecture(
            pm, cm, n_in, len(dataset["labels"]), enable_deep_supervision=False
        )
        ckpt = {
            "network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
            "init_args": {"configuration": cfg, "fold": fold}, "inference_allowed_mirroring_axes": (0, 1, 2),
        }  # fmt: skip
        torch.save(ckpt, folder / f"fold_{fold}" / checkpoint)
    return root


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """A local copy of the knee repo's layout (all three configurations, fold 1, checkpoint_best.pth)."""
    return write_tiny_published_model(tmp_path_factory.mktemp("tiny_repo"))


@pytest.fixture
def hub_cache(tiny_repo, tmp_path) -> Path:
    """A hand-built huggingface_hub cache holding the tiny repo as commit FAKE_COMMIT (refs/main points to it)."""
    storage = tmp_path / "cache" / "models--aagatti--nnunet_knee"
    shutil.copytree(tiny_repo, storage / "snapshots" / FAKE_COMMIT)
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(FAKE_COMMIT)
    return tmp_path / "cache"


# --- manifest -------------------------------------------------------------------------------------------------
def test_manifest_describes_published_models():
    manifest = weights.load_manifest()
    assert {"fullres", "cascade", "demo", "nsm_647", "nsm_551"} <= set(manifest)
    fullres, cascade = manifest["fullres"], manifest["cascade"]
    for entry in (fullres, cascade):
        assert entry.repo_id == "aagatti/nnunet_knee" and entry.checkpoint == "checkpoint_best.pth"
        assert entry.root == f"models/{DATASET}" and not entry.gated
        for stage in entry.stages:  # every stage's files are fetched, nothing else (no test data, no other configs)
            assert any(p.startswith(f"{entry.root}/{stage}/") and p.endswith(".json") for p in entry.allow_patterns)
            assert any(p.startswith(f"{entry.root}/{stage}/") and "checkpoint_best" in p for p in entry.allow_patterns)
    assert fullres.stages == (f"{PREFIX}3d_fullres",) and fullres.fold == "auto"
    assert cascade.stages == (f"{PREFIX}3d_lowres", f"{PREFIX}3d_cascade_fullres") and cascade.fold == 1
    for name in ("nsm_647", "nsm_551"):
        assert manifest[name].gated and manifest[name].repo_id == "aagatti/ShapeMedKnee"
    assert manifest["nsm_647"].checkpoint == "model/2000.pth" and manifest["nsm_551"].checkpoint == "model/1150.pth"


def test_bundled_demo_model_verifies_with_checksum():
    resolved = weights.resolve_model("demo")
    entry = resolved.entry
    assert resolved.origin == "bundled" and entry.pinned
    expected = entry.files[0]
    assert expected.sha256 and expected.size, "the demo checkpoint's size and sha256 are pinned in the manifest"
    assert weights.sha256_file(resolved.base / expected.path) == expected.sha256
    assert (resolved.base / expected.path).stat().st_size < 5 * 1024 * 1024
    dataset = json.loads((resolved.stage_dirs[0] / "dataset.json").read_text())
    assert "DEMO" in dataset["description"] and "NOT for real MRI" in dataset["description"]


# --- hub cache, offline ---------------------------------------------------------------------------------------
def test_hand_built_hub_cache_resolves_offline(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, n_stages in (("fullres", 1), ("cascade", 2)):
        resolved = weights.resolve_model(name, cache_dir=hub_cache)
        assert resolved.origin == "hub-cache" and resolved.revision == FAKE_COMMIT
        assert resolved.fold == 1 and len(resolved.stage_dirs) == n_stages
        assert all(p.is_file() for p in resolved.checkpoints)
        info = resolved.describe()
        assert info["revision"] == FAKE_COMMIT and all(len(h) == 64 for h in info["checkpoints"].values())


def test_pinned_revision_is_used(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pinned = dataclasses.replace(weights.get_entry("fullres"), revision=FAKE_COMMIT)
    assert pinned.pinned
    assert weights.resolve_model(pinned, cache_dir=hub_cache).revision == FAKE_COMMIT
    other = dataclasses.replace(pinned, revision="f" * 40)
    with pytest.raises(WeightsUnavailableError, match="not in the local cache"):
        weights.resolve_model(other, cache_dir=hub_cache)


def test_partial_snapshot_does_not_count_as_cached(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = hub_cache / "models--aagatti--nnunet_knee" / "snapshots" / FAKE_COMMIT
    shutil.rmtree(snapshot / "models" / DATASET / f"{PREFIX}3d_cascade_fullres")
    assert weights.resolve_model("fullres", cache_dir=hub_cache).revision == FAKE_COMMIT
    with pytest.raises(WeightsUnavailableError, match="not in the local cache"):
        weights.resolve_model("cascade", cache_dir=hub_cache)


def test_offline_and_not_cached_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        weights.resolve_model("fullres", cache_dir=tmp_path)
    message = str(err.value)
    assert "HF_HUB_OFFLINE=1" in message and "python -m pipeline weights download fullres" in message
    assert "--model-dir" in message


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://127.0.0.1:9",  # connection refused at once
        "https://10.255.255.1",  # unroutable: no answer (or, behind a sandbox proxy, a connect and then silence)
    ],
)
def test_no_network_fails_fast(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    host = endpoint.split("//")[1].split(":")[0]
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match=f"cannot reach {host}"):
        weights.resolve_model("fullres", cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 5.0


def test_gated_model_without_token_explains_access(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(WeightsUnavailableError) as err:
        weights.resolve_model("nsm_647", cache_dir=tmp_path)
    message = str(err.value)
    assert "gated" in message and "https://huggingface.co/aagatti/ShapeMedKnee" in message
    assert "accept" in message and "HF_TOKEN" in message


# --- local model folders and broken files ---------------------------------------------------------------------
@pytest.mark.parametrize("level", ["repo", "models", "dataset", "trainer"])
def test_model_dir_in_published_layout(tiny_repo, level):
    base = {
        "repo": tiny_repo,
        "models": tiny_repo / "models",
        "dataset": tiny_repo / "models" / DATASET,
        "trainer": tiny_repo / "models" / DATASET / f"{PREFIX}3d_fullres",
    }[level]
    resolved = weights.resolve_model("fullres", model_dir=base)
    assert resolved.origin == "model-dir" and resolved.fold == 1
    assert resolved.stage_dirs[0].name == f"{PREFIX}3d_fullres"


def test_model_dir_from_environment(tiny_repo, monkeypatch):
    monkeypatch.setenv("KNEESCOPE_MODEL_DIR", str(tiny_repo))
    assert weights.model_dir_from_env() == tiny_repo


def test_truncated_checkpoint_is_reported_with_its_path(tiny_repo, tmp_path):
    copy = shutil.copytree(tiny_repo, tmp_path / "repo")
    checkpoint = copy / "models" / DATASET / f"{PREFIX}3d_fullres" / "fold_1" / "checkpoint_best.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    with pytest.raises(WeightsUnavailableError) as err:
        weights.resolve_model("fullres", model_dir=copy)
    assert str(checkpoint) in str(err.value) and "corrupt" in str(err.value)


def test_missing_checkpoint_is_reported(tiny_repo, tmp_path):
    copy = shutil.copytree(tiny_repo, tmp_path / "repo")
    (copy / "models" / DATASET / f"{PREFIX}3d_cascade_fullres" / "fold_1" / "checkpoint_best.pth").unlink()
    with pytest.raises(WeightsUnavailableError, match=r"missing checkpoint .*3d_cascade_fullres"):
        weights.resolve_model("cascade", model_dir=copy)
    shutil.rmtree(copy / "models" / DATASET / f"{PREFIX}3d_fullres" / "fold_1")
    with pytest.raises(WeightsUnavailableError, match=r"No fold_<k>/checkpoint_best.pth"):
        weights.resolve_model("fullres", model_dir=copy)


def test_missing_model_dir(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        weights.resolve_model("fullres", model_dir=tmp_path / "nowhere")


# --- label names ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "structure"),
    [
        ("pat_cart", "patellar_cartilage"), ("Patellar Cartilage", "patellar_cartilage"),
        ("fem_cart", "femoral_cartilage"), ("femoral_cartilage", "femoral_cartilage"),
        ("med_tib_cart", "medial_tibial_cartilage"), ("lateral tibial cartilage", "lateral_tibial_cartilage"),
        ("mtc", "medial_tibial_cartilage"), ("med_men", "medial_meniscus"), ("Lateral-Meniscus", "lateral_meniscus"),
        ("fem", "femur"), ("Femur bone", "femur"), ("tibia", "tibia"), ("pat", "patella"),
        ("fibula", None), ("tibial_cartilage", None), ("medial_femur", None), ("background", None),
    ],
)  # fmt: skip
def test_label_names_map_to_structures(name, structure):
    assert structure_for_label_name(name) == structure


def test_model_labels_mapped_by_name_not_position():
    shuffled = {"background": 0, "fem": 3, "tib": 1, "pat": 2, "fem_cart": 9, "med_tib_cart": 8, "lat_tib_cart": 7,
                "pat_cart": 6, "med_men": 5, "lat_men": 4, "fibula": 10}  # fmt: skip
    mapping = map_model_labels(shuffled)
    assert mapping.method == "names" and mapping.unmapped == {"fibula": 10}
    assert mapping.model_to_canonical[3] == 1 and mapping.model_to_canonical[1] == 2  # femur, tibia
    assert mapping.lookup_table()[10] == 0


def test_native_order_fallback_and_refusals():
    generic = {"background": 0, **{f"label_{i}": i for i in range(1, 10)}}
    fallback = map_model_labels(generic, fallback="native")
    assert fallback.method == "fallback:native" and fallback.model_to_canonical[7] == 1  # native 7 = femur
    with pytest.raises(WeightsUnavailableError, match="not a knee segmentation model"):
        map_model_labels(generic)
    with pytest.raises(WeightsUnavailableError, match="both name femur"):
        map_model_labels({"background": 0, "femur": 1, "fem": 2})
    with pytest.raises(WeightsUnavailableError, match="region"):
        map_model_labels({"background": 0, "knee": [1, 2]})


# --- command line ---------------------------------------------------------------------------------------------
def test_cli_weights_list_and_verify(capsys, tmp_path, monkeypatch):
    from pipeline.cli import main

    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(tmp_path))
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "fullres" in listing and "not downloaded" in listing and "bundled" in listing and "gated" in listing
    assert main(["weights", "verify", "demo"]) == 0
    assert "demo: OK (bundled" in capsys.readouterr().out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["weights", "verify", "fullres"]) == 2
    assert "HF_HUB_OFFLINE=1" in capsys.readouterr().err


def test_cli_verify_without_names_reports_every_model(capsys, hub_cache, monkeypatch):
    """Every model's state is listed; absent models are not failures, a corrupt present one is (exit 2)."""
    from pipeline.cli import main

    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["weights", "verify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    states = {line.split(":")[0]: line for line in lines if not line.startswith(" ")}
    assert set(states) == set(weights.load_manifest())
    assert states["fullres"].startswith("fullres: OK (hub-cache") and states["cascade"].startswith("cascade: OK")
    assert states["demo"].startswith("demo: OK (bundled") and "not downloaded" in states["nsm_647"]
    snapshot = hub_cache / "models--aagatti--nnunet_knee" / "snapshots" / FAKE_COMMIT / "models" / DATASET
    checkpoint = snapshot / f"{PREFIX}3d_lowres" / "fold_1" / "checkpoint_best.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    assert main(["weights", "verify"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("cascade: FAILED") and "corrupt" in line for line in lines)
    assert any(line.startswith("fullres: OK") for line in lines), "the other models are still reported"
