"""Loss curves: a character chart for the terminal, and a PNG through matplotlib if it is installed.

Each series is a list of (step, loss) points. The text chart interpolates linearly
between points, one character column at a time, so a curve with a handful of
evaluations still reads as a line. Plain text only; the CLI adds the colours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mygpt.errors import MyGPTError

Series = Sequence[tuple[float, float]]
MARKERS = {"train": "•", "val": "×"}
BOTH = "◆"  # where two curves share a cell


def text_chart(series: dict[str, Series], width: int = 48, height: int = 12) -> list[str]:
    """Draw the series on a width x height grid with a y axis (loss) and an x axis (step)."""
    points = [p for s in series.values() for p in s]
    if not points:
        return []
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    grid = [[" "] * width for _ in range(height)]
    for name, pts in series.items():
        pts = sorted(pts)
        for col in range(width):
            x = x_lo + (x_hi - x_lo) * col / max(1, width - 1)
            y = _interpolate(pts, x)
            if y is None:
                continue
            row = round((y_hi - y) / (y_hi - y_lo) * (height - 1))
            cell = grid[row][col]
            grid[row][col] = MARKERS.get(name, "*") if cell in (" ", MARKERS.get(name, "*")) else BOTH
    labels = {0: y_hi, height // 2: (y_hi + y_lo) / 2, height - 1: y_lo}
    lines = [
        f"{labels[r]:7.3f} ┤" + "".join(row) if r in labels else " " * 8 + "│" + "".join(row)
        for r, row in enumerate(grid)
    ]
    lines.append(" " * 8 + "└" + "─" * width)
    left, right = f"{x_lo:g}", f"{x_hi:g} step"
    lines.append(" " * 9 + left + " " * max(1, width - len(left) - len(right)) + right)
    legend = "   ".join(f"{MARKERS.get(name, '*')} {name}" for name in series)
    return [" " * 9 + legend, *lines]


def _interpolate(pts: Sequence[tuple[float, float]], x: float) -> float | None:
    if not pts or x < pts[0][0] or x > pts[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):  # consecutive pairs
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]


def save_plot(curves: dict[str, dict[str, Series]], path: str | Path) -> Path:
    """Write a PNG of the loss curves (one entry per checkpoint). Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no window
        import matplotlib.pyplot as plt
    except ImportError:
        raise MyGPTError(
            "--plot needs matplotlib, which is not installed. Install the optional extra: "
            "`uv sync --extra plot` (or `pip install matplotlib`), or leave out --plot."
        ) from None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for label, series in curves.items():
        for name, pts in series.items():
            if pts:
                xs, ys = zip(*sorted(pts), strict=True)
                ax.plot(
                    xs, ys, label=f"{label} {name}" if len(curves) > 1 else name, marker="o" if name == "val" else None
                )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise MyGPTError(f"could not write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path
