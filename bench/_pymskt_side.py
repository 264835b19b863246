"""pymskt side of bench/thickness_vs_pymskt.py. Runs ONLY in the benchmark venv bench/.venv-pymskt.

Usage: bench/.venv-pymskt/bin/python bench/_pymskt_side.py SPEC.json OUT.json

SPEC: {"label_map": path, "bone_smooth_var": 0.5, "cart_smooth_var": 0.3125, "ray_cast_length": 10.0,
       "percent_ray_length_opposite_direction": 0.25, "save_npz": dir or null,
       "bones": [{"name": "femur", "label": 5, "cartilage": {"femoral": 1}, "n_points": 20000,
                  "crop_percent": 0.8}, ...]}

Per bone this is the predecessor's sequence (reference-pipeline.md §2.6-2.7, OpenMSK generate_meshes):
BoneMesh(seg_image, label_idx, list_cartilage_labels, bone, crop_percent).create_mesh(smooth_image_var=0.5)
-> resample_surface(clusters=n_points) -> fix_mesh() -> calc_cartilage_thickness(image_smooth_var_cart=0.3125)
(which builds the cartilage meshes, fix_mesh("pcu"), then ray-casts) -> cartilage meshes fix_mesh() ->
assign_cartilage_regions(). The cartilage meshes are built with an explicit create_cartilage_meshes() call
(exactly what calc_cartilage_thickness would call) so meshing and ray casting can be timed apart.
Statistic per region r, as the predecessor: nanmean(thickness[labels == r]).
Timings exclude interpreter start and imports (reported separately as import_s).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time

t_start = time.perf_counter()
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

with contextlib.redirect_stdout(io.StringIO()):  # "pyfocusr not found" banner
    from pymskt.mesh import BoneMesh
import_s = time.perf_counter() - t_start


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    noise = io.StringIO()  # pymskt prints per call ("INTERSECTION IS: 2", meshfix progress)
    out = {"import_s": import_s, "bones": {}, "regions": {}}
    t0 = time.perf_counter()
    seg = sitk.ReadImage(spec["label_map"])
    out["load_s"] = time.perf_counter() - t0
    for cfg in spec["bones"]:
        timings = {}
        labels_of = cfg["cartilage"]  # region name -> label value
        with contextlib.redirect_stdout(noise):
            t = time.perf_counter()
            bone = BoneMesh(
                seg_image=sitk.Image(seg),
                label_idx=cfg["label"],
                list_cartilage_labels=list(labels_of.values()),
                bone=cfg["name"],
                crop_percent=cfg["crop_percent"],
            )
            bone.create_mesh(smooth_image_var=spec["bone_smooth_var"])
            timings["bone_mesh_s"] = time.perf_counter() - t
            t = time.perf_counter()
            bone.resample_surface(clusters=cfg["n_points"])
            bone.fix_mesh()
            timings["resample_fix_s"] = time.perf_counter() - t
            t = time.perf_counter()
            bone.create_cartilage_meshes(image_smooth_var_cart=spec["cart_smooth_var"])
            timings["cartilage_meshes_s"] = time.perf_counter() - t
            t = time.perf_counter()
            bone.calc_cartilage_thickness(
                ray_cast_length=spec["ray_cast_length"],
                percent_ray_length_opposite_direction=spec["percent_ray_length_opposite_direction"],
            )
            timings["ray_cast_s"] = time.perf_counter() - t
            t = time.perf_counter()
            for cart_mesh in bone.list_cartilage_meshes:
                cart_mesh.fix_mesh()
            bone.assign_cartilage_regions(
                ray_cast_length=spec["ray_cast_length"],
                percent_ray_length_opposite_direction=spec["percent_ray_length_opposite_direction"],
            )
            timings["regions_s"] = time.perf_counter() - t
        timings["mesh_plus_thickness_s"] = sum(
            timings[k] for k in ("bone_mesh_s", "resample_fix_s", "cartilage_meshes_s", "ray_cast_s")
        )
        thickness = np.asarray(bone.point_data["thickness (mm)"], dtype=float)
        labels = np.asarray(bone.point_data["labels"], dtype=int)
        out["bones"][cfg["name"]] = {
            "n_points": int(bone.n_points),
            "timings_s": timings,
            "n_thickness_gt0": int((thickness > 0).sum()),
        }
        for region, value in labels_of.items():
            values = thickness[labels == value]
            out["regions"][region] = {
                "mean": float(np.nanmean(values)) if values.size else None,
                "median": float(np.nanmedian(values)) if values.size else None,
                "n_vertices": int(values.size),
                "n_zero": int((values == 0).sum()),  # region label but no two-hit thickness (re-fixed meshes)
                # the same rays without the region step's re-fixed cartilage meshes: vertices measured (>0)
                # whose label is this region
                "mean_gt0": float(values[values > 0].mean()) if (values > 0).any() else None,
            }
        if spec.get("save_npz"):
            np.savez_compressed(
                f"{spec['save_npz']}/pymskt_{cfg['name']}.npz",
                points=np.asarray(bone.points),
                faces=np.asarray(bone.faces).reshape(-1, 4)[:, 1:],
                thickness=thickness,
                labels=labels,
            )
    out["noise_lines"] = len(noise.getvalue().splitlines())
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
