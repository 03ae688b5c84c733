"""The report builder: self-contained HTML, summary.json, Parquet tables."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from growthmachine.report import Report  # noqa: E402


def make_report():
    r = Report("test run", meta={"users": 10, "seed": 1})
    s = r.section("world", "The world")
    s.text("First paragraph <b>escaped</b>.\n\nSecond paragraph.")
    s.kpi("n_users", 10).kpi("mean_spend", np.float64(12.345)).kpi("nan_kpi", float("nan"))
    df = pd.DataFrame({"name": list("abcdefghij"), "value": np.arange(10) / 3})
    s.table("users", df, caption="Users", max_rows=5)
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    s.figure(fig, caption="A line")
    r.section("other", "Other").text("nothing")
    return r, df


def test_write_self_contained_report(tmp_path):
    r, df = make_report()
    out = r.write(tmp_path / "rep")
    html = (out / "report.html").read_text()
    assert "<title>test run</title>" in html
    assert "&lt;b&gt;escaped&lt;/b&gt;" in html  # text is escaped
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(imgs) == 1 and imgs[0].startswith("data:image/png;base64,")
    # Opens offline: no external resources at all.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "first 5 of 10 rows; all rows in tables/world_users.parquet" in html
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["users"] == 10
    assert summary["sections"]["world"]["kpis"] == {
        "n_users": 10,
        "mean_spend": 12.345,
        "nan_kpi": None,
    }
    back = pd.read_parquet(out / "tables" / "world_users.parquet")
    pd.testing.assert_frame_equal(back, df)


def test_section_names_are_validated():
    r = Report()
    with pytest.raises(ValueError, match="name: must be lower-case"):
        r.section("Bad Name", "x")
    r.section("ok", "x")
    with pytest.raises(ValueError, match="a section 'ok' exists already"):
        r.section("ok", "y")
    with pytest.raises(TypeError, match="df: must be a pandas DataFrame"):
        r.section("t", "t").table("x", [1, 2])


def test_tables_align_numbers_right_and_escape_text(tmp_path):
    r = Report()
    df = pd.DataFrame({"label": ["<b>x</b>", "y"], "n": [1234567, 2], "share": [0.5, np.nan]})
    r.section("s", "S").table("t", df)
    html = r.to_html()
    assert "<th>label</th><th class=num>n</th><th class=num>share</th>" in html
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td><td class=num>1,234,567</td><td class=num>0.5</td>" in html
    assert "<td>y</td><td class=num>2</td><td class=num></td>" in html  # NaN shows as blank
