"""The report of a run: ``report.html`` (self-contained), ``summary.json`` and Parquet tables.

Each pipeline stage adds one :class:`Section` with text, KPIs, tables and matplotlib figures::

    sec = report.section("insight", "User insight")
    sec.text("Cells built from the transaction log ...")
    sec.kpi("n_cells", 1234)
    sec.table("cells", cells_df, caption="Cell profiles")        # -> tables/insight_cells.parquet
    sec.figure(fig, caption="CLV distribution")                  # embedded PNG

:meth:`Report.write` writes ``OUT/report.html`` (PNG plots embedded as base64, inline CSS: it opens
offline), ``OUT/summary.json`` (run metadata and every section's KPIs) and ``OUT/tables/*.parquet``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_NAME = re.compile(r"^[a-z0-9_]+$")

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7fb}
header{background:#1d2330;color:#fff;padding:24px 40px}header h1{margin:0;font-size:26px}
header p{margin:6px 0 0;color:#c9cfdb}main{padding:16px 40px 60px;max-width:1200px}
nav a{color:#c9cfdb;margin-right:16px;text-decoration:none}nav{margin-top:12px}
section{background:#fff;border-radius:8px;padding:18px 24px;margin:18px 0;box-shadow:0 1px 3px #0001}
h2{margin-top:0;font-size:20px}.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.kpi{background:#eef1f8;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:18px}.kpi span{font-size:12px;color:#556}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 10px;white-space:nowrap;border-bottom:1px solid #e3e6ee;text-align:left}
th.num,td.num{text-align:right}
th{background:#f0f2f7}figure{margin:12px 0}
div.tbl{overflow-x:auto;max-width:100%}
figcaption,.caption{font-size:13px;color:#556;margin:4px 0}img{max-width:100%}p.note{color:#556;font-size:13px}
"""


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return str(f)
        for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
            if abs(f) >= scale:
                return f"{f / scale:.3g}{suffix}"
        if f != 0 and abs(f) < 1e-3:
            return f"{f:.3g}"
        return f"{f:,.4g}" if abs(f) < 1000 else f"{f:,.0f}"
    return str(v)


def _table_html(df: pd.DataFrame) -> str:
    """A table with numbers formatted by :func:`_fmt` and right-aligned, text left-aligned."""
    numeric = [
        pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
        for c in df.columns
    ]

    def cell(v: Any, num: bool, tag: str = "td") -> str:
        text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else _fmt(v)
        return f"<{tag}{' class=num' if num else ''}>{html.escape(text)}</{tag}>"

    head = "".join(cell(str(c), n, "th") for c, n in zip(df.columns, numeric, strict=True))
    rows = "".join(
        "<tr>" + "".join(cell(v, n) for v, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    return (
        f'<div class="tbl"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
    )


@dataclass
class Section:
    name: str
    title: str
    _items: list[tuple[str, Any]] = field(default_factory=list)
    kpis: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def text(self, text: str) -> Section:
        """A paragraph (plain text; blank lines separate paragraphs)."""
        self._items.append(("text", text))
        return self

    def kpi(self, key: str, value: Any, label: str | None = None) -> Section:
        """A headline number, shown in the section and written to summary.json."""
        self.kpis[key] = _jsonable(value)
        self._items.append(("kpi", (key, value, label or key.replace("_", " "))))
        return self

    def table(
        self,
        name: str,
        df: pd.DataFrame,
        caption: str = "",
        *,
        max_rows: int = 30,
        parquet: bool = True,
    ) -> Section:
        """A table: its first ``max_rows`` rows in the HTML, all of it in ``tables/<section>_<name>.parquet``."""
        if not _NAME.match(name):
            raise ValueError(f"name: must be lower-case letters, digits and _, got {name!r}")
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df: must be a pandas DataFrame, got {type(df).__name__}")
        if parquet:
            self.tables[name] = df
        self._items.append(("table", (name, df, caption, max_rows)))
        return self

    def figure(self, fig: Any, caption: str = "", *, dpi: int = 110) -> Section:
        """A matplotlib figure, embedded as a PNG; the figure is closed afterwards."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        self._items.append(("figure", (base64.b64encode(buf.getvalue()).decode(), caption)))
        return self

    def _html(self) -> str:
        out = [f'<section id="{self.name}"><h2>{html.escape(self.title)}</h2>']
        kpis: list[str] = []

        def flush() -> None:
            if kpis:
                out.append('<div class="kpis">' + "".join(kpis) + "</div>")
                kpis.clear()

        for kind, item in self._items:
            if kind == "kpi":
                _, value, label = item
                kpis.append(
                    f'<div class="kpi"><b>{html.escape(_fmt(value))}</b>'
                    f"<span>{html.escape(label)}</span></div>"
                )
                continue
            flush()
            if kind == "text":
                for para in str(item).split("\n\n"):
                    out.append(f"<p>{html.escape(para.strip())}</p>")
            elif kind == "table":
                name, df, caption, max_rows = item
                shown = df.head(max_rows)
                if caption:
                    out.append(f'<p class="caption">{html.escape(caption)}</p>')
                out.append(_table_html(shown))
                if len(df) > max_rows:
                    note = f"first {max_rows} of {len(df):,} rows"
                    if name in self.tables:
                        note += f"; all rows in tables/{self.name}_{name}.parquet"
                    out.append(f'<p class="note">{note}</p>')
            elif kind == "figure":
                b64, caption = item
                out.append(
                    f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}"/>'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        flush()
        out.append("</section>")
        return "\n".join(out)


class Report:
    """A run's report: an ordered list of sections plus run metadata."""

    def __init__(self, title: str = "growthmachine run", meta: dict[str, Any] | None = None):
        self.title = title
        self.meta: dict[str, Any] = dict(meta or {})
        self.sections: list[Section] = []
        #: Top-level entries of ``summary.json`` besides title, meta and sections (e.g. the
        #: machine's ``comparison`` and ``history``).
        self.data: dict[str, Any] = {}

    def section(self, name: str, title: str, *, first: bool = False) -> Section:
        """A new section, appended (or, with ``first``, put before every other)."""
        if not _NAME.match(name):
            raise ValueError(f"name: must be lower-case letters, digits and _, got {name!r}")
        if any(s.name == name for s in self.sections):
            raise ValueError(f"name: a section {name!r} exists already")
        sec = Section(name, title)
        if first:
            self.sections.insert(0, sec)
        else:
            self.sections.append(sec)
        return sec

    def summary(self) -> dict[str, Any]:
        return _jsonable(
            {
                "title": self.title,
                "meta": self.meta,
                **{k: v for k, v in self.data.items() if k not in ("title", "meta", "sections")},
                "sections": {s.name: {"title": s.title, "kpis": s.kpis} for s in self.sections},
            }
        )

    def to_html(self) -> str:
        from . import __version__

        when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        meta = ", ".join(
            f"{k}: {_fmt(v)}"
            for k, v in self.meta.items()
            if not isinstance(v, (dict, list)) and k != "version"
        )
        nav = "".join(f'<a href="#{s.name}">{html.escape(s.title)}</a>' for s in self.sections)
        body = "\n".join(s._html() for s in self.sections)
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{html.escape(self.title)}</h1><p>growthmachine {__version__} · {when}"
            f"{' · ' + html.escape(meta) if meta else ''}</p><nav>{nav}</nav></header>"
            f"<main>{body}</main></body></html>"
        )

    def write(self, out: str | Path) -> Path:
        """Writes report.html, summary.json and tables/*.parquet under ``out``; returns ``out``."""
        out = Path(out)
        (out / "tables").mkdir(parents=True, exist_ok=True)
        for s in self.sections:
            for name, df in s.tables.items():
                df.to_parquet(out / "tables" / f"{s.name}_{name}.parquet", index=False)
        (out / "summary.json").write_text(json.dumps(self.summary(), indent=2, allow_nan=False))
        (out / "report.html").write_text(self.to_html(), encoding="utf-8")
        return out
