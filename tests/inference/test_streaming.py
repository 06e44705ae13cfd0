"""`Landmarker.track`: the README's webcam loop on a generated clip with a known motion (the shipped model
and the default detector), the video CLI as its client, and bad sources and options in one line.

The clip: an aflw_val face (labels known) resized to 256 px, pasted on a smooth random background and
moved across it at (6, 2) px per frame for 30 frames, written as an mp4 like a camera's. Scored per
frame: the point error against the moved labels (px, mean over the 68 points), the motion error (the
tracked points' mean shift since frame 0 against the true shift, px: what the tracker adds, free of the
model's own error on this face) and id switches; per-frame photo detection (``lm(frame)``) alongside.
``python tests/inference/test_streaming.py`` prints the figures.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import facelm
from facelm.cli import main
from facelm.data.annot import load_annot
from facelm.errors import FacelmError
from facelm.inference.video import TrackedFace

cv2.setNumThreads(1)
README = Path(__file__).resolve().parents[2] / "README.md"
FACE, SIDE, FRAMES, FPS = "image00013.jpg", 256, 30, 25
START, STEP = np.array([40.0, 60.0]), np.array([6.0, 2.0])  # top-left corner of the paste, px per frame


def webcam_loop() -> str:
    """The README's streaming loop: the ```python block that calls ``lm.track``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return next(block for block in blocks if ".track(" in block)


def make_moving_clip(path: Path, aflw_val: Path) -> np.ndarray:
    """Write the clip (mp4v) -> the face's true points per frame (FRAMES, 68, 2)."""
    names, labels = load_annot(aflw_val / "annot.pkl")
    label = np.asarray(labels[names.index(FACE)], np.float64) * SIDE / 384
    face = cv2.resize(cv2.imread(str(aflw_val / FACE)), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    noise = rng.normal(110, 40, (60, 80, 3)).astype(np.float32)
    base = cv2.resize(cv2.GaussianBlur(noise, (3, 3), 0), (640, 480), interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    truths = []
    for index in range(FRAMES):
        x, y = (START + index * STEP).astype(int)
        canvas = base.copy()
        canvas[y : y + SIDE, x : x + SIDE] = face
        writer.write(np.clip(canvas + rng.normal(0, 3, canvas.shape), 0, 255).astype(np.uint8))
        truths.append(label + [x, y])
    writer.release()
    return np.stack(truths)


def run_readme_loop(clip: Path, monkeypatch) -> list:
    """Run the README loop as written, the webcam swapped for the clip -> what ``lm.track`` yielded."""
    code = webcam_loop()
    assert code.count("cv2.VideoCapture(0)") == 1
    yielded = []
    track = facelm.Landmarker.track

    def recording(self, *args, **kwargs):
        for frame in track(self, *args, **kwargs):
            yielded.append(frame)
            yield frame

    monkeypatch.setattr(facelm.Landmarker, "track", recording)
    exec(code.replace("cv2.VideoCapture(0)", f"cv2.VideoCapture({str(clip)!r})"), {})
    return yielded


def score(faces_per_frame: list[list], truths: np.ndarray) -> dict:
    """Point error and motion error (px, mean and worst frame), frames without the face, id switches, ids."""
    points, found, ids, missed = [], [], [], 0
    for faces, truth in zip(faces_per_frame, truths):
        near = [f for f in faces if np.linalg.norm(f.landmarks.mean(0) - truth.mean(0)) < 0.3 * SIDE]
        if not near:
            missed += 1
            continue
        points.append(near[0].landmarks)
        found.append(truth)
        ids.append(getattr(near[0], "id", None))
    points, found = np.asarray(points, np.float64), np.asarray(found)
    error = np.linalg.norm(points - found, axis=2).mean(1)
    motion = np.linalg.norm((points.mean(1) - points[0].mean(0)) - (found.mean(1) - found[0].mean(0)), axis=1)
    return {"error": error.mean(), "worst": error.max(), "motion": motion.mean(), "motion_worst": motion.max(),
            "missed": missed, "switches": sum(a != b for a, b in zip(ids, ids[1:])), "ids": sorted(set(ids), key=str)}


def measure(aflw_val: Path, tmp: Path, monkeypatch) -> tuple[dict[str, dict], list]:
    """-> (figures of the README loop, of ``lm.track(smooth=False)`` and of per-frame ``lm(frame)``, what the loop yielded)."""
    clip = tmp / "clip.mp4"
    truths = make_moving_clip(clip, aflw_val)
    yielded = run_readme_loop(clip, monkeypatch)
    monkeypatch.undo()
    lm = facelm.Landmarker()
    raw = [frame.faces for frame in lm.track(clip, smooth=False)]
    per_frame = [lm(frame.image) for frame in yielded]
    figures = {"lm.track, the README loop": score([f.faces for f in yielded], truths),
               "lm.track(smooth=False)": score(raw, truths), "lm(frame) on every frame": score(per_frame, truths)}
    return figures, yielded


def print_figures(figures: dict[str, dict]) -> None:
    for name, r in figures.items():
        print(f"{name}: point error {r['error']:.2f} px (worst frame {r['worst']:.2f}), motion error {r['motion']:.2f} px "
              f"(worst {r['motion_worst']:.2f}), frames missed {r['missed']}/{FRAMES}, id switches {r['switches']}, ids {r['ids']}")


def test_the_readmes_webcam_loop_tracks_a_moving_face(aflw_val, tmp_path, monkeypatch, capsys):
    figures, yielded = measure(aflw_val, tmp_path, monkeypatch)
    printed = capsys.readouterr().out.strip().splitlines()
    print_figures(figures)
    tracked, raw, detected = figures.values()
    assert [f.index for f in yielded] == list(range(FRAMES)) and len(printed) == FRAMES  # one face, one line a frame
    assert all(isinstance(face, TrackedFace) and face.landmarks.shape == (68, 2) for f in yielded for face in f.faces)
    assert yielded[1].time_s == pytest.approx(1 / FPS)
    for r in (tracked, raw):
        assert r["missed"] == 0 and r["switches"] == 0 and r["ids"] == [0]
    # the tracker follows the known motion to a fraction of a pixel, and is as close to the face as detecting every frame
    # unsmoothed, the tracked points follow the true motion to within a pixel (one frame moves 6.3 px)
    assert raw["motion_worst"] < 1.0 and raw["error"] < detected["error"] + 0.3
    # smoothing lags a face moving 6.3 px a frame (160 px/s) by under a frame's motion, under half a frame on average
    step = float(np.linalg.norm(STEP))
    assert tracked["motion_worst"] < step and tracked["motion"] < step / 2 and tracked["error"] < detected["error"] + step / 2
    # a tracked face's box is a detector's box: fed back to the photo path it frames the same face
    face = yielded[-1].faces[0]
    [again] = facelm.Landmarker()(yielded[-1].image, boxes=[face.box])
    assert np.linalg.norm(again.landmarks - face.landmarks, axis=1).mean() < 0.03 * SIDE


def test_track_takes_arrays_and_refuses_bad_sources_in_one_line(aflw_val, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_moving_clip(clip, aflw_val)
    capture = cv2.VideoCapture(str(clip))
    rgb = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(3)]
    lm = facelm.Landmarker()
    from_arrays = list(lm.track(rgb, color="rgb", fps=FPS))
    from_path = list(lm.track(clip))[:3]
    assert [len(f.faces) for f in from_arrays] == [1, 1, 1] and from_arrays[2].faces[0].id == 0
    np.testing.assert_allclose(from_arrays[0].faces[0].landmarks, from_path[0].faces[0].landmarks, atol=1.0)  # mp4 decode vs its RGB copy
    for source, kwargs, message in [(cv2.VideoCapture(str(tmp_path / "none.mp4")), {}, "not open"),
                                    (tmp_path / "none.mp4", {}, "cannot open the video"),
                                    (42, {}, "iterable of images"), (rgb, {"fps": 0}, "fps must be"),
                                    (rgb, {"min_cutoff": -1}, "min_cutoff"), (rgb, {"redetect_every": 1.5}, "redetect_every"),
                                    (rgb, {"color": "rgba"}, "color must be one of")]:
        with pytest.raises(FacelmError, match=message) as caught:
            lm.track(source, **kwargs)  # refused on the call, before the first frame
        assert "\n" not in str(caught.value)
    with pytest.raises(FacelmError, match="image 1 is None"):
        list(lm.track([rgb[0], None], color="rgb"))


def test_the_video_cli_is_a_client_of_track(aflw_val, tmp_path, capsys):
    """`facelm predict clip.mp4` writes what `lm.track` yields (with --hflip-tta applied to both), draws the
    contours with --lines, and refuses the photo-only options in one line."""
    clip = tmp_path / "clip.mp4"
    make_moving_clip(clip, aflw_val)
    assert main(["predict", str(clip), "--out", str(tmp_path / "out"), "--hflip-tta", "--no-overlay"]) == 0
    table = np.genfromtxt(tmp_path / "out" / "clip.landmarks.csv", delimiter=",", names=True, dtype=None, encoding=None)
    written = np.stack([np.stack([table[f"x{i}"], table[f"y{i}"]], -1) for i in range(68)], 1)
    frames = list(facelm.Landmarker(hflip_tta=True).track(clip))
    plain = list(facelm.Landmarker(hflip_tta=False).track(clip))
    expected = np.stack([f.faces[0].landmarks for f in frames])
    np.testing.assert_allclose(written, expected, atol=0.006)
    assert np.abs(expected - np.stack([f.faces[0].landmarks for f in plain])).max() > 0.05  # the option acted
    np.testing.assert_allclose(np.stack([table[f"box_{k}"] for k in ("x0", "y0", "x1", "y1")], 1),
                               [f.faces[0].box for f in frames], atol=0.006)
    for lines in ([], ["--lines"]):
        out = tmp_path / f"lines{bool(lines)}"
        assert main(["predict", str(clip), "--out", str(out), *lines]) == 0
    first = [cv2.VideoCapture(str(tmp_path / f"lines{flag}" / "clip.overlay.mp4")).read()[1] for flag in (False, True)]
    assert np.abs(first[0].astype(int) - first[1]).sum(2).__gt__(60).sum() > 200  # the contours are drawn
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), first[0])
    capsys.readouterr()
    for flags in (["--box", "10,10,200,200"], ["--crops"]):
        assert main(["predict", str(photo), str(clip), "--out", str(tmp_path / "refused"), *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "videos are tracked from the detector" in err[0] and "clip.mp4" in err[0]
    assert not (tmp_path / "refused").exists()


if __name__ == "__main__":  # python tests/inference/test_streaming.py [AFLW_VAL]
    import tempfile

    val = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data" / "aflw_val"
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        print_figures(measure(val, Path(tmp), patch)[0])
