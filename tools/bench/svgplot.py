"""The benchmark's small SVG charts (the docs show them; no plotting library on
the node images this runs on). One line chart and one grouped bar chart, each a
string of SVG with a title, a grid, a legend and a tooltip on every point."""

import math

FONT = 'font-family="sans-serif" font-size="11"'


def _head(W, H, title, subtitle):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" {FONT}>',
            '<rect width="100%" height="100%" fill="white"/>',
            f'<text x="10" y="20" font-size="14" font-weight="bold">{title}</text>',
            f'<text x="10" y="36">{subtitle}</text>']


def _step(ymax):
    """A grid step giving 5-10 lines up to ymax."""
    raw = ymax / 6
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _grid(s, y, ymax, x1, x2, left):
    step = _step(ymax)
    g = 0.0
    while g <= ymax * 1.0001:
        s.append(f'<line x1="{x1}" x2="{x2}" y1="{y(g):.1f}" y2="{y(g):.1f}" stroke="#eee"/>'
                 f'<text x="{left - 6}" y="{y(g) + 4:.1f}" text-anchor="end">{g:g}</text>')
        g += step


def lines(title, subtitle, series, xlabel, unit, hlines=(), log_x=True, W=720, H=360):
    """series: [(name, color, [(x, y), ...], dash)] drawn against x (log scale by
    default); hlines: [(y, label)] drawn as dotted reference lines (targets)."""
    left, top, bottom, legend = 60, 50, 50, 170
    xs = sorted({x for _, _, pts, _ in series for x, _ in pts})
    f = math.log10 if log_x else (lambda v: v)
    span = max(1e-9, f(max(xs)) - f(min(xs)))
    lx = lambda v: left + (f(v) - f(min(xs))) / span * (W - left - legend)
    ymax = max([v for _, _, pts, _ in series for _, v in pts] + [h for h, _ in hlines]) * 1.1
    y = lambda v: top + (1 - v / ymax) * (H - top - bottom)
    s = _head(W, H, title, subtitle)
    _grid(s, y, ymax, left, W - legend, left)
    for h, label in hlines:
        s.append(f'<line x1="{left}" x2="{W - legend}" y1="{y(h):.1f}" y2="{y(h):.1f}" stroke="#888" stroke-dasharray="2 2">'
                 f'<title>{label}</title></line>')
    for v in xs:
        s.append(f'<text x="{lx(v):.1f}" y="{H - bottom + 16}" text-anchor="middle">{v:,}</text>')
    s.append(f'<text x="{(W - legend + left) / 2}" y="{H - 12}" text-anchor="middle">{xlabel}</text>')
    for k, (name, color, pts, dash) in enumerate(series):
        s.append(f'<polyline points="{" ".join(f"{lx(x):.1f},{y(v):.1f}" for x, v in pts)}" fill="none" '
                 f'stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for x, v in pts:
            s.append(f'<circle cx="{lx(x):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                     f'<title>{name} at {x:,}: {v:,.3g} {unit}</title></circle>')
        s.append(f'<line x1="{W - legend + 10}" x2="{W - legend + 40}" y1="{top + 16 * k}" y2="{top + 16 * k}" '
                 f'stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>'
                 f'<text x="{W - legend + 46}" y="{top + 16 * k + 4}">{name}</text>')
    s.append("</svg>")
    return "\n".join(s)


def bars(title, subtitle, groups, series, unit, W=720, H=340):
    """groups: the x labels; series: [(name, color, [value per group])], drawn as
    bars side by side in each group."""
    left, top, bottom, legend = 60, 50, 50, 170
    ymax = max(v for _, _, vals in series for v in vals) * 1.1
    y = lambda v: top + (1 - v / ymax) * (H - top - bottom)
    gw = (W - left - legend) / len(groups)
    bw = gw * 0.8 / len(series)
    s = _head(W, H, title, subtitle)
    _grid(s, y, ymax, left, W - legend, left)
    for gi, g in enumerate(groups):
        s.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{H - bottom + 16}" text-anchor="middle">{g}</text>')
        for si, (name, color, vals) in enumerate(series):
            x = left + gi * gw + gw * 0.1 + si * bw
            s.append(f'<rect x="{x:.1f}" y="{y(vals[gi]):.1f}" width="{bw - 2:.1f}" height="{y(0) - y(vals[gi]):.1f}" '
                     f'fill="{color}"><title>{g}, {name}: {vals[gi]:,.3g} {unit}</title></rect>')
    for k, (name, color, _) in enumerate(series):
        s.append(f'<rect x="{W - legend + 10}" y="{top + 16 * k - 6}" width="12" height="12" fill="{color}"/>'
                 f'<text x="{W - legend + 28}" y="{top + 16 * k + 4}">{name}</text>')
    s.append("</svg>")
    return "\n".join(s)
