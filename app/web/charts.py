"""Charts drawn on the server as inline SVG: no script, no external library, readable without colour.

Suppressed cells (``None``) are drawn as an outlined placeholder labelled ``<K``, never as a bar of
some height, so a chart cannot leak what the table hides.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from app.web.templating import markup


def _num(value: int | float | None, k: int) -> str:
    return f"<{k}" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _nice_max(values: Sequence[int | float | None], k: int) -> float:
    top = max([v for v in values if v is not None] + [k, 1])
    step = 10 ** max(0, len(str(int(top))) - 1)
    return float(-(-top // step) * step)


def grouped_bars(
    periods: Sequence[str],
    series: Sequence[tuple[str, Sequence[int | None]]],
    *,
    k: int,
    title: str,
    ticks: Sequence[str] | None = None,
) -> Markup:
    """Bars per period, one per series (e.g. contacts and escapes per week); ``ticks`` label the axis."""
    width, height, left, bottom, top = 760, 260, 44, 44, 14
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = _nice_max([v for _, values in series for v in values], k)
    group_w = plot_w / max(1, len(periods))
    bar_w = max(2.0, (group_w - 6) / max(1, len(series)))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid-line" x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{peak * i / 4:g}</text>')
    for p, period in enumerate(periods):
        x0 = left + p * group_w + 3
        for s, (name, values) in enumerate(series):
            value = values[p] if p < len(values) else None
            x = x0 + s * bar_w
            label = f"{escape(period)} · {escape(name)}: {escape(_num(value, k))}"
            if value is None:
                h = plot_h * min(k - 1, peak) / peak
                parts.append(
                    f'<rect class="hidden-cell" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                    f'height="{h:.1f}"><title>{label}</title></rect>'
                )
            else:
                h = plot_h * value / peak
                parts.append(
                    f'<rect class="s{s + 1}" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                    f'height="{h:.1f}"><title>{label}</title></rect>'
                )
        if len(periods) <= 16 or p % 2 == 0:
            cx = x0 + group_w / 2 - 3
            tick = ticks[p] if ticks else period[-3:] if len(periods) > 8 else period
            parts.append(f'<text x="{cx:.1f}" y="{height - bottom + 14}" text-anchor="middle">{escape(tick)}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - 10}" y1="{top + plot_h}" y2="{top + plot_h}"/></svg>')
    return markup("".join(parts))


def horizontal_bars(items: Sequence[tuple[str, int | float | None]], *, k: int, title: str, unit: str = "") -> Markup:
    """One labelled horizontal bar per item (the funnel, the status breakdown)."""
    row, label_w, width = 28, 170, 760
    height = row * max(1, len(items)) + 8
    peak = _nice_max([v for _, v in items], k)
    bar_space = width - label_w - 70
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (name, value) in enumerate(items):
        y = 4 + i * row
        parts.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(name)}</text>')
        shown = escape(_num(value, k)) + escape(unit)
        if value is None:
            w = bar_space * min(k - 1, peak) / peak
            parts.append(f'<rect class="hidden-cell" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}"/>')
        else:
            w = bar_space * value / peak
            parts.append(f'<rect class="s{1 + i % 4}" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 17}">{shown}</text>')
    parts.append("</svg>")
    return markup("".join(parts))
