"""Plots as small hand-written SVG (no matplotlib): a drift report draws one per column, and
matplotlib's ~0.25 s per figure was a third of the drift job's time at 1M rows."""

from __future__ import annotations

from html import escape

COLOURS = ("#4c72b0", "#dd8452")


def distribution_svg(title: str, labels: list[str], baseline_shares, current_shares) -> bytes:
    """Baseline-versus-current shares per bin or category, side by side (the report embeds it)."""
    pairs = [(float(b), float(c)) for b, c in zip(baseline_shares, current_shares, strict=True)]
    top = max([v for pair in pairs for v in pair] + [1e-9]) * 1.1
    left, right, head, plot_h, foot = 56, 16, 40, 200, 90
    step = max(24.0, 560.0 / max(len(labels), 1))
    width = int(left + right + step * len(labels))
    height = head + plot_h + foot
    y = lambda v: head + plot_h - plot_h * v / top  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = top / 1.1 * tick
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2g}</text>')
    bar = step * 0.38
    for i, (label, (b, c)) in enumerate(zip(labels, pairs, strict=True)):
        x = left + step * i + step * 0.1
        for j, value in enumerate((b, c)):
            out.append(f'<rect x="{x + j * bar:.1f}" y="{y(value):.1f}" width="{bar:.1f}" '
                       f'height="{y(0) - y(value):.1f}" fill="{COLOURS[j]}"><title>{value:.4f}</title></rect>')
        cx, cy = x + bar, head + plot_h + 12
        out.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" transform="rotate(-45 {cx:.1f} {cy})">'
                   f'{escape(str(label)[:24])}</text>')
    out.append(f'<text transform="rotate(-90 14 {head + plot_h / 2:.0f})" x="14" y="{head + plot_h / 2:.0f}" '
               'text-anchor="middle">share of rows</text>')
    for j, name in enumerate(("baseline (training)", "current window")):
        lx = width - right - 260 + j * 130
        out.append(f'<rect x="{lx}" y="26" width="10" height="10" fill="{COLOURS[j]}"/><text x="{lx + 14}" y="35">{name}</text>')
    out.append("</svg>")
    return "".join(out).encode()


def timeline_svg(title: str, labels: list[str], series: dict[str, list], reference: float | None = None) -> bytes:
    """Values over time, one line per series (None: no point); a dashed line at `reference`."""
    values = [float(v) for vs in series.values() for v in vs if v is not None] + ([reference] if reference is not None else [])
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((high - low) * 0.1, 0.01)
    low, high = low - pad, high + pad
    left, right, head, plot_h, foot = 56, 16, 40, 200, 90
    step = max(24.0, 560.0 / max(len(labels), 1))
    width = int(left + right + step * max(len(labels), 1))
    height = head + plot_h + foot
    y = lambda v: head + plot_h - plot_h * (v - low) / (high - low)  # noqa: E731
    x = lambda i: left + step * (i + 0.5)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = low + (high - low) * tick
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    if reference is not None:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(reference):.1f}" y2="{y(reference):.1f}" '
                   f'stroke="#888" stroke-dasharray="4 3"><title>at evaluation: {reference:.4f}</title></line>')
    for j, (name, vs) in enumerate(series.items()):
        colour = COLOURS[j % len(COLOURS)]
        points = [(x(i), y(float(v)), float(v)) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                       + " ".join(f"{a:.1f},{b:.1f}" for a, b, _ in points) + '"/>')
        out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"><title>{escape(name)}: {v:.4f}</title></circle>'
                for a, b, v in points]
        lx = width - right - 260 + j * 130
        out.append(f'<rect x="{lx}" y="26" width="10" height="10" fill="{colour}"/><text x="{lx + 14}" y="35">{escape(name)}</text>')
    for i, label in enumerate(labels):
        cx, cy = x(i), head + plot_h + 12
        out.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" transform="rotate(-45 {cx:.1f} {cy})">{escape(str(label)[:24])}</text>')
    out.append("</svg>")
    return "".join(out).encode()
