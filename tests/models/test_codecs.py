"""Codecs: encoding then decoding returns the landmarks; the offset head's parts line up."""

from __future__ import annotations

import torch

from facelm.models import create_model
from facelm.models.codecs import HeatmapCodec, HeatmapOffsetCodec
from facelm.models.losses import create_loss


def _points(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 68, 2, generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.05


def test_soft_argmax_of_a_gaussian_target_is_its_centre():
    codec = HeatmapCodec(32, 32, sigma=1.5)
    points = 0.15 + 0.7 * _points()  # 3+ cells from the border, where the Gaussian is whole
    logits = codec.encode(points).clamp_min(1e-30).log()
    assert torch.allclose(codec.decode(logits), points, atol=1e-4)


def test_soft_argmax_reads_x_from_columns_and_y_from_rows_on_a_non_square_map():
    """One sharp peak per landmark at (row r, column c) decodes to that cell's centre, x from the column:
    the matrix-product decode must not swap the axes or mix up the row-major cell order."""
    codec = HeatmapCodec(6, 10)
    logits = torch.full((1, 68, 6, 10), -50.0)
    rows, cols = torch.arange(68) % 6, (torch.arange(68) * 7) % 10
    logits[0, torch.arange(68), rows, cols] = 50.0
    expected = torch.stack([(cols + 0.5) / 10, (rows + 0.5) / 6], dim=-1)
    assert torch.allclose(codec.decode(logits)[0], expected, atol=1e-6)


def test_offset_codec_decodes_true_cells_and_offsets_exactly():
    codec = HeatmapOffsetCodec(32, 24, sigma=1.5)  # not square: rows and columns must not mix
    points = _points()
    cell, tx, ty = codec.true_cells(points)
    logits = torch.full((4, 68, 32 * 24), -10.0).scatter(2, cell.unsqueeze(-1), 10.0).reshape(4, 68, 32, 24)
    offsets = torch.zeros(4, 2, 68, 32 * 24)
    offsets[:, 0].scatter_(2, cell.unsqueeze(-1), tx.unsqueeze(-1))
    offsets[:, 1].scatter_(2, cell.unsqueeze(-1), ty.unsqueeze(-1))
    offsets = offsets.reshape(4, 136, 32, 24)
    assert torch.allclose(codec.decode_offsets(logits, offsets), points, atol=1e-6)
    assert float(codec.offset_loss(offsets, points)) < 1e-7
    assert float(codec.offset_loss(offsets + 0.5, points)) == torch.tensor(0.5).item()


def test_offset_head_trains_its_offsets_and_decodes_through_them():
    model = create_model("mobilenetv3_small_100", head="heatmap_offset")
    out = model(torch.rand(2, 3, 64, 64) * 255)
    assert out["landmarks"].shape == (2, 68, 2) and out["offsets"].shape[1] == 136
    total, parts = model.loss(out, {"landmarks": _points(2)}, create_loss("l1"))
    assert {"points", "heatmap", "offset"} <= set(parts)
    total.backward()
    assert model.head.out.weight.grad[68:].abs().sum() > 0  # the offset channels learn


def test_offset_head_exports_to_onnx_with_the_same_points(tmp_path):
    """export_onnx checks onnxruntime against eager PyTorch (1e-3 px) and raises on a mismatch."""
    from facelm.inference.pytorch.export import export_onnx

    model = create_model("mobilenetv3_small_100", head="heatmap_offset").eval()
    card = export_onnx(model, tmp_path / "offset.onnx", size=64)
    assert card["input_size"] == 64 and (tmp_path / "offset.onnx").is_file()
