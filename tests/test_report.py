"""The HTML report builder and the grid plot helpers."""

from __future__ import annotations

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.core.rundir import RunDir
from irlhf.report import Report

EVIL = '<script>alert("x")</script> & \'q\''


def test_report_escapes_all_text(tmp_path):
    (tmp_path / "a&b.png").write_bytes(b"png")
    report = Report(f"title {EVIL}")
    report.section(f"heading {EVIL}").text(f"para {EVIL}\n\nsecond").code(f"code {EVIL}")
    report.table([[EVIL, 1.5], ["x", np.float64(2.0)]], header=[EVIL, "value"])
    report.image("a&b.png", caption=f"cap {EVIL}")
    page = report.write(tmp_path).read_text()
    assert "<script>" not in page and 'alert("x")' not in page
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;") >= 7
    assert 'src="a%26b.png"' in page  # URL-quoted, so no raw "&" in the attribute
    assert "<p>second</p>" in page and '<td class="num">1.5</td>' in page


def test_report_structure_and_atomic_write(tmp_path):
    run = RunDir(tmp_path / "run")
    (run.path / "plot.png").write_bytes(b"png")
    report = Report("T").section("One").text("hello").section("Two").image("plot.png", "a plot")
    path = report.write(run)
    assert path == run.path / "report.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.index("<h2>One</h2>") < page.index("<h2>Two</h2>")
    assert '<img src="plot.png" alt="a plot">' in page and "<figcaption>a plot</figcaption>" in page
    assert sorted(p.name for p in run.path.iterdir()) == ["plot.png", "report.html"]  # no temp files left


def test_report_rejects_bad_images_and_tables(tmp_path):
    report = Report("T")
    for bad in ("/etc/passwd", "../outside.png", ""):
        with pytest.raises(IrlhfError, match="relative to the run directory"):
            report.image(bad)
    with pytest.raises(IrlhfError, match="row 1 has 1 cells; expected 2"):
        report.table([["a", 1], ["b"]])
    report.image("missing.png")
    with pytest.raises(IrlhfError, match="missing.png"):
        report.write(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_grid_heatmap_png(tmp_path):
    from irlhf.report import plots

    run = RunDir(tmp_path)
    fig, axes = plots.figure_row(2)
    plots.grid_heatmap(axes[0], np.linspace(-1, 1, 16), 4, title="r", cmap="RdBu", centered=True)
    plots.mark_cells(axes[0], [0, 5, 15], 4, [0, 1, 1])
    plots.grid_heatmap(axes[1], np.arange(16.0), vmin=0, vmax=10, extend="max")
    path = run.save_figure("maps.png", fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(IrlhfError, match="square grid"):
        plots.grid_heatmap(axes[0], np.zeros(15))
    with pytest.raises(IrlhfError, match="cell ids"):
        plots.mark_cells(axes[0], [16], 4)


@pytest.mark.parametrize("status, shown", [("interrupted", True), ("failed", True), ("running", False),
                                           ("finished", False)])
def test_report_of_an_unfinished_run_says_so_at_the_top(tmp_path, status, shown):
    run = RunDir.create("demo", out=tmp_path)
    run.begin_step("gail")
    if status != "running":
        run.close(status, error=RuntimeError("boom") if status == "failed" else None)
    page = Report("T").section("One").text("hello").write(run).read_text()
    assert ('class="unfinished"' in page) is shown
    if shown:
        banner = page[page.index('class="unfinished"'):]
        assert page.index('class="unfinished"') < page.index("<h1>") and f"{status} during step" in banner
        assert "gail" in banner.split("</p>")[0]
