"""The documentation site builds with `mkdocs build --strict`: a broken link, a link to a heading
that does not exist, a page missing from the nav's files or a failing generated section fails.
Offline: the theme asks for no web font and the build fetches nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def test_the_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    # The hooks import the project from the checkout beside mkdocs.yml, whatever is installed.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    params = (site / "reference" / "params.html").read_text(encoding="utf-8")
    assert "select.ratio" in params  # the generated section is on the built page
    assert (site / "images" / "report.png").is_file()
    pages = list(site.rglob("*.html"))
    assert not [p for p in pages if "fonts.googleapis.com" in p.read_text(encoding="utf-8")]
