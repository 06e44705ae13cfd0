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


def test_the_header_states_the_gamma_the_runs_used(tmp_path):
    """Tuning may change gamma (1.16 in the 300-W runs); the header reports the runs' recorded value, not the config's."""
    import json
    from types import SimpleNamespace

    from facelm.challenge.report import gamma_text

    config = SimpleNamespace(preprocess=SimpleNamespace(gamma=1.0, gamma_mode="fixed"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"preprocess": {"gamma": 1.16, "gamma_mode": "fixed"}}}))
    assert gamma_text(config, [{"dir": run}]) == "gamma 1.16 (fixed) as the runs used it (config: 1.0; tuned values applied)"
    assert gamma_text(config, []) == "gamma 1.0 (fixed, as configured)"
