"""The limits of accepted input: refused from the header or the file size, in one line naming the file."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from facelm.data import limits
from facelm.data.folder import imread_rgb
from facelm.data.limits import check_names, image_problem, name_problem
from facelm.errors import FacelmError


def _png_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR width, height; then fix its CRC
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_a_huge_header_is_refused_before_decoding(tmp_path, huge_header_jpeg):
    for name, data in (("bomb.jpg", huge_header_jpeg), ("bomb.png", _png_claiming(100_000, 100_000)),
                       ("wide.png", _png_claiming(limits.MAX_IMAGE_SIDE + 1, 2))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FacelmError, match="over the limit") as err:
            imread_rgb(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)


def test_images_within_the_limits_pass_and_decode(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "ok.png"), image[..., ::-1])
    assert image_problem((tmp_path / "ok.png").read_bytes()) is None
    np.testing.assert_array_equal(imread_rgb(tmp_path / "ok.png"), image)


def test_file_size_is_checked_before_reading(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(limits, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(FacelmError, match="over the limit"):
        imread_rgb(tmp_path / "a.png")


@pytest.mark.parametrize("data, kind", [(b"", "empty_file"), (b"GIF89a-not-really", "unreadable"),
                                        (b"\xff\xd8\xff", "unreadable")])
def test_problem_kinds(data, kind):
    assert image_problem(data)[0] == kind


def test_names_the_solution_format_cannot_carry(tmp_path):
    assert name_problem("image00002.jpg") is None and name_problem("a-b_c+1.png") is None
    for bad in ("a b.jpg", "tab\there.jpg", "é.jpg", "", "x" * 256):
        assert name_problem(bad)
    with pytest.raises(FacelmError, match=r"a b\.jpg.*cannot be written in a solution file") as err:
        check_names(tmp_path, ["ok.jpg", "a b.jpg"])
    assert str(err.value).startswith(str(tmp_path / "a b.jpg"))
