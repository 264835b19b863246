"""Multi-echo spin-echo T2: the estimators, the scanner-like series layout, detection, and T2 inside an analysis.

The synthetic series follow the mono-exponential model the fit inverts (see pipeline.synthetic.mese); Rician noise,
the noise-floor handling and the stimulated-echo stand-in on echo 1 are what make these tests able to fail.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from pipeline.errors import InvalidInputError
from pipeline.io import load_image
from pipeline.t2 import MeseFitOptions, NotQDessError, t2_series_from_source
from pipeline.t2.mese import estimate_noise_sigma, fit_voxels, loglinear_fit, nlls_fit
from tests.fixtures import qdess as qf
from tests.fixtures.clinical import mese_case

TE_MS = np.arange(10.0, 90.0, 10.0)  # 8 echoes, 10-80 ms


def rician(t2_ms: float, *, n: int = 20_000, s0: float = 2000.0, snr: float = 40.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = s0 * np.exp(-TE_MS[:, None] / t2_ms) * np.ones((1, n))
    sigma = s0 / snr
    return np.hypot(clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape))


def test_both_estimators_recover_noiseless_decays():
    t2 = np.array([15.0, 30.0, 45.0, 90.0])
    signals = 1500.0 * np.exp(-TE_MS[:, None] / t2[None, :])
    s0, fitted = loglinear_fit(signals, TE_MS)
    np.testing.assert_allclose(fitted, t2, rtol=1e-9)
    np.testing.assert_allclose(s0, 1500.0, rtol=1e-9)
    use = np.ones(signals.shape, bool)
    s0_nl, t2_nl, _ = nlls_fit(signals, TE_MS, use, s0 * 1.2, fitted * 0.8)  # started away from the answer
    np.testing.assert_allclose(t2_nl, t2, rtol=1e-6)
    np.testing.assert_allclose(s0_nl, 1500.0, rtol=1e-6)


@pytest.mark.parametrize("estimator", ["nlls", "loglinear"])
def test_rician_noise_at_snr_40_is_handled_within_2_percent(estimator):
    options = MeseFitOptions(estimator=estimator)
    for t2 in (25.0, 45.0):
        fit = fit_voxels(rician(t2), TE_MS, options, sigma=50.0)
        assert np.nanmean(fit.t2_ms) == pytest.approx(t2, rel=0.02), (estimator, t2)


def test_ignoring_the_noise_floor_biases_short_t2_upward():
    noisy = rician(25.0)
    handled = np.nanmean(fit_voxels(noisy, TE_MS, MeseFitOptions(), sigma=50.0).t2_ms)
    ignored = np.nanmean(fit_voxels(noisy, TE_MS, MeseFitOptions(noise="none"), sigma=50.0).t2_ms)
    assert abs(handled / 25.0 - 1) < 0.015 < ignored / 25.0 - 1  # about +0.8 % vs +3.4 %


def test_noise_sigma_is_measured_on_the_air_background():
    rng = np.random.default_rng(1)
    air = np.hypot(rng.normal(0, 30.0, 60_000), rng.normal(0, 30.0, 60_000))
    tissue = rng.normal(1500.0, 30.0, 40_000)
    assert estimate_noise_sigma(np.rint(np.concatenate([air, tissue]))) == pytest.approx(30.0, rel=0.06)
    assert estimate_noise_sigma(tissue) is None  # tightly cropped: no air, no guess


def test_options_are_checked():
    with pytest.raises(ValueError, match="offset"):
        MeseFitOptions(estimator="loglinear", noise="offset")
    with pytest.raises(ValueError, match="estimator"):
        MeseFitOptions(estimator="magic")


def test_scanner_like_series_is_read_echo_by_echo():
    case = mese_case()
    folder, phantom = case.example.series_dir, case.example.phantom
    names = sorted(p.name for p in folder.iterdir())
    first_nine = [int(pydicom.dcmread(folder / n, stop_before_pixels=True).EchoNumbers) for n in names[:9]]
    assert first_nine == [1, 2, 3, 4, 5, 6, 7, 8, 1]  # echoes interleave by file name
    header = pydicom.dcmread(folder / names[0], stop_before_pixels=True)
    assert float(header.SliceThickness) == 3.0 and header.MRAcquisitionType == "2D"
    image = load_image(folder)
    source = image.source
    assert [e.echo_time_ms for e in source.echoes] == list(TE_MS)
    assert not image.same_grid(phantom.labels)  # oblique direction and the 3.5 mm slice spacing (gap) kept
    assert image.spacing[2] == pytest.approx(3.5, abs=1e-6)
    assert abs(np.linalg.det(image.direction)) == pytest.approx(1.0) and abs(image.direction[0, 0]) > 0.1
    for file_index in (0, 2, 15, 8 * 10 + 5):  # file n holds slice n // 8, echo n % 8 + 1
        on_disk = pydicom.dcmread(folder / names[file_index]).pixel_array
        np.testing.assert_array_equal(source.echoes[file_index % 8].volume.array[file_index // 8], on_disk)


def test_analysis_reports_mese_t2_within_3_percent_of_truth():
    case = mese_case()
    t2 = case.results_json["t2"]
    assert t2["computed"] and t2["sequence"] == "MESE" and t2["method"] == "mese_nlls"
    assert t2["fit"]["first_echo_excluded"] is True and t2["fit"]["echo_times_fitted_ms"][0] == 20.0
    assert t2["fit"]["noise_sigma"] == pytest.approx(case.example.noise_sigma, rel=0.1)
    for region, truth in case.example.truth_ms.items():
        assert t2["regions"][region]["mean"] == pytest.approx(truth, rel=0.03), region
        assert t2["regions"][region]["deep"]["n_voxels"] > 0
    assert "t2map.nii.gz" in case.files
    tibia = case.result.surfaces["tibia"]
    assert np.nanmedian(tibia.point_data["t2_ms"][tibia.point_data["region"] == 5]) == pytest.approx(36.0, rel=0.03)
    assert case.result.csv_row()["t2_method"] == "mese_nlls"


def test_including_the_contaminated_first_echo_biases_t2():
    from pipeline.t2.mese import mese_t2_ms

    case = mese_case()
    series = t2_series_from_source(case.result.image.source)
    cartilage = case.result.labels.array == 5  # medial tibial cartilage, true T2 36 ms
    included, _ = mese_t2_ms(series, MeseFitOptions(exclude_first_echo=False))
    excluded, _ = mese_t2_ms(series, MeseFitOptions())
    assert np.nanmean(excluded[cartilage]) == pytest.approx(36.0, rel=0.02)
    assert np.nanmean(included[cartilage]) > 36.0 * 1.04  # echo 1 is 10 % low: the decay looks slower


def test_spin_echo_with_too_few_echoes_or_short_tr_is_refused(tmp_path):
    phantom = qf.make_qdess_phantom()
    three = load_image(qf.write_mese_series(tmp_path / "three", phantom, n_echoes=3))
    with pytest.raises(NotQDessError, match="at least 4 echoes; this series has 3"):
        t2_series_from_source(three.source)
    short = qf.write_series(
        tmp_path / "short",
        phantom.labels,
        [np.full(phantom.labels.array.shape, 500.0) + phantom.labels.array] * 4,  # not constant: a readable image
        [10.0, 20.0, 30.0, 40.0],
        tr_ms=300.0,
        flip_deg=90.0,
        description="T1 multi-echo",
        scanning_sequence="SE",
    )
    with pytest.raises(InvalidInputError, match="needs a long TR"):
        t2_series_from_source(load_image(short).source)


def test_label_map_on_another_grid_of_the_knee_is_refused_clearly():
    from pipeline.engine import analyze_labels
    from pipeline.errors import GeometryMismatchError

    case = mese_case()
    other_grid = qf.make_qdess_phantom().labels  # the same knee on a 3-D qDESS-like grid
    with pytest.raises(GeometryMismatchError, match="does not lie on the image's voxel grid"):
        analyze_labels(other_grid, image=case.example.series_dir)
