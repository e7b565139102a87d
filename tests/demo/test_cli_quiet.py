"""`vsae demo --quiet` still says where the report is."""

import vsae.demo
from vsae.cli import main


def test_demo_quiet_prints_the_output_paths(tmp_path, monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(vsae.demo, "run_demo", lambda cfg: seen.setdefault("cfg", cfg))
    main(["demo", "--fast", "--quiet", "--out", str(tmp_path / "d")])
    assert seen["cfg"].progress is False
    out = capsys.readouterr().out.strip()
    assert out == f"{tmp_path / 'd' / 'report.html'}, {tmp_path / 'd' / 'results.json'}"
