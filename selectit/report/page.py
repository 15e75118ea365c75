"""The report's HTML: sections of text, tables and inline PNG figures in one file.

Nothing is loaded from elsewhere (no script, no font, no stylesheet URL), so the
page opens from the file alone, offline.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #243447; color: #fff; padding: 1.2em 2em; }
header h1 { margin: 0 0 .3em 0; font-size: 1.6em; }
nav { padding: .6em 2em; background: #e8ecf1; position: sticky; top: 0; z-index: 1; }
nav a { margin-right: 1.1em; color: #243447; text-decoration: none; font-size: .92em; }
main { padding: 0 2em 3em 2em; max-width: 1400px; }
section { background: #fff; border: 1px solid #dde; border-radius: 6px; margin: 1.2em 0; padding: .4em 1.4em 1.2em; }
h2 { border-bottom: 2px solid #dd8452; padding-bottom: .2em; }
figure.plot { margin: 1em 0; }
figure.plot img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .88em; color: #555; max-width: 60em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .86em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f2f5; }
.pass { color: #2e7d32; font-weight: bold; }
.fail { color: #c62828; font-weight: bold; }
.note { background: #fff8e1; border-left: 4px solid #f0b429; padding: .5em 1em; }
code, pre { background: #f3f3f3; padding: 0 .25em; }
pre { padding: .6em; white-space: pre-wrap; }
details { margin: .4em 0; }
"""


@dataclass
class Section:
    id: str  # the anchor, and what tests look for
    title: str
    parts: list[str] = field(default_factory=list)  # HTML fragments, in order

    def text(self, text: str) -> Section:
        self.parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def note(self, text: str) -> Section:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')
        return self

    def raw(self, fragment: str) -> Section:
        """HTML made by this module's helpers (already escaped)."""
        self.parts.append(fragment)
        return self

    def table(self, frame: pd.DataFrame, caption: str | None = None, index: bool = False) -> Section:
        self.parts.append(table_html(frame, caption, index))
        return self

    def figure(self, plot_id: str, png: bytes, caption: str) -> Section:
        self.parts.append(figure_html(plot_id, png, caption))
        return self

    def html(self) -> str:
        body = "\n".join(self.parts)
        heading = f"<h2>{html.escape(self.title)}</h2>"
        return f'<section id="{self.id}" class="report-section">\n{heading}\n{body}\n</section>'


def _format(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return str(value)


def table_html(frame: pd.DataFrame, caption: str | None = None, index: bool = False) -> str:
    shown = frame.reset_index() if index else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format(v))}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False)
    )
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="data">{title}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def figure_html(plot_id: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure class="plot" id="plot-{plot_id}">'
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def status_html(success: bool) -> str:
    return '<span class="pass">pass</span>' if success else '<span class="fail">fail</span>'


def render(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    links = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><header><h1>{html.escape(title)}</h1><div>{html.escape(subtitle)}</div></header>\n"
        f"<nav>{links}</nav>\n<main>\n{body}\n</main></body></html>\n"
    )
