"""The teacher decode's pixel-centre shift checked for scale invariance, on TRAINING crops (no aflw_val).

    python benchmarks/teacher_roi_scale.py

The same 96 crops of ../shared/data/300w_train go through 3DDFA_V2 with its first-pass ROI 0.8x and
1.25x as wide. Points must not move on average when only the ROI's size changes. Decoded with
``pixel_centres`` as it is (half a crop pixel added) they move by about half a ROI pixel times the
change in ROI pixel size; with half a ROI pixel added instead (3DDFA_V2's outputs are ROI pixel
indices, and ROI pixel i covers [i, i+1)) they do not.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from facelm.data.folder import imread_rgb, open_folder
from facelm.models.tddfa import ROI_SIZE, TDDFALandmarks, decode_params, fixed_roi

DATA = Path(os.environ.get("FACELM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
SCALES = (0.8, 1.25)


def main() -> None:
    torch.set_num_threads(1)
    faces = open_folder(DATA / "300w_train")
    names = faces.names[:96]
    images = torch.tensor(np.stack([imread_rgb(faces.path(n)) for n in names])).permute(0, 3, 1, 2).float()
    side = images.shape[-1]
    model = TDDFALandmarks(DATA.parent / "models" / "3ddfa_v2", pixel_centres=True).eval()
    points = {}
    with torch.no_grad():
        for k in SCALES:
            cx, cy, roi_side = fixed_roi()
            roi = torch.tensor([[cx, cy, roi_side * k]]).repeat(len(names), 1)
            params = model._params(images, roi)
            current = decode_params(params, model.mean_shape, model.basis, roi, side)[0][..., :2] * side
            indices = decode_params(params, model.mean_shape, model.basis, roi, None)[0][..., :2] * side
            points[k] = current, indices + 0.5 * roi[:, None, 2:3] * side / ROI_SIZE
    for i, label in enumerate(("half a crop pixel (as now)", "half a ROI pixel")):
        shift = (points[SCALES[1]][i] - points[SCALES[0]][i]).mean((0, 1)).numpy()
        print(f"ROI x{SCALES[1]} minus x{SCALES[0]}, mean point shift (x, y) in crop px, {label}: {shift.round(3)}")
    expected = 0.5 * fixed_roi()[2] * side / ROI_SIZE * (SCALES[1] - SCALES[0])
    print(f"a half-ROI-pixel error predicts {expected:.3f} px")


if __name__ == "__main__":
    main()
