"""The PNG chart of a periodic report: reports per member (beside the previous period for weeks
and months) and, over several days, reports per trading day. Labels are ASCII: the machines that
render it often have no CJK font. Uses matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io

from pipeline.store.periodic import PeriodicReport


def png(report: PeriodicReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    members = [line for line in report.lines if line.kind == "member"]
    panels = 2 if len(report.days) > 1 else 1
    figure, axes = plt.subplots(panels, 1, figsize=(9, 3.2 * panels + 0.6), squeeze=False)
    ax = axes[0][0]
    labels = [line.label for line in members]
    positions = list(range(len(labels)))
    width = 0.4 if report.with_change else 0.7
    ax.bar([p - width / 2 if report.with_change else p for p in positions],
           [line.current["reports"] for line in members], width, label="this period", color="#2f75b5")  # fmt: skip
    if report.with_change:
        before = [line.previous["reports"] if line.previous else 0 for line in members]
        ax.bar([p + width / 2 for p in positions], before, width, label="previous period", color="#a9c4e4")
        ax.legend()
    ax.set_xticks(positions, labels, rotation=30, ha="right")
    ax.set_ylabel("reports delivered")
    period = report.period
    span = f"{period.start:%Y-%m-%d}..{period.end:%Y-%m-%d}"
    ax.set_title(f"{report.exchange} {period.kind} report {span}: reports per member")
    if panels == 2:
        days = axes[1][0]
        days.plot([d for d, _ in report.days], [n for _, n in report.days], marker="o", color="#2f75b5")
        days.set_ylabel("reports")
        days.set_title("reports per trading day")
        figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=100)
    plt.close(figure)
    return out.getvalue()
