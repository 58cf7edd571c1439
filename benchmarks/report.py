"""Learning curves and tables from a grid of runs made by run.py.

    python benchmarks/report.py --name smoke

Reads every run's TensorBoard file under benchmarks/results/NAME/runs and writes, beside it:
curves.png (one panel per game: raw game score against frames, variants overlaid, mean and standard
error over seeds, the random agent dashed), report.md (final score per variant and game beside the
random agent and, where the paper reports one, the paper's number) and report.csv (the same table).
"""
import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import ROOT

TAG = "charts/episodic_return"
FINAL_FRACTION = 0.1  # the final score of a run is the mean of its last 10% of logged points


def read_runs(runs_dir: Path) -> dict:
    """{(script, env_id): {seed: (frames, returns)}} from run.py's layout runs/SCRIPT__ENV__sSEED/<tb dir>/."""
    runs = defaultdict(dict)
    for run_dir in sorted(p for p in runs_dir.glob("*__*__s*") if p.is_dir()):
        script, env, seed = run_dir.name.split("__")
        events = [p for p in run_dir.iterdir() if p.is_dir()]
        if not events:
            continue
        acc = EventAccumulator(str(events[0]), size_guidance={"scalars": 0})
        acc.Reload()
        if TAG not in acc.Tags()["scalars"]:
            continue
        points = acc.Scalars(TAG)
        runs[(script, env.replace("ALE-", "ALE/"))][int(seed[1:])] = (
            np.array([4 * p.step for p in points], dtype=np.float64), np.array([p.value for p in points]))
    return runs


def final_scores(seeds: dict) -> np.ndarray:
    return np.array([returns[-max(1, int(len(returns) * FINAL_FRACTION)):].mean() for _, returns in seeds.values()])


def mean_sem(values: np.ndarray) -> tuple[float, float]:
    sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(values.mean()), float(sem)


def curve(seeds: dict, num_points: int = 100):
    """Mean and standard error over seeds on a common frame grid (each seed interpolated onto it)."""
    end = min(frames[-1] for frames, _ in seeds.values())
    grid = np.linspace(min(frames[0] for frames, _ in seeds.values()), end, num_points)
    ys = np.stack([np.interp(grid, frames, returns) for frames, returns in seeds.values()])
    sem = ys.std(0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else np.zeros(num_points)
    return grid, ys.mean(0), sem


def read_csv(path: Path, key: str) -> dict:
    if not path.exists():
        return {}
    with open(path) as f:
        return {row[key]: row for row in csv.DictReader(f)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="smoke", help="results folder under --results-dir")
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--random-agent", default=str(ROOT / "benchmarks" / "random_agent.csv"))
    parser.add_argument("--paper", default=str(ROOT / "benchmarks" / "paper_results.csv"))
    args = parser.parse_args()
    out = Path(args.results_dir) / args.name
    runs = read_runs(out / "runs")
    if not runs:
        raise SystemExit(f"error: no finished episodes logged under {out / 'runs'}; run benchmarks/run.py first")
    random_agent = read_csv(Path(args.random_agent), "env_id")
    paper = read_csv(Path(args.paper), "env_id")
    games = sorted({env for _, env in runs})
    scripts = sorted({script for script, _ in runs})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(games))
    rows_n = -(-len(games) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.4 * rows_n), squeeze=False)
    for ax, env in zip(axes.flat, games):
        for script in scripts:
            if (script, env) in runs:
                x, mean, sem = curve(runs[(script, env)])
                (line,) = ax.plot(x / 1e6, mean, label=f"{script.removeprefix('curiosity_')} (n={len(runs[(script, env)])})")
                ax.fill_between(x / 1e6, mean - sem, mean + sem, color=line.get_color(), alpha=0.2)
        if env in random_agent:
            ax.axhline(float(random_agent[env]["mean_return"]), color="gray", linestyle="--", label="random agent")
        ax.set_title(env)
        ax.set_xlabel("frames (millions)")
        ax.set_ylabel("episodic return (game score)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(games):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)

    table = []
    for (script, env), seeds in sorted(runs.items()):
        mean, sem = mean_sem(final_scores(seeds))
        frames = min(f[-1] for f, _ in seeds.values())
        ref = paper.get(env, {}) if script == "curiosity_extrinsic_mix" else {}  # the paper's table is for the mix setting
        table.append(dict(script=script, env_id=env, seeds=len(seeds), frames=int(frames), final_return=round(mean, 2),
                          sem=round(sem, 2), random_agent=random_agent.get(env, {}).get("mean_return", ""),
                          paper=ref.get("mean_return", ""), paper_budget=ref.get("budget", "")))
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    lines = [f"# Benchmark results: {args.name}", "",
             f"Final return = mean raw game score of the last {FINAL_FRACTION:.0%} of logged iterations, "
             "mean +- standard error over seeds.", "",
             "| script | game | seeds | frames | final return | random agent | paper (budget) |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in table:
        paper_cell = f"{r['paper']} ({r['paper_budget']})" if r["paper"] else ""
        lines.append(f"| {r['script']} | {r['env_id']} | {r['seeds']} | {r['frames']:,} | "
                     f"{r['final_return']} +- {r['sem']} | {r['random_agent']} | {paper_cell} |")
    lines += ["", "![learning curves](curves.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines[4:-3]))
    print(f"wrote {out / 'curves.png'}, {out / 'report.md'}, {out / 'report.csv'}")


if __name__ == "__main__":
    main()
