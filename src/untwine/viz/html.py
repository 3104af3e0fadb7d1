"""Building untwine's self-contained HTML pages: the one place for their CSS, escaping, tables,
embedded images (``data:`` URIs) and the page frame.

Every page untwine writes (the run report, the SAE report, the directions section, the
layer-health page) is made of these pieces, so they look alike and none loads anything from
the network.  :func:`page` adds a small inline script that records, once the page has loaded,
how many images decoded (``data-images-rendered`` / ``data-images-total`` on ``<body>``) and
where the opening paragraph sits (``data-summary-top`` / ``data-summary-height``, pixels);
the browser test reads them.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np

from untwine.errors import UntwineError

#: the file name of every page untwine writes into a run or SAE folder
REPORT_FILE = "report.html"

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d232b}
header{background:#1f4e79;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.85;font-size:13px}
nav{background:#fff;border-bottom:1px solid #d8dde3;padding:8px 32px;font-size:13px}
nav a{margin-right:14px;color:#1f4e79;text-decoration:none}
main{max-width:1200px;margin:0 auto;padding:16px 32px 48px}
section{background:#fff;border:1px solid #d8dde3;border-radius:6px;margin:18px 0;padding:14px 20px}
section h2{font-size:17px;margin:0 0 8px;color:#1f4e79}
p.note{font-size:13px;color:#4a5560;margin:6px 0 10px}
p.summary{font-size:15px;line-height:1.5;margin:4px 0 8px}
p.warn{font-size:13px;color:#8a4b00;background:#fff6e5;border:1px solid #f0d9a8;padding:6px 10px;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{border:1px solid #dde2e8;padding:3px 9px;text-align:right}
th{background:#eef2f6} td.k,th.k{text-align:left;font-family:ui-monospace,Menlo,Consolas,monospace}
tr.passive td{color:#8a94a0;background:#fafafa}
img{max-width:100%;height:auto;display:block;margin:6px 0;image-rendering:pixelated}
img.fig{image-rendering:auto}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:8px;font-size:12px;overflow:auto}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-rendered', String(ok));
  var summary = document.getElementById('summary-text');
  if (summary) {
    var box = summary.getBoundingClientRect();
    document.body.setAttribute('data-summary-top', String(Math.round(box.top + window.scrollY)));
    document.body.setAttribute('data-summary-height', String(Math.round(box.height)));
  }
  document.body.setAttribute('data-report-ready', '1');
});
"""


# -- HTML pieces ----------------------------------------------------------------------
def esc(x) -> str:
    return html.escape(str(x), quote=True)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:`` URI embedding ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img(data: bytes, alt: str, *, mime: str = "image/png", cls: str = "fig", width: int | None = None) -> str:
    w = f' width="{int(width)}"' if width else ""
    return f'<img class="{cls}" alt="{esc(alt)}" src="{data_uri(data, mime)}"{w}>'


def fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return esc(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if 0 < abs(v) < 1e-9:
            return "0"  # floating-point noise (e.g. 4.47e-30), not a value worth reading
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return esc(v)


def table(header: list[str], rows: list[list[Any]], *, key_cols: int = 1, row_classes=None) -> str:
    out = ["<table><tr>"]
    out += [f'<th class="k">{esc(h)}</th>' if i < key_cols else f"<th>{esc(h)}</th>" for i, h in enumerate(header)]
    out.append("</tr>")
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        out.append(f"<tr{cls}>")
        for i, v in enumerate(row):
            out.append(f'<td class="k">{esc(v)}</td>' if i < key_cols else f"<td>{fmt(v)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def guard(fn: Callable[[], str]) -> str:
    """Run a section builder; bad data for one section becomes a note, not a failed report."""
    try:
        return fn()
    except UntwineError as exc:
        return f'<p class="warn">Not available: {esc(exc)}</p>'


def page(title: str, subtitle: str, source: str, nav: list[str], sections: list[str]) -> str:
    """The whole page: inline CSS, header (``subtitle``, when, ``source``), navigation, sections, the image-count script."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sub = f"{esc(subtitle)} &middot; " if subtitle else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head>\n<body>"
        f"<header><h1>{esc(title)}</h1><p>{sub}generated by untwine on {when} {esc(source)}</p></header>"
        f"<nav>{''.join(nav)}</nav><main>\n"
        + "\n".join(sections)
        + f"\n</main><script>{SCRIPT}</script></body></html>\n"
    )
