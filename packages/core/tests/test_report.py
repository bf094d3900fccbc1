import base64
import re
import struct
import zlib

import numpy as np
import pytest

from polyfold.core.report import Report, _box, png_bytes


def _map(n_legend, x, y, xr, yr, inset=4.0):
    """Where a data point lands: x range ``xr`` onto the plot area's inner width, y flipped."""
    left, top, right, bottom = _box(n_legend)
    sx = (left + inset) + (x - xr[0]) / (xr[1] - xr[0]) * ((right - inset) - (left + inset))
    sy = (bottom - inset) + (y - yr[0]) / (yr[1] - yr[0]) * ((top + inset) - (bottom - inset))
    return f"{sx:.1f}", f"{sy:.1f}"


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
    for x, y in [(0.0, 0.0), (1.0, 2.0), (0.5, 1.0)]:  # extremes land on the inner edges
        cx, cy = _map(2, x, y, (0, 1), (0, 2))
        assert f'cx="{cx}" cy="{cy}"' in svg
    assert ">data</text>" in svg
    assert ">model</text>" in svg


def test_histogram_heights_are_densities_on_shared_bins():
    report = Report("r").histogram(
        "x", {"a": [0.0, 0.0, 1.0, 1.0], "b": [0.0, 1.0, 1.0, 1.0]}, bins=2
    )
    svg = report.render()
    assert svg.count("<polyline") == 2
    left, top, right, bottom = _box(2)
    mid, peak = (left + right) / 2, top + 4
    # b's second bin holds 3/4, the tallest bar: it reaches the top of the plot
    assert f"{mid:.1f},{peak:.1f} {right:.1f},{peak:.1f}" in svg
    # a's bins hold 1/2 each: two thirds of the way from the bottom to the top
    half = bottom + (peak - bottom) * 2 / 3
    assert f"{left:.1f},{half:.1f} {mid:.1f},{half:.1f}" in svg


def test_degenerate_data_does_not_divide_by_zero():
    svg = Report("r").scatter("one", {"p": [(1.0, 1.0)]}).histogram("h", {"c": [2.0, 2.0]}).render()
    left, top, right, bottom = _box(1)
    assert f'cx="{(left + right) / 2:.1f}" cy="{(top + bottom) / 2:.1f}"' in svg
    assert "nan" not in svg


def test_title_legend_and_axis_labels_do_not_overlap_the_plot():
    svg = Report("r").lines("a title", {"one": [(0, -12345.6)], "two": [(1, 0.5)]}).render()
    left, top, _, _ = _box(2)
    legend_y = [
        float(y) for y in re.findall(r'y="([0-9.]+)" text-anchor="end" font-size="11"', svg)
    ]
    assert len(legend_y) == 2
    assert min(legend_y) > 14  # the title's baseline is y = 14
    assert max(legend_y) < top  # the legend sits above the plot
    label = "-1.23e+04"
    assert f">{label}</text>" in svg
    # right-aligned at left - 4: a 10 px font's digits are about 6 px wide, so it fits
    assert len(label) * 6 < left - 4


def test_lines_break_at_gaps_and_shade_bands():
    nan = float("nan")
    report = Report("r").lines(
        "forecast",
        {"history": [(0.0, 0.0), (1.0, nan), (2.0, 1.0), (3.0, 2.0)]},
        bands={"10%-90%": [(2.0, 0.0, 2.0), (3.0, 1.0, 2.0)]},
    )
    svg = report.render()
    assert svg.count("<polyline") == 2  # the gap at x = 1 splits the line in two

    def pt(x, y):
        return ",".join(_map(2, x, y, (0, 3), (0, 2)))

    assert f'points="{pt(0, 0)}"' in svg
    assert "<polygon" in svg
    assert f'points="{pt(2, 1)} {pt(3, 2)}"' in svg
    assert f'points="{pt(2, 2)} {pt(3, 2)} {pt(3, 1)} {pt(2, 0)}"' in svg
    assert ">history</text>" in svg
    assert ">10%-90%</text>" in svg
    assert "nan" not in svg


def _decode_png(data: bytes) -> tuple[tuple[int, int, int], bytes]:
    """(width, height, colour type) and the unfiltered rows of a PNG, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8
    assert b"IEND" in chunks
    return (w, h, colour), zlib.decompress(chunks[b"IDAT"])


@pytest.mark.parametrize("shape", [(3, 5), (4, 2, 3)])
def test_png_bytes_round_trips_pixels(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    (w, h, colour), raw = _decode_png(png_bytes(pixels))
    assert (h, w) == shape[:2]
    assert colour == (0 if len(shape) == 2 else 2)
    stride = 1 + pixels[0].size
    rows = [raw[i * stride : (i + 1) * stride] for i in range(h)]
    assert all(r[0] == 0 for r in rows)
    assert b"".join(r[1:] for r in rows) == pixels.tobytes()


def test_png_bytes_refuses_other_arrays():
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        png_bytes(np.zeros((0, 2), dtype=np.uint8))


def test_media_carries_audio_and_image_inline():
    html = Report("r").media("a <b>", wav=b"RIFFxx", png=b"\x89PNG").render()
    assert f'src="data:audio/wav;base64,{base64.b64encode(b"RIFFxx").decode()}"' in html
    assert "data:image/png;base64," in html
    assert "a &lt;b&gt;" in html
