"""Overlays: faces' 68 points (and boxes, contours, track ids) drawn on an image, for photos and video frames alike.

Visible points are dots, points the head hides (``Face.visible`` False) rings of another colour.
Dots, lines and labels are sized from each face's own size (``sqrt(w*h)`` of its points' box), not
from the image's: a small face in a large photo keeps its points apart, a large face gets dots that
can be seen.
"""

from __future__ import annotations

import cv2
import numpy as np

from facelm.landmarks68 import CLOSED_GROUPS, GROUPS, bbox, box_size

POINT, HIDDEN_POINT, LINE, BOX, LABEL = (0, 255, 0), (255, 120, 0), (0, 200, 255), (255, 200, 0), (255, 200, 0)  # RGB
#: a face this many pixels across gets dots of radius 1 (and 2 at twice the size, ...)
FACE_PX_PER_DOT_RADIUS = 120
#: lines (contours, box, label strokes) are one pixel wide per this many pixels of face size
FACE_PX_PER_LINE_WIDTH = 250


def sizes_for(landmarks: np.ndarray) -> tuple[int, int]:
    """(dot radius, line width) in pixels for a face with these (68, 2) points."""
    size = float(box_size(np.asarray(landmarks, np.float64)))
    return max(1, round(size / FACE_PX_PER_DOT_RADIUS)), max(1, round(size / FACE_PX_PER_LINE_WIDTH))


def _pixel(points: np.ndarray) -> np.ndarray:
    # cv2 draws at pixel centres: the continuous point x lies in pixel floor(x)
    return np.floor(np.asarray(points, np.float64)).astype(np.int32)


def draw_faces(image: np.ndarray, faces, whole_image: bool = False, lines: bool = False) -> np.ndarray:
    """A copy of the RGB ``image`` with each face's 68 points drawn; its box unless ``whole_image`` (the
    face is the image, a crop) or the face has no ``box``; the contours with ``lines``; the track id of a
    face that has one (``id``, :class:`facelm.inference.video.TrackedFace`) above its points."""
    canvas = image.copy()
    for face in faces:
        radius, width = sizes_for(face.landmarks)
        box = getattr(face, "box", None)
        if box is not None and not whole_image:
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            cv2.rectangle(canvas, (x0, y0), (x1, y1), BOX, width)
        if lines:
            for group, index in GROUPS.items():
                cv2.polylines(canvas, [_pixel(face.landmarks[index])[:, None]], group in CLOSED_GROUPS, LINE, width, cv2.LINE_AA)
        visible = getattr(face, "visible", None)
        for i, (x, y) in enumerate(_pixel(face.landmarks)):
            if visible is None or visible[i]:
                cv2.circle(canvas, (int(x), int(y)), radius, POINT, -1, cv2.LINE_AA)
            else:
                cv2.circle(canvas, (int(x), int(y)), radius + 1, HIDDEN_POINT, max(1, width), cv2.LINE_AA)
        if getattr(face, "id", None) is not None:
            x0, y0 = _pixel(bbox(face.landmarks)[:2])
            scale = width * 0.6
            cv2.putText(canvas, str(face.id), (int(x0), int(max(y0 - 4 * width, 12 * scale))), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, LABEL, width, cv2.LINE_AA)
    return canvas
