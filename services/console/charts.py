"""Charts drawn on the server as SVG: nothing to load, readable printed, a table beside each.

Colours come from a fixed palette in series order (the largest series first), each with a
legend entry; a bar's exact figure is in its tooltip and in the table under the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#1f5fa8", "#d9822b", "#2e8b57", "#b03a48", "#7a5195", "#8c6d31", "#4f9da6", "#6b6b6b")
OTHER = "other"


def _top(series: dict[str, list[int]], keep: int) -> dict[str, list[int]]:
    """The largest ``keep - 1`` series and the rest summed as ``other``, when there are more."""
    if len(series) <= keep:
        return series
    names = list(series)
    kept = {n: series[n] for n in names[: keep - 1]}
    rest = [series[n] for n in names[keep - 1 :]]
    kept[OTHER] = [sum(column) for column in zip(*rest, strict=True)]
    return kept


def stacked_bars(
    labels: Sequence[str], series: dict[str, list[int]], title: str, marked: Sequence[int] = ()
) -> Markup:
    """Vertical bars, one per label (a week, a month), each stacked by series; the bars at the
    indexes ``marked`` carry a red triangle above them (a surge)."""
    series = _top(series, len(PALETTE))
    width, height, left, bottom, top = 720, 240, 36, 36, 10
    n = max(len(labels), 1)
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    peak = max([*totals, 1])
    step = (width - left - 10) / n
    bar = step * 0.7
    top = top + (14 if marked else 0)
    scale = (height - bottom - top) / peak
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 24 * ((len(series) + 2) // 3)}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for tick in sorted({0, peak // 2, peak}):
        y = height - bottom - tick * scale
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar) / 2
        y = height - bottom
        for colour, (name, values) in zip(PALETTE, series.items(), strict=False):
            if values[i] <= 0:
                continue
            h = values[i] * scale
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(label)}: {escape(name)} {values[i]}</title></rect>"
            )
        if i in marked:
            cx = x + bar / 2
            parts.append(
                f'<path d="M{cx - 5:.1f},{y - 12:.1f} L{cx + 5:.1f},{y - 12:.1f} L{cx:.1f},{y - 3:.1f} Z" '
                f'fill="#b03a48"><title>{escape(label)}: far above the trailing months</title></path>'
            )
        if n <= 16 or i % 2 == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">{escape(label)}</text>'
            )
    for j, (colour, name) in enumerate(zip(PALETTE, series, strict=False)):
        lx, ly = left + (j % 3) * 230, height + 4 + (j // 3) * 24
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 18}" y="{ly + 11}">{escape(name[:32])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def share_bars(rows: Sequence[tuple[str, float | None, str]], title: str, warn_at: float = 0.5) -> Markup:
    """Horizontal bars of a share (0..1) per label; past ``warn_at`` a bar is drawn in red.
    ``rows``: (label, share or None when there is nothing to share, the note shown beside it)."""
    width, row, left = 720, 26, 230
    height = max(len(rows), 1) * row + 30
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    span = width - left - 120
    for k in (0, 0.5, 1):
        x = left + k * span
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 24}" class="grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{int(k * 100)}%</text>')
    for i, (label, share, note) in enumerate(rows):
        y = i * row + 4
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(label[:34])}</text>')
        if share is not None:
            colour = "#b03a48" if share >= warn_at else "#1f5fa8"
            parts.append(
                f'<rect x="{left}" y="{y + 2}" width="{max(share * span, 1):.1f}" height="{row - 10}" '
                f'fill="{colour}"><title>{escape(label)}: {share:.0%}</title></rect>'
            )
        parts.append(f'<text x="{left + (share or 0) * span + 6:.1f}" y="{y + 14}">{escape(note)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()
