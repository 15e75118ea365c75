"""The run report: one self-contained HTML page about a finished run's data folder.

- `rundata`: reads what the stages wrote (summaries, tables, ids) into one `RunData`;
- `analysis`: pure computations over it (agreement, validity, what was selected);
- `stability`: the selection recomputed from resampled prompts and raters (no inference);
- `figures`: the matplotlib plots, as inline PNGs;
- `page`: the HTML (sections, tables, CSS), with no external file or CDN;
- `build`: ties them together and writes report.html with the plot data beside it;
- `explain`: what every rater read and answered for one example (`selectit explain ID`).
"""

from selectit.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
