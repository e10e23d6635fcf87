"""A clock drawn in block pixels, as large as its region allows: meeting mode's time left, to be
read from across a table on a big terminal (Textual's `Digits` is three rows at any size).

Each glyph is a 3x5 bitmap; a pixel is `scale` columns wide and `scale` half-rows tall (upper
and lower half blocks), so pixels stay about square in a terminal cell of 1:2.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

_GLYPHS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    ":": (".", "#", ".", "#", "."),
    "+": ("...", ".#.", "###", ".#.", "..."),
    "-": ("...", "...", "###", "...", "..."),
    " ": ("..", "..", "..", "..", ".."),
}
_ROWS = 5
#: upper pixel, lower pixel -> the character that draws both
_HALVES = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def bitmap(text: str) -> list[list[bool]]:
    """The text as rows of pixels, one blank column between glyphs (unknown characters are
    left out)."""
    glyphs = [_GLYPHS[c] for c in text if c in _GLYPHS]
    rows: list[list[bool]] = [[] for _ in range(_ROWS)]
    for index, glyph in enumerate(glyphs):
        for row, line in zip(rows, glyph, strict=True):
            if index:
                row.append(False)
            row.extend(pixel == "#" for pixel in line)
    return rows


def fit_scale(text: str, width: int, height: int) -> int:
    """The largest whole scale at which `text` fits in width x height cells (0: it does not)."""
    columns = len(bitmap(text)[0])
    if not columns:
        return 0
    return max(0, min(width // columns, (2 * height) // _ROWS))


def render_lines(text: str, scale: int) -> list[str]:
    """The text drawn at `scale` as lines of block characters."""
    pixels = [[p for p in row for _ in range(scale)] for row in bitmap(text)]
    tall = [row for row in pixels for _ in range(scale)]
    if len(tall) % 2:
        tall.append([False] * len(tall[0]))
    return ["".join(_HALVES[upper, lower] for upper, lower in zip(top, bottom, strict=True))
            for top, bottom in zip(tall[0::2], tall[1::2], strict=True)]


class BigClock(Widget):
    """`value` (digits, `:`, `+`, `-`) drawn as large as the widget's region allows, centred."""

    DEFAULT_CSS = """
    BigClock { width: 1fr; height: 10; }
    """

    value: reactive[str] = reactive("00:00")

    def __init__(self, value: str = "00:00", **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(BigClock.value, value)
        self._cache: tuple[str, int, int, list[str]] | None = None

    def _lines(self) -> list[str]:
        width, height = self.size
        if self._cache is None or self._cache[:3] != (self.value, width, height):
            scale = fit_scale(self.value, width, height)
            lines = render_lines(self.value, scale) if scale else [self.value]
            top = max(0, (height - len(lines)) // 2)
            self._cache = (self.value, width, height, [""] * top + lines)
        return self._cache[3]

    def render_line(self, y: int) -> Strip:
        lines = self._lines()
        width = self.size.width
        text = lines[y] if y < len(lines) else ""
        left = max(0, (width - len(text)) // 2)
        style = self.rich_style
        return Strip([Segment(" " * left + text, style)]).adjust_cell_length(width, style)
