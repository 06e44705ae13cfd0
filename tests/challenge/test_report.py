"""The run report: tables, plots, and stated gaps."""

from __future__ import annotations

from facelm import layout
from facelm.atomic import write_json
from facelm.challenge.ensemble import build_ensemble
from facelm.challenge.report import write_report


def test_report_has_every_section_and_its_plots(tiny_pipeline):
    config, runs = tiny_pipeline
    write_json(layout.ensemble_spec(config), build_ensemble(config, runs))
    out = layout.results_dir(config) / "report.md"
    write_report(config, out)
    text = out.read_text()
    assert "| pfld_025 | 0 |" in text and "mobilenetv3_small_050-regression" in text
    assert "Tuning was not run" in text
    assert "## Ensemble" in text and "report_ced.png" in text
    for png in ("report_ced.png", "report_faces.png"):
        assert (out.parent / png).stat().st_size > 1000
