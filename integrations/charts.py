"""Report charts drawn with matplotlib: SVG for the portal (shown as an image, with the same figures in a table beside
it) and PNG for the monthly summary PDF.

Each function takes plain values (labels and Decimal amounts) and returns the bytes of one chart; nothing is cached
and no pyplot state is used (a `Figure` per call), so charts of different practices never share anything. Amounts
become floats only to be drawn: the figures people read come from the tables, which keep the exact Decimals.

SVGs are made deterministic (no date, a fixed id salt) so the same figures give the same bytes, and keep their text
as text (`svg.fonttype = none`): smaller, and the labels can be found in the file."""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = ["aging_chart", "charges_payments_chart", "provider_chart"]

# The portal's colours (portal.css): brand blue, a darker ink, and a muted grey-blue; all readable on white.
BRAND = "#0b4f8a"
ACCENT = "#c26a00"
MUTED = "#7a8aa0"
INK = "#1a2230"
GRID = "#d3d9e2"
FORMATS = ("svg", "png")
_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "medbill",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
}


def _dollars(value: float, _pos=None) -> str:
    if abs(value) >= 1_000_000:
        return f"${value / 1_000_000:,.1f}M"
    if abs(value) >= 10_000:
        return f"${value / 1000:,.0f}k"
    if abs(value) < 10 and value != int(value):
        return f"${value:,.2f}"
    return f"${value:,.0f}"


def _floats(values: Sequence[Decimal]) -> list[float]:
    return [float(v) for v in values]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _style(ax, *, money_axis: str = "y", legend: bool = True) -> None:
    # No title inside the image: the page's heading (or the PDF's) names the chart, and the legend goes on top.
    if legend:
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, borderaxespad=0.2)
    (ax.yaxis if money_axis == "y" else ax.xaxis).set_major_formatter(FuncFormatter(_dollars))
    ax.grid(axis=money_axis, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _render(fig: Figure, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"chart format must be one of {FORMATS}, not {fmt!r}")
    out = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": "medbill"}
    fig.savefig(out, format=fmt, metadata=metadata, dpi=150 if fmt == "png" else 100)
    return out.getvalue()


def charges_payments_chart(
    labels: Sequence[str], charges: Sequence[Decimal], payments: Sequence[Decimal], *, fmt: str = "svg"
) -> bytes:
    """Charges beside payments, one pair of bars per month (oldest first)."""
    with matplotlib.rc_context(_RC):
        fig = _figure(7.2, 3.0)
        ax = fig.add_subplot()
        x = list(range(len(labels)))
        ax.bar([i - 0.2 for i in x], _floats(charges), width=0.4, color=BRAND, label="Charges")
        ax.bar([i + 0.2 for i in x], _floats(payments), width=0.4, color=ACCENT, label="Payments")
        ax.set_xticks(x, list(labels))
        _style(ax)
        return _render(fig, fmt)


def aging_chart(
    buckets: Sequence[str], insurance: Sequence[Decimal], patients: Sequence[Decimal], *, fmt: str = "svg"
) -> bytes:
    """What is owed by age (days since the date of service): insurance and patients stacked per bucket."""
    with matplotlib.rc_context(_RC):
        fig = _figure(5.6, 3.0)
        ax = fig.add_subplot()
        ins = _floats(insurance)
        ax.bar(list(buckets), ins, color=BRAND, label="Insurance")
        ax.bar(list(buckets), _floats(patients), bottom=ins, color=MUTED, label="Patients")
        ax.set_xlabel("Days since the date of service")
        _style(ax)
        return _render(fig, fmt)


def provider_chart(providers: Sequence[str], amounts: Sequence[Decimal], *, fmt: str = "svg") -> bytes:
    """Payments per rendering provider, largest at the top."""
    with matplotlib.rc_context(_RC):
        fig = _figure(5.6, max(1.6, 0.9 + 0.4 * len(providers)))
        ax = fig.add_subplot()
        order = sorted(range(len(providers)), key=lambda i: amounts[i])
        ax.barh([providers[i] for i in order], [float(amounts[i]) for i in order], color=BRAND)
        _style(ax, money_axis="x", legend=False)
        return _render(fig, fmt)
