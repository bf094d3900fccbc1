from polyfold.core.report import Report


def test_report_escapes_text_and_formats_numbers(tmp_path):
    report = Report("a <b> & c")
    report.paragraph("x < y")
    report.table(["name", "value", "n"], [("<script>", 0.123456, 7)])
    report.image("plot.png", "a plot")
    path = report.write(tmp_path / "sub" / "report.html")
    text = path.read_text()
    assert "<title>a &lt;b&gt; &amp; c</title>" in text
    assert "<p>x &lt; y</p>" in text
    assert "<td>&lt;script&gt;</td>" in text
    assert '<td class="num">0.1235</td>' in text
    assert '<td class="num">7</td>' in text
    assert '<img src="plot.png" alt="a plot">' in text
    assert "<script>" not in text


def test_scatter_maps_points_into_the_plot_area():
    report = Report("r").scatter("modes", {"data": [(0.0, 0.0), (1.0, 2.0)], "model": [(0.5, 1.0)]})
    svg = report.render()
    assert svg.count("<circle") == 3
    # extremes land on the inner edges: x in [32, 288], y flipped in [32, 208]
    assert 'cx="32.0" cy="208.0"' in svg
    assert 'cx="288.0" cy="32.0"' in svg
    assert 'cx="160.0" cy="120.0"' in svg
    assert ">data</text>" in svg
    assert ">model</text>" in svg


def test_histogram_heights_are_densities_on_shared_bins():
    report = Report("r").histogram(
        "x", {"a": [0.0, 0.0, 1.0, 1.0], "b": [0.0, 1.0, 1.0, 1.0]}, bins=2
    )
    svg = report.render()
    assert svg.count("<polyline") == 2
    # b's second bin holds 3/4, the tallest bar: it reaches the top of the plot (y = 32)
    assert "160.0,32.0 292.0,32.0" in svg
    # a's bins hold 1/2 each: two thirds of the way from the bottom (212) to the top (32)
    assert "28.0,92.0 160.0,92.0" in svg


def test_degenerate_data_does_not_divide_by_zero():
    svg = Report("r").scatter("one", {"p": [(1.0, 1.0)]}).histogram("h", {"c": [2.0, 2.0]}).render()
    assert 'cx="160.0" cy="120.0"' in svg
    assert "nan" not in svg


def test_lines_break_at_gaps_and_shade_bands():
    nan = float("nan")
    report = Report("r").lines(
        "forecast",
        {"history": [(0.0, 0.0), (1.0, nan), (2.0, 1.0), (3.0, 2.0)]},
        bands={"10%-90%": [(2.0, 0.0, 2.0), (3.0, 1.0, 2.0)]},
    )
    svg = report.render()
    assert svg.count("<polyline") == 2  # the gap at x = 1 splits the line in two
    assert 'points="32.0,208.0"' in svg
    assert "<polygon" in svg
    # x in [0, 3] -> [32, 288]; y in [0, 2] -> [208, 32]
    assert 'points="202.7,120.0 288.0,32.0"' in svg
    assert 'points="202.7,32.0 288.0,32.0 288.0,120.0 202.7,208.0"' in svg
    assert ">history</text>" in svg
    assert ">10%-90%</text>" in svg
    assert "nan" not in svg
