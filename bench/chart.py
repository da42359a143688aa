"""Draws docs/benchmarks.png from the medians bench/run collected (run with bench/.venv)."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

ORDER = ["pagi", "floor", "tt", "hyper", "granian", "uvicorn"]
COLORS = {"pagi": "#d62728", "floor": "#ff9896", "tt": "#1f77b4", "hyper": "#17becf",
          "granian": "#2ca02c", "uvicorn": "#9467bd"}
TITLES = {"ws-64b": "WS echo 64 x 64 B, depth 1", "ws-64b-d8": "WS echo 64 x 64 B, depth 8",
          "ws-16k": "WS echo 16 x 16 KiB text", "http": "HTTP hello (wrk -c64)"}


def short(v, _pos=None):
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}"


def bars(ax, rows, labels, title, unit):
    names = [labels[c] for c, _ in rows]
    vals = [v for _, v in rows]
    b = ax.barh(range(len(rows)), vals, color=[COLORS.get(c, "grey") for c, _ in rows])
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(unit, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    top = max(vals) if vals else 1
    ax.xaxis.set_major_formatter(FuncFormatter(short))
    ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    for rect, v in zip(b, vals):
        txt = short(v)
        ax.text(rect.get_width() + top * 0.01, rect.get_y() + rect.get_height() / 2, txt,
                va="center", fontsize=7)
    ax.set_xlim(0, top * 1.2 if top else 1)


def main():
    data = json.load(open(sys.argv[1]))
    wl, labels = data["workloads"], data["labels"]
    tp = [w for w in ("ws-64b", "ws-64b-d8", "ws-16k", "http") if w in wl]
    idle = "idle" in wl
    cols = max(1, len(tp) + (1 if idle else 0))
    fig, axes = plt.subplots(2, cols, figsize=(4.2 * cols, 6.5), squeeze=False)
    for i, w in enumerate(tp):
        what = "req" if w == "http" else "msgs"
        for row, key, unit in ((0, "rate", f"{what}/s (median)"),
                               (1, "per_cpu", f"{what} per server-CPU-second")):
            rows = [(c, wl[w][c][key]) for c in ORDER if c in wl[w] and wl[w][c].get(key)]
            bars(axes[row][i], rows, labels, TITLES.get(w, w), unit)
    if idle:
        for row, key, unit, title in (
                (0, "rss_per_conn_kib", "server KiB per connection", "Idle: RSS per conn"),
                (1, "max_gap_p99_ms", "worst tick gap p99 (ms)", "Idle: tick gap p99")):
            rows = [(c, wl["idle"][c][key]) for c in ORDER
                    if c in wl["idle"] and wl["idle"][c].get(key) is not None]
            bars(axes[row][cols - 1], rows, labels, title, unit)
    fig.suptitle("pagi-rs benchmarks (server on 1 core; higher is better except idle)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
