"""`facelm.Landmarker`: the README's three lines, colour order, batches, crops, and no torch on the inference path."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

import facelm
import facelm.inference.shipped as shipped
from pathlib import Path
from facelm.errors import FacelmError
from test_detect import two_face_canvas
from test_predict import models  # noqa: F401 (fixture)
from test_shipped import weights_dir  # noqa: F401 (fixture)

cv2.setNumThreads(1)


def readme_python() -> str:
    """The quickstart's Python lines (the first ```python block of README.md)."""
    return re.search(r"```python\n(.*?)```", (Path(__file__).resolve().parents[2] / "README.md").read_text(), re.S).group(1)


def test_the_readmes_three_lines_run(weights_dir, aflw_test, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", weights_dir)
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(two_face_canvas(aflw_test), cv2.COLOR_RGB2BGR))
    monkeypatch.chdir(tmp_path)
    code = readme_python()
    assert len([line for line in code.splitlines() if line.strip()]) == 3 and "photo.jpg" in code
    scope: dict = {}
    exec(code, scope)
    faces = scope["faces"]
    assert len(faces) == 2
    face = faces[0]
    assert face.box.shape == (4,) and face.landmarks.shape == (68, 2) and face.pose.shape == (3,)
    assert 0 < face.score <= 1 and 0 <= face.confidence <= 1


def test_colour_order_batches_and_crops(models, aflw_test):  # noqa: F811
    lm = facelm.Landmarker(models / "m.onnx")
    rgb = two_face_canvas(aflw_test)
    from_bgr = lm(np.ascontiguousarray(rgb[:, :, ::-1]))
    from_rgb = lm(rgb, color="rgb")
    np.testing.assert_array_equal([f.landmarks for f in from_bgr], [f.landmarks for f in from_rgb])
    batch = lm.batch([rgb, rgb[:300]], color="rgb")
    np.testing.assert_allclose([f.landmarks for f in batch[0]], [f.landmarks for f in from_rgb], atol=1e-4)
    assert len(batch) == 2
    assert lm(np.full((200, 300, 3), 120, np.uint8)) == []  # no face: an empty list
    crop = cv2.imread(str(aflw_test / "image00002.jpg"))
    [face] = lm.crops([crop])
    assert face.score is None and face.box.tolist() == [0, 0, 384, 384] and face.landmarks.shape == (68, 2)
    with pytest.raises(FacelmError, match="square face crops"):
        lm.crops([np.ascontiguousarray(rgb)])  # a photo where a crop is expected is refused, not squashed
    with pytest.raises(FacelmError, match="color must be one of"):
        lm(rgb, color="rgba")
    given = lm(rgb, color="rgb", boxes=np.array([[90, 180, 290, 380]]))
    assert len(given) == 1 and given[0].score is None
    record = given[0].to_dict()
    assert all(round(v, 2) == v for point in record["landmarks"] for v in point)


BLOCK_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm", "snakemake", "optuna", "onnx", "albumentations"):
            raise ImportError(f"{name} is blocked: the inference path must not import it")
sys.meta_path.insert(0, NoTorch())
"""


def test_the_inference_path_never_imports_torch(models, aflw_test, tmp_path):  # noqa: F811
    """`import facelm`, Landmarker, `facelm predict` (photos, crops, video) and `facelm models --pretrained`
    run with torch, onnx and the training stack unimportable (what the inference-only install has)."""
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(two_face_canvas(aflw_test), cv2.COLOR_RGB2BGR))
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import facelm, cv2
        from facelm.cli import main
        faces = facelm.Landmarker({str(models / 'm.onnx')!r})(cv2.imread({str(photo)!r}))
        assert len(faces) == 2, faces
        assert main(["predict", {str(photo)!r}, {str(aflw_test / 'image00002.jpg')!r}, "--model",
                     {str(models / 'm.onnx')!r}, "--out", {str(tmp_path / 'out')!r}]) == 0
        assert main(["models", "--pretrained"]) == 0
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] == "torch"))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok []" in result.stdout
