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
