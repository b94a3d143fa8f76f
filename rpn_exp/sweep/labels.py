"""Point labels placed where a reader can read them: clear of every mark, of each other and of the legend.

The marks of a plot (:func:`marks`) are what matplotlib draws for its points, in display coordinates: each marker,
ring and cross of a scatter, each marker of a line, each error bar and cap. A label may touch its own point's marks
(it names that point) but no other's. A label with no free place gives way to its number (:func:`place_labels`), and
the numbers are listed with the labels they stand for in the sweep's ``summary.md`` (its plot key).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Where a label may sit beside its point (offsets in points, horizontal alignment), tried in this order.
LABEL_PLACES = ((5, 5, "left"), (5, -11, "left"), (-5, 5, "right"), (-5, -11, "right"), (7, 13, "left"),
                (7, -19, "left"), (-7, 13, "right"), (-7, -19, "right"), (9, -4, "left"), (-9, -4, "right"))


@dataclass
class Mark:
    """A drawn mark: its display box, and the point it belongs to (data x; data y, or None for an error bar, which
    belongs to every point at its x)."""

    box: object  # matplotlib.transforms.Bbox
    x: float
    y: float | None

    def of(self, xy: tuple[float, float]) -> bool:
        """Whether the mark belongs to the point ``xy``."""
        return math.isclose(self.x, xy[0]) and (self.y is None or math.isclose(self.y, xy[1]))


def marks(ax) -> list[Mark]:
    """Every marker, ring and cross (scatter collections), line marker (a baseline's squares, error caps) and error
    bar (line collections) drawn on ``ax``, each as the display box it covers (marker sizes in points, at the
    figure's dpi)."""
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.transforms import Bbox

    scale = ax.figure.dpi / 72  # pixels per point
    found = []

    def square(x, y, radius, own_y):
        px, py = ax.transData.transform((x, y))
        found.append(Mark(Bbox.from_extents(px - radius, py - radius, px + radius, py + radius), float(x), own_y))

    for collection in ax.collections:
        if isinstance(collection, PathCollection):
            sizes = collection.get_sizes()
            for i, (x, y) in enumerate(collection.get_offsets()):
                square(x, y, math.sqrt(sizes[i % len(sizes)]) / 2 * scale, float(y))
        elif isinstance(collection, LineCollection):
            width = max(collection.get_linewidths() or [1.0]) / 2 * scale
            for segment in collection.get_segments():
                ends = ax.transData.transform(segment)
                box = Bbox.from_extents(ends[:, 0].min(), ends[:, 1].min(), ends[:, 0].max(), ends[:, 1].max())
                found.append(Mark(box.padded(width), float(segment[0][0]), None))
    for line in ax.get_lines():
        if line.get_marker() in (None, "None", "none", "", " "):
            continue  # a line without markers (the chance level) names no point
        cap = line.get_marker() in ("_", "|")  # an error bar's cap: it belongs to every point at its x
        for x, y in zip(line.get_xdata(), line.get_ydata()):
            square(x, y, line.get_markersize() / 2 * scale, None if cap else float(y))
    return found


def place_labels(fig, labels: Sequence, legend=None) -> list[tuple[str, str]]:
    """Move each point label to the first of :data:`LABEL_PLACES` where it overlaps no placed label, no tick label,
    the legend, the axes' frame or another point's mark (:func:`marks`; matplotlib's own text extents). A label with
    no free place is replaced by its number (1, 2, ...) at the first place free for that; a number with no place
    either is hidden. Returns the key: (number, what the label names) for each point so numbered (its ``gid`` where
    set, a fuller name than its text, else its text), one number per point however many panels show it."""
    renderer = fig.canvas.get_renderer()
    taken = [legend.get_window_extent(renderer)] if legend is not None else []
    drawn = {}
    for ax in fig.axes:
        taken += [t.get_window_extent(renderer) for t in ax.get_xticklabels() + ax.get_yticklabels()
                  if t.get_visible() and t.get_text()]
        drawn[ax] = marks(ax)
    numbers: dict[str, str] = {}  # what a label names -> its number
    for label in sorted(labels, key=lambda a: a.xy[0]):
        others = [m.box for m in drawn[label.axes] if not m.of(label.xy)]
        if _place(label, renderer, taken, others):
            continue
        text = label.get_text()
        named = label.get_gid() or text
        label.set_text(numbers.get(named, str(len(numbers) + 1)))
        label.set_fontweight("bold")
        if _place(label, renderer, taken, others):
            numbers.setdefault(named, label.get_text())
        else:
            label.set_text(text)
            label.set_visible(False)
    return [(number, named) for named, number in numbers.items()]


def _place(label, renderer, taken: list, others: list) -> bool:
    """Put ``label`` at the first free place (appending its box to ``taken``); whether there was one."""
    frame = label.axes.get_window_extent(renderer)
    for dx, dy, align in LABEL_PLACES:
        label.set_position((dx, dy))
        label.set_horizontalalignment(align)
        box = label.get_window_extent(renderer).padded(2)  # a little air between neighbours
        inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        if inside and not any(box.overlaps(other) for other in taken) and not any(box.overlaps(o) for o in others):
            taken.append(box)
            return True
    return False
