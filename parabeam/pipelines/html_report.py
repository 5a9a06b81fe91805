"""``OUTPUT/report.html``: what a run kept and what it cut, readable offline (one file, plots as inline SVG drawn
with matplotlib's SVG backend, no script, no network).

From report.json alone: per language pair, the histogram of candidate margins with the threshold marked, the
estimated precision of the candidates above each threshold (``mining.calibrate.precision_curve``) and what nearby
thresholds would have kept; the funnel from files to pairs with drops by reason; per-language counts; busy
time per stage; the settings.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence


def _inline_svg(fig) -> str:
    """A matplotlib figure as an inline ``<svg>`` element (no XML prolog, no dates: the same run, the same page)."""
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = out.getvalue()
    return svg[svg.index("<svg"):]


def _histogram_svg(pair: str, info: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    hist = info.get("histogram") or {}
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    fig = Figure(figsize=(6.4, 2.6), dpi=96)
    ax = fig.add_subplot()
    if counts:
        widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        threshold = info.get("used")
        colors = ["#2b7bba" if threshold is not None and a >= threshold else "#b0b7c0" for a in edges[:-1]]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color=colors, edgecolor="white", linewidth=0.3)
        if threshold is not None:
            ax.axvline(threshold, color="#d62728", linewidth=1.5)
            ax.annotate(f"threshold {threshold:.3f}", (threshold, max(counts)), xytext=(4, -10),
                        textcoords="offset points", color="#d62728", fontsize=8)
        if max(counts) > 200:  # many unrelated candidates beside a few hundred pairs: a log scale shows both
            ax.set_yscale("symlog", linthresh=10)
    else:
        ax.text(0.5, 0.5, "no candidates", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("margin score of the best candidate per sentence")
    ax.set_ylabel("candidates")
    ax.set_title(pair, fontsize=10)
    return _inline_svg(fig)


def _precision_svg(pair: str, info: dict) -> str:
    """The estimated precision of the candidates above each threshold (``mining.calibrate.precision_curve``), with
    the threshold used and, when asked for, the target precision."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    points = info.get("precision_curve") or []
    if not points:
        return ""
    fig = Figure(figsize=(6.4, 2.2), dpi=96)
    ax = fig.add_subplot()
    ax.plot([t for t, _ in points], [p for _, p in points], color="#2b7bba", linewidth=1.5)
    threshold = info.get("used")
    if threshold is not None:
        ax.axvline(threshold, color="#d62728", linewidth=1.2)
    if info.get("target_precision") is not None:
        ax.axhline(info["target_precision"], color="#888888", linewidth=1, linestyle="--")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("threshold")
    ax.set_ylabel("estimated precision")
    ax.set_title(f"{pair}: estimated precision of the candidates above a threshold", fontsize=9)
    return _inline_svg(fig)


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dropped(node: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted((node.get("dropped") or {}).items())) or "-"


def funnel_rows(report: dict) -> list[tuple]:
    """(stage, in, out, dropped by reason) from files to pairs: every count report.json holds for the stage."""
    files, docs, sentences = report.get("files", {}), report.get("documents", {}), report.get("sentences", {})
    langs = report.get("languages", {})
    identified = sum(v.get("identified", 0) for v in langs.values())
    kept = sum(v.get("kept", 0) for v in langs.values())
    lid_low = sum((v.get("dropped") or {}).get("lid_low_confidence", 0) for v in langs.values())
    duplicates = sum((v.get("dropped") or {}).get("duplicate", 0) for v in langs.values())
    split_dropped = {k: v for k, v in (sentences.get("dropped") or {}).items() if k != "other_language"}
    lid_dropped = {"other_language": (sentences.get("dropped") or {}).get("other_language", 0),
                   "lid_low_confidence": lid_low}
    selection = report.get("selection", {})
    candidates = sum(v.get("candidates", 0) for v in selection.values())
    cut: dict[str, int] = {}
    for v in selection.values():
        for reason, n in (v.get("dropped") or {}).items():
            cut[reason] = cut.get(reason, 0) + n
    fmt = lambda d: ", ".join(f"{k} {v:,}" for k, v in sorted(d.items()) if v) or "-"  # noqa: E731
    return [
        ("files", files.get("in", 0), files.get("read", 0), _dropped(files)),
        ("documents", docs.get("in", 0), docs.get("out", 0), _dropped(docs)),
        ("segments (split, length filters)", sentences.get("in", 0), sentences.get("out", 0), fmt(split_dropped)),
        ("language identification", sentences.get("out", 0), identified, fmt(lid_dropped)),
        ("deduplication", identified, kept, fmt({"duplicate": duplicates})),
        ("candidate pairs -> pairs", candidates, sum(report.get("pairs", {}).values()), fmt(cut)),
    ]


def _encoder_note(settings: dict) -> str:
    encoder = settings.get("encoder") or {}
    if not encoder.get("resolved"):
        return ""
    why = f" ({encoder['spec']}: {encoder['reason']})" if encoder.get("reason") else ""
    return html.escape(f" · encoder: {encoder['resolved']}{why}")


def render(report: dict, stages: Sequence[str]) -> str:
    """report.html from report.json's content; ``stages``: the stages' timing names in pipeline order."""
    settings = report.get("settings", {})
    parts = [f"<h1>parabeam run {html.escape(str(settings.get('run_id', '')))}</h1>",
             "<p>Languages: " + html.escape(", ".join(settings.get("languages", []))) + " &middot; inputs: "
             + html.escape(f"{len(settings.get('inputs', []))} file(s)") + _encoder_note(settings) + "</p>",
             "<h2>Pairs</h2>"]
    for pair in settings.get("pairs", []):
        info = (report.get("thresholds") or {}).get(pair, {})
        n = (report.get("pairs") or {}).get(pair, 0)
        nearby = ", ".join(f"{step}: {info[f'pairs_at_{step}']:,}" for step in ("-0.05", "-0.02", "+0.02", "+0.05")
                           if f"pairs_at_{step}" in info)
        used = info.get("used")
        estimate = info.get("estimated_precision")
        estimate = "" if estimate is None else f" estimated precision of the candidates above it: {estimate:.3f};"
        parts.append(
            f"<section class='pair'><h3>{html.escape(pair)}: {n:,} pairs</h3>"
            f"<p>threshold {used if used is None else round(used, 4)} ({html.escape(str(info.get('method', '-')))});"
            f"{estimate} {info.get('candidates', 0):,} candidates. First-pass pairs a threshold that much higher or "
            f"lower would keep: {html.escape(nearby or '-')}.</p>{_histogram_svg(pair, info)}"
            f"{_precision_svg(pair, info)}</section>")
    parts.append("<h2>Funnel</h2>" + _table(funnel_rows(report), ("stage", "in", "out", "dropped, by reason")))
    langs = report.get("languages", {})
    parts.append("<h2>Languages</h2>" + _table(
        [(code, v.get("identified", 0), v.get("identified_by_document", 0), v.get("kept", 0),
          v.get("embedded", 0), v.get("embeddings_reused", 0), _dropped(v)) for code, v in sorted(langs.items())],
        ("language", "identified", "of which by document", "kept", "embedded", "reused from cache", "dropped")))
    seconds = report.get("seconds", {})
    parts.append("<h2>Time per stage</h2><p>Busy time of each stage's own work, summed over workers.</p>" + _table(
        [(stage, f"{seconds[stage] / 1000:.1f} s") for stage in stages if stage in seconds],
        ("stage", "time")))
    if report.get("wall_seconds") is not None:
        parts.append(f"<p>Wall time of the run: {report['wall_seconds']:.1f} s.</p>")
    parts.append("<h2>Settings</h2><pre>" + html.escape(json.dumps(settings.get("config", {}), indent=2)) + "</pre>")
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:left;font-size:90%}section.pair svg{max-width:100%;height:auto}"
             "pre{background:#f6f6f6;padding:1em;font-size:80%;overflow:auto}")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>parabeam report</title>"
            f"<style>{style}</style></head><body>" + "".join(parts) + "</body></html>\n")
