"""An LTS drawn as SVG: Graphviz ``dot`` when installed, else a plain circular layout of our own."""

from __future__ import annotations

import math
import shutil
import subprocess
from html import escape
from typing import Any


def dot_source(lts: Any, name: str, max_states: int) -> str:
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    n = min(lts.num_states, max_states)
    lines = [f"digraph {q(name)} {{", "  rankdir=LR;", '  node [shape=circle, fontsize=10];',
             "  init [shape=point];", "  init -> s0;"]  # fmt: skip
    for s in range(n):
        lines.append(f"  s{s} [label={q(str(s))}];")
    for s in range(n):
        for lab, t in lts.successors(s):
            if t < n:
                lines.append(f"  s{s} -> s{t} [label={q(lts.events[lab])}];")
    if lts.num_states > n:
        lines.append(f'  more [shape=note, label="{lts.num_states - n} more states not drawn"];')
    lines.append("}")
    return "\n".join(lines)


def render(lts: Any, name: str, max_states: int = 300) -> str:
    dot = shutil.which("dot")
    if dot is not None:
        try:
            out = subprocess.run([dot, "-Tsvg"], input=dot_source(lts, name, max_states), capture_output=True,
                                 text=True, timeout=30, check=True)  # fmt: skip
            svg = out.stdout
            return svg[svg.find("<svg"):] if "<svg" in svg else svg
        except (subprocess.SubprocessError, OSError):
            pass
    return circle_svg(lts, name, max_states)


def circle_svg(lts: Any, name: str, max_states: int) -> str:
    n = max(1, min(lts.num_states, max_states))
    r = max(120.0, 30.0 * n / math.pi)
    size = 2 * r + 160
    c = size / 2
    pos = [(c + r * math.cos(2 * math.pi * i / n - math.pi / 2), c + r * math.sin(2 * math.pi * i / n - math.pi / 2))
           for i in range(n)]  # fmt: skip
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size:.0f}" height="{size:.0f}" '
             f'viewBox="0 0 {size:.0f} {size:.0f}"><title>{escape(name)}</title>',
             '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z"/></marker></defs>']  # fmt: skip
    for s in range(n):
        for lab, t in lts.successors(s):
            if t >= n:
                continue
            (x1, y1), (x2, y2) = pos[s], pos[t]
            if s == t:
                parts.append(f'<circle cx="{x1:.1f}" cy="{y1 - 22:.1f}" r="10" fill="none" stroke="#555"/>')
                mx, my = x1, y1 - 36
            else:
                d = math.hypot(x2 - x1, y2 - y1) or 1.0
                ux, uy = (x2 - x1) / d, (y2 - y1) / d
                parts.append(f'<line x1="{x1 + 14 * ux:.1f}" y1="{y1 + 14 * uy:.1f}" x2="{x2 - 14 * ux:.1f}" '
                             f'y2="{y2 - 14 * uy:.1f}" stroke="#555" marker-end="url(#a)"/>')  # fmt: skip
                mx, my = (x1 + x2) / 2 - 6 * uy, (y1 + y2) / 2 + 6 * ux
            parts.append(f'<text x="{mx:.1f}" y="{my:.1f}" font-size="10" text-anchor="middle">'
                         f"{escape(lts.events[lab])}</text>")  # fmt: skip
    for s, (x, y) in enumerate(pos):
        fill = "#cfe8ff" if s == 0 else "#fff"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="14" fill="{fill}" stroke="#222"/>'
                     f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="10" text-anchor="middle">{s}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
