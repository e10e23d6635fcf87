"""The block-pixel clock of meeting mode: what it draws, and the largest size that fits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tui.widgets.big_clock import bitmap, fit_scale, render_lines

clock_texts = st.from_regex(r"\+?[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?", fullmatch=True)


def test_a_scale_one_clock_reads_as_its_digits():
    """At scale 1 a 3x5 glyph takes three rows of half blocks: "10" is drawn as expected."""
    assert render_lines("10", 1) == [
        "▄█  █▀█",
        " █  █ █",
        "▀▀▀ ▀▀▀",
    ]


@given(clock_texts, st.integers(1, 300), st.integers(1, 80))
def test_the_chosen_scale_is_the_largest_that_fits(text, width, height):
    """fit_scale never overflows the region, and one step larger would."""
    scale = fit_scale(text, width, height)
    if scale:
        lines = render_lines(text, scale)
        assert len(lines) <= height and all(len(line) <= width for line in lines)
    bigger = render_lines(text, scale + 1)
    assert len(bigger) > height or len(bigger[0]) > width


@given(clock_texts, st.integers(1, 6))
def test_every_row_of_a_drawing_has_the_same_width(text, scale):
    """Lines are as wide as the bitmap times the scale, so centring keeps digits aligned."""
    lines = render_lines(text, scale)
    assert {len(line) for line in lines} == {len(bitmap(text)[0]) * scale}
    assert len(lines) == -(-5 * scale // 2)
