#!/usr/bin/env python3
"""A chart per results file: each gateway's CPU per unit of work by scenario, at a glance.

    python3 bench/chart.py bench/results/FILE.md [...]

writes FILE.png next to each file (run.py does it for the files it writes). Scenarios count
different units (requests, connections, MiB), so each bar is the gateway's CPU per unit over the
best peer's (the lower of HAProxy's and nginx's) in the same scenario, with the absolute figure
written on it: below the line at 1.0 is cheaper than the best peer. Scenario 5's CPU is per run
(opening the idle connections), so its bars are its result, KiB per connection, the same way.
Needs matplotlib (Debian's python3-matplotlib).
"""
import os
import re
import sys

GATEWAYS = ["onegate", "haproxy", "nginx"]
CAP = 2.5           # a bar above this many times the best peer is cut there, its ratio written on it
COLORS = {"onegate": "#2a7ab0", "haproxy": "#c8553d", "nginx": "#6a994e"}


def read_table(path):
    """{scenario id: {gateway: (cost, label)}} from run.py's Markdown table, in file order."""
    rows = {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 4 or cells[1] not in GATEWAYS:
                continue
            sid = cells[0].split()[0]
            if sid == "5":
                m = re.match(r"([\d.]+) (KiB/conn)", cells[2])
            else:
                m = re.match(r"([\d.]+) us/(\w+)", cells[3])
            if m:
                unit = m.group(2) if sid == "5" else "us/" + m.group(2)
                rows.setdefault(sid, {})[cells[1]] = (float(m.group(1)), f"{float(m.group(1)):.1f} {unit}")
    return rows


def write_chart(path):
    """Writes the PNG for results file path; returns its path, or None without any gateway row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {sid: r for sid, r in read_table(path).items() if any(g in r for g in ("haproxy", "nginx"))}
    if not rows:
        return None
    sids = list(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(sids) + 2), 4.8))
    width = 0.27
    for k, g in enumerate(GATEWAYS):
        xs, ys, labels = [], [], []
        for i, sid in enumerate(sids):
            best = min(rows[sid][p][0] for p in ("haproxy", "nginx") if p in rows[sid])
            if g in rows[sid] and best > 0:
                ratio = rows[sid][g][0] / best
                xs.append(i + (k - 1) * width)
                ys.append(min(ratio, CAP))
                labels.append(rows[sid][g][1] + (f" ({ratio:.0f}x)" if ratio > CAP else ""))
        bars = ax.bar(xs, ys, width, label=g, color=COLORS[g])
        for bar, label in zip(bars, labels):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), label, rotation=90, ha="center",
                    va="bottom", fontsize=6)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(sids)))
    ax.set_xticklabels(sids)
    ax.set_xlabel("scenario (bench/README.md)")
    ax.set_ylabel("gateway CPU per unit / best peer's")
    ax.set_ylim(0, CAP * 1.35)
    ax.set_title(os.path.basename(path) + ": gateway CPU per unit of work (lower is better)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    out = os.path.splitext(path)[0] + ".png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        out = write_chart(path)
        print(out or f"{path}: no gateway rows to chart")


if __name__ == "__main__":
    main()
