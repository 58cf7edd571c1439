"""Learning curves and tables from a grid of runs made by run.py, each run beside the paper at its budget.

    python benchmarks/report.py --name smoke
    python benchmarks/report.py --results-dir benchmarks --name cpu_results     # the committed CPU runs

Reads every run's TensorBoard file under benchmarks/results/NAME/runs and writes, beside it:
curves.png (one panel per game: raw game score against frames, variants overlaid, mean and standard
error over seeds, the random agent dashed, the paper's curve as markers in the variant's colour: its
points within the plotted frames, and a hollow marker at each run's budget), report.md and report.csv
(per variant and game: our final score, the random agent, the paper's score interpolated at our budget
and our ratio to it, the mix script's paper result after the paper's full budget; per game, whether the
variants' order matches the paper's at that budget, over the pairs whose paper values are further apart
than the fine reading's error: 3% of the game's panel, taken as its curves' highest point; for a run past
more than one of the paper's points, as RF on Breakout to 50M frames, its score at each). Two-player
Pong has no game score (its reward is removed): its runs are scored by ball returns per episode and
shown with their episode length, each beside the random policy's (random_agent.csv's mean_ball_returns
and mean_length). A seed shorter than its group's longest (under way, or cut short) is left out of all of
it, and named below the table.

The paper's curves (benchmarks/paper_curves.csv: for RF and IDF the spec's finer reading at 10M, 30M and 50M
frames, the by-eye one at 100M and 400M) start at 10M frames. Below that the paper's value is
interpolated linearly from the random agent's score at 0 frames, where every curve starts: a rough
yardstick, as rough as the read-off points themselves (+-10% of the axis range).
"""
import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import ROOT

# what is read of each run, by the names random_agent.csv gives them (mean_return, ...)
TAGS = {"return": "charts/episodic_return", "length": "charts/episodic_length", "ball_returns": "charts/ball_returns",
        **{name: f"charts/{name}" for name in ("goal_reached", "rooms_visited", "doorways_to_goal",
                                                "tv_action_share", "near_tv_share")},  # the maze's
        "episodes": "charts/episodes"}  # how many episodes each logged mean is over (weights; not in older runs)
# means over episodes, each episode counted once (rates; the rooms an episode enters, the closest it comes to
# the goal): plotted by rate_curve
PER_EPISODE = ("goal_reached", "rooms_visited", "doorways_to_goal", "tv_action_share", "near_tv_share")
FINAL_FRACTION = 0.1  # the final score of a run is the mean of its last 10% of logged points


def metrics_of(env_id: str) -> tuple:
    """What a game's panels show, its score first. Two-player Pong's reward is removed and its score always 0:
    the paper's claim there is that rallies get longer, so it is scored by ball returns, shown with length."""
    two_player_pong = ("Pong-Atari2600-v0", "benchmarks.worlds-TwoPlayerPong-v0")  # (the id before and after
    if env_id in two_player_pong:  # the worlds module)
        return "ball_returns", "length"
    if env_id.startswith("benchmarks.worlds-Maze"):  # the maze: success, exploration; with the TV, its pull
        tv = ("tv_action_share", "near_tv_share") if "TV" in env_id else ()
        return ("goal_reached", "rooms_visited", "doorways_to_goal", *tv)
    return ("return",)


def env_of(env_id: str) -> str:
    """An env id as the report's rows name it: as run.py's run keys spell it ("/" and ":" made "-"), with
    ALE's "ALE/" given back (benchmarks.worlds:Maze-v0 -> benchmarks.worlds-Maze-v0, ALE/Pong-v5 stays)."""
    return re.sub("[/:]", "-", env_id).replace("ALE-", "ALE/")


def read_runs(runs_dir: Path, scalar: str = TAGS["return"]) -> dict:
    """{(variant, env_id): {seed: (frames, values of `scalar`)}} from run.py's layout
    runs/SCRIPT__ENV__sSEED[__TAG]/<tb dir>/; the variant is the script, or SCRIPT__TAG for a tagged run (a
    precision such as bf16, or a batch such as 128envs)."""
    runs = defaultdict(dict)
    for run_dir in sorted(p for p in runs_dir.glob("*__*__s*") if p.is_dir()):
        script, env, seed, *tag = run_dir.name.split("__")
        events = [p for p in run_dir.iterdir() if p.is_dir()]
        if not events:
            continue
        acc = EventAccumulator(str(events[0]), size_guidance={"scalars": 0})
        acc.Reload()
        if scalar not in acc.Tags()["scalars"]:
            continue
        points = acc.Scalars(scalar)
        runs[("__".join([script, *tag]), env_of(env))][int(seed[1:])] = (
            np.array([4 * p.step for p in points], dtype=np.float64), np.array([p.value for p in points]))
    return runs


def weights(frames: np.ndarray, episodes) -> np.ndarray:
    """How many episodes each logged point of a run is the mean of (`episodes`: its (frames, counts) of
    charts/episodes, logged at the same points); 1 each for a run that predates that count."""
    if episodes is not None and np.array_equal(episodes[0], frames):
        return episodes[1]
    return np.ones(len(frames))


def final_scores(seeds: dict, episodes: dict = None) -> np.ndarray:
    """Each seed's mean over its last 10% of logged points, every episode ended there counted once (a point
    is the mean of the episodes that ended in its iteration: in the maze one early success can be a point
    of its own, beside 32 episodes cut at the time limit); `episodes` = {seed: (frames, counts)}."""
    finals = []
    for seed, (frames, values) in seeds.items():
        last = max(1, int(len(values) * FINAL_FRACTION))
        finals.append(np.average(values[-last:], weights=weights(frames, (episodes or {}).get(seed))[-last:]))
    return np.array(finals)


def longest_seeds(runs: dict) -> tuple[dict, list]:
    """Each group's seeds that reached its longest seed's frames, and the others as (variant, env, seed,
    frames): a seed under way or cut short is left out of the tables and the curves, which would else put a
    1.6M-frame score into the mean beside a 10M-frame one. Reached: within 1%, or within the seed's widest
    gap between logged points (the maze logs only where an episode ended: every 8 iterations or so)."""
    kept, shorter = {}, []
    for key, seeds in runs.items():
        end = max(frames[-1] for frames, _ in seeds.values())
        kept[key] = {seed: (frames, values) for seed, (frames, values) in seeds.items()
                     if frames[-1] + np.diff(frames, prepend=0.0).max() >= 0.99 * end}
        shorter += [(*key, seed, run[0][-1]) for seed, run in sorted(seeds.items()) if seed not in kept[key]]
    return kept, shorter


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


def game_of(env_id: str) -> str:
    """BreakoutNoFrameskip-v4 and ALE/Breakout-v5 are both the paper's Breakout."""
    match = re.fullmatch(r"(\w+)NoFrameskip-v4", env_id) or re.fullmatch(r"ALE/(\w+)-v5", env_id)
    return match.group(1) if match else env_id


def read_paper_curves(path: Path) -> dict:
    """{(game, script): (frames, scores)} from paper_curves.csv, sorted by frames; # lines are comments. Where
    a curve has points of the fine reading, they replace the eye reading's up to the last of them."""
    readings = defaultdict(lambda: defaultdict(list))
    if path.exists():
        with open(path) as f:
            for row in csv.DictReader(line for line in f if not line.startswith("#")):
                point = (float(row["frames"]), float(row["score"]))
                readings[(row["game"], row["script"])][row.get("reading") or "eye"].append(point)
    curves = {}
    for key, by_reading in readings.items():
        fine = by_reading.get("fine", [])
        last_fine = max((frames for frames, _ in fine), default=-1.0)
        points = sorted(fine + [p for p in by_reading.get("eye", []) if p[0] > last_fine])
        curves[key] = tuple(np.array(v) for v in zip(*points))
    return curves


def paper_at(curve, frames: float, random_score=None):
    """The paper's score at `frames`, interpolated linearly between its points; below its first point from
    the random agent's score at 0 frames (None without one); None past its last point."""
    xs, ys = curve
    if random_score is not None:
        xs, ys = np.concatenate([[0.0], xs]), np.concatenate([[random_score], ys])
    if frames < xs[0] or frames > xs[-1]:
        return None
    return float(np.interp(frames, xs, ys))


def method(variant: str) -> str:
    """The script of a variant: SCRIPT__TAG's paper curve is SCRIPT's."""
    return variant.split("__")[0]


def tag_of(variant: str) -> str:
    return variant.partition("__")[2]


def order_matches(ours: dict, paper: dict, tie: float = 0.0):
    """Whether our final scores rank the variants as the paper's scores at our budget do, over the pairs of
    variants whose paper scores differ by more than `tie` (the reading's error): True or False; "tied" when
    no pair does; None when fewer than two variants have a paper score."""
    common = [s for s in ours if paper.get(s) is not None]
    if len(common) < 2:
        return None
    apart = [(a, b) for a in common for b in common if paper[a] - paper[b] > tie]
    if not apart:
        return "tied"
    return all(ours[a] > ours[b] for a, b in apart)


def summarise(runs: dict, random_agent: dict, paper_curves: dict, paper_final: dict, lengths: dict = None,
              hours: dict = None, episodes: dict = None) -> tuple[list, dict]:
    """The table's rows, one per (variant, env), and per (env, budget, tag) whether the scripts' order matches
    the paper's at that budget (None where fewer than two have a paper curve). Only runs of one tag are
    compared: a tag is a setting (a precision, a batch) that the runs of a variant share. `lengths` are the
    runs' episode lengths and `episodes` their counts (charts/episodes, the weights of final_scores), laid out
    as `runs`; `hours` the wall time and machines of each (variant, env)."""
    table = []
    for (variant, env), seeds in sorted(runs.items()):
        counts = (episodes or {}).get((variant, env))
        mean, sem = mean_sem(final_scores(seeds, counts))
        length = (lengths or {}).get((variant, env))
        frames = min(f[-1] for f, _ in seeds.values())
        random = random_agent.get(env, {})
        score = metrics_of(env)[0]
        random_score = float(random[f"mean_{score}"]) if random.get(f"mean_{score}") else None
        curve = paper_curves.get((game_of(env), method(variant)))
        at_budget = paper_at(curve, frames, random_score) if curve else None
        final = paper_final.get(env, {}) if variant == "curiosity_extrinsic_mix" else {}  # the paper's sparse table
        normalised = (mean - random_score) / (at_budget - random_score) if at_budget not in (None, random_score) \
            else None  # 0 is the random agent, 1 the paper
        table.append(dict(
            script=method(variant), tag=tag_of(variant), env_id=env, seeds=len(seeds), frames=int(frames),
            score=score, final_return=round(mean, 2), sem=round(sem, 2),
            final_length=round(mean_sem(final_scores(length, counts))[0]) if length else "",
            random_agent="" if random_score is None else random_score,
            random_length=random.get("mean_length", ""),
            paper_at_budget="" if at_budget is None else round(at_budget, 2),
            normalised="" if normalised is None else round(normalised, 2),
            hours=(hours or {}).get((variant, env), ("", ""))[0],
            machine=(hours or {}).get((variant, env), ("", ""))[1],
            paper_final=final.get("mean_return", ""), paper_final_budget=final.get("budget", "")))
    order = {}  # scripts compared at one budget and one tag only
    for group in sorted({(r["env_id"], r["frames"], r["tag"]) for r in table}):
        rows = [r for r in table if (r["env_id"], r["frames"], r["tag"]) == group]
        panel = [max(scores) for (game, _), (_, scores) in paper_curves.items() if game == game_of(group[0])]
        order[group] = order_matches({r["script"]: r["final_return"] for r in rows},
                                     {r["script"]: r["paper_at_budget"] or None for r in rows},
                                     tie=0.03 * max(panel, default=0.0))
    return table, order


def score_at(frames: np.ndarray, values: np.ndarray, counts: np.ndarray, point: float):
    """A run's score at `point` frames as its final score would read had it stopped there: the mean of its
    logged points over the last 10% of the frames up to it, every episode counted once; None if none."""
    inside = (frames > (1 - FINAL_FRACTION) * point) & (frames <= point)
    return float(np.average(values[inside], weights=counts[inside])) if inside.any() else None


def paper_points(runs: dict, random_agent: dict, paper_curves: dict, episodes: dict = None) -> list[str]:
    """A table for the runs that went past more than one point of the paper's curve (RF on Breakout to 50M
    frames: 10M, 30M and 50M): each seed scored at each point as if it had stopped there (score_at), the mean
    and standard error over seeds beside the paper's value. A point counts as reached within 1% of it (a
    10M-frame run stops at 9.96M, the last whole iteration). Runs that reached one point have it in the
    main table already."""
    rows = []
    for (variant, env), seeds in sorted(runs.items()):
        curve = paper_curves.get((game_of(env), method(variant)))
        end = min(frames[-1] for frames, _ in seeds.values())
        points = [] if curve is None else [p for p in curve[0] if p <= end / 0.99]
        counts = (episodes or {}).get((variant, env)) or {}
        random_score = random_agent.get(env, {}).get(f"mean_{metrics_of(env)[0]}")
        for point in points if len(points) > 1 else []:
            scores = [score_at(f, v, weights(f, counts.get(seed)), point) for seed, (f, v) in seeds.items()]
            if None in scores:
                continue
            mean, sem = mean_sem(np.array(scores))
            paper = paper_at(curve, point)
            normalised = "" if not random_score else \
                f"{(mean - float(random_score)) / (paper - float(random_score)):.2f}"
            rows.append(f"| {method(variant)} | {tag_of(variant)} | {env} | {len(seeds)} | {point:,.0f} | "
                        f"{mean:.2f} +- {sem:.2f} | {paper:g} | {normalised} |")
    if not rows:
        return []
    return ["", "At the paper's points, for the runs that went past more than one: the score over the last "
            "10% of the frames up to each point (as the final score of a run stopped there), mean +- "
            "standard error over seeds, beside the paper's curve at that point and normalised as above.", "",
            "| script | tag | game | seeds | frames | score | paper | normalised |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |", *rows]


def wall_hours(status_dir: Path, runs: dict = None) -> dict:
    """{(variant, env_id): (hours, machines)} from run.py's status files: each run's wall time, over all its
    segments, summed over seeds (those in `runs`, where given), and what it ran on (the older status files,
    before run.py wrote it: "")."""
    hours = {}
    for path in status_dir.glob("*.json"):
        status = json.loads(path.read_text())
        variant = "__".join([status["script"], *([status["tag"]] if status.get("tag") else [])])
        key = (variant, env_of(status["env_id"]))
        if runs is not None and status["seed"] not in runs.get(key, {}):
            continue
        total, machines = hours.get(key, (0.0, ""))
        names = [*filter(None, machines.split(" + ")), *status.get("machines", {})]
        machines = " + ".join(dict.fromkeys(names))  # each once, in the order met
        hours[key] = (round(total + status["seconds"] / 3600, 2), machines)
    return hours


def plot(by_metric: dict, random_agent: dict, paper_curves: dict):
    """One panel per game and metric it shows (metrics_of; by_metric = {metric: runs}); the paper's curve as
    markers in each variant's colour, over the frames we ran; the random agent's value dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"return": "episodic return (game score)", "length": "episode length (agent steps)",
              "ball_returns": "ball returns per episode", "goal_reached": "success (goal reached)",
              "rooms_visited": "rooms entered per episode (of 9)",
              "doorways_to_goal": "closest to the goal (doorways)",
              "tv_action_share": "share of steps switching the TV", "near_tv_share": "share of steps near the TV"}
    panels = [(env, metric) for env in sorted({env for runs in by_metric.values() for _, env in runs})
              for metric in metrics_of(env) if any(e == env for _, e in by_metric.get(metric, {}))]
    variants = sorted({variant for runs in by_metric.values() for variant, _ in runs})
    colour = {variant: f"C{i % 10}" for i, variant in enumerate(variants)}  # a variant's in every panel
    cols = min(4, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.4 * rows_n), squeeze=False)
    for ax, (env, metric) in zip(axes.flat, panels):
        runs = {key: seeds for key, seeds in by_metric[metric].items() if key[1] == env}
        random = random_agent.get(env, {}).get(f"mean_{metric}")
        random_score = float(random) if random else None
        end = max(f[-1] for seeds in runs.values() for f, _ in seeds.values())
        for script, _ in sorted(runs):
            name = script.removeprefix("curiosity_")
            if metric in PER_EPISODE:  # over a tenth of the run, every episode once
                x, mean = rate_curve(runs[(script, env)], by_metric.get("episodes", {}).get((script, env)))
                sem = np.zeros_like(mean)
            else:
                x, mean, sem = curve(runs[(script, env)])
            label = f"{name} (n={len(runs[(script, env)])})"
            (line,) = ax.plot(x / 1e6, mean, color=colour[script], label=label)
            ax.fill_between(x / 1e6, mean - sem, mean + sem, color=line.get_color(), alpha=0.2)
            if metric != "return" or (game_of(env), method(script)) not in paper_curves:
                continue
            frames, scores = paper_curves[(game_of(env), method(script))]
            shown = frames <= 1.05 * end  # the paper's points within the frames we ran: a CPU run shows none
            if shown.any():
                label = f"paper: {name.split('__')[0]}"  # the paper's method, without our run's tag
                shown_before = any(h.get_label() == label for h in ax.get_lines())
                ax.plot(frames[shown] / 1e6, scores[shown], "o", color=line.get_color(),
                        label="_" + label if shown_before else label)
            at_budget = paper_at((frames, scores), x[-1], random_score)
            if at_budget is not None:
                first = not any(h.get_label() == "paper at our budget" for h in ax.get_lines())
                ax.plot([x[-1] / 1e6], [at_budget], "o", markerfacecolor="none", markersize=9, color=line.get_color(),
                        label="paper at our budget" if first else "_paper at our budget")
        if random_score is not None:
            ax.axhline(random_score, color="gray", linestyle="--", label="random agent")
        ax.set_xlim(0, 1.08 * end / 1e6)
        ax.set_title(env)
        ax.set_xlabel("frames (millions)")
        ax.set_ylabel(labels[metric])
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def rate_curve(seeds: dict, episodes: dict = None, window: int = 10):
    """A mean over episodes (the maze's success, rooms, TV shares) as it went: each seed's trailing mean over
    `window` of curve()'s 100 points, every episode counted once (final_scores), then the mean over seeds.
    Per iteration it would jump to 1 whenever one early success was the only episode to end."""
    counts = {seed: (frames, weights(frames, (episodes or {}).get(seed))) for seed, (frames, _) in seeds.items()}
    x, _, _ = curve(seeds)  # (100 points)
    box = np.ones(window)
    smooth = np.mean([np.convolve(np.interp(x, frames, values * counts[seed][1]), box, mode="valid")
                      / np.convolve(np.interp(x, *counts[seed]), box, mode="valid")
                      for seed, (frames, values) in seeds.items()], 0)
    return x[window - 1:], smooth


def first_frames_at(seeds: dict, level: float, episodes: dict = None):
    """Frames at which rate_curve first reaches `level`; None if it never does."""
    x, rate = rate_curve(seeds, episodes)
    reached = np.flatnonzero(rate >= level)
    return None if not len(reached) else float(x[reached[0]])


def maze_table(by_metric: dict, random_agent: dict) -> list[str]:
    """The maze's own table (its runs log charts/goal_reached): success over the last 10% of iterations, frames
    to first reach 50% success (smoothed over a tenth of the run), rooms entered per episode, the closest an
    episode comes to the goal, and with the TV the shares of steps that switched it and that were spent near
    it; under each world's runs, its random agent's (random_agent.csv). A run that predates a counter has its
    cell blank."""
    rows = []
    worlds = sorted({env for _, env in by_metric.get("goal_reached", {})})
    for (variant, env), seeds in sorted(by_metric.get("goal_reached", {}).items()):
        episodes = by_metric.get("episodes", {}).get((variant, env))
        success, sem = mean_sem(final_scores(seeds, episodes))
        first = first_frames_at(seeds, 0.5, episodes)
        means = [by_metric[m].get((variant, env)) for m in PER_EPISODE[1:]]  # rooms, closest, TV
        means = [f"{mean_sem(final_scores(s, episodes))[0]:.{2 if i < 2 else 3}f}" if s else ""
                 for i, s in enumerate(means)]
        rows.append(f"| {method(variant)} | {tag_of(variant)} | {env} | {len(seeds)} | {success:.3f} +- {sem:.3f} | "
                    f"{'never' if first is None else f'{first:,.0f}'} | {' | '.join(means)} |")
    for env in worlds:
        if row := random_agent.get(env):
            means = [f"{float(row[k]):.{2 if i < 2 else 3}f}" if row.get(k) else "" for i, k in
                     enumerate(f"mean_{m}" for m in PER_EPISODE[1:])]
            rows.append(f"| random agent |  | {env} | {row['episodes']} episodes | "
                        f"{float(row['mean_goal_reached']):.3f} | never | {' | '.join(means)} |")
    if not rows:
        return []
    return ["", "The maze: success = share of episodes that reached the goal, over the last 10% of iterations; "
            "50% success = the frames at which the success rate, averaged over a tenth of the run, first "
            "reaches 0.5; rooms = rooms entered per episode (of 9, the start's included), closest = the "
            "fewest doorways between the goal and a room the episode entered (0: the goal's room; the starts "
            "are 3 to 6 away), and the TV's shares, over the last 10% too; each counts every episode once, "
            "and so do their curves (over a tenth of the run). "
            "The random agent's rows: its episodes. Blank: a run that predates the counter.", "",
            "| script | tag | world | seeds | success | frames to 50% success | rooms | closest (doorways) "
            "| TV action share | time near the TV |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="smoke", help="results folder under --results-dir")
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--random-agent", default=str(ROOT / "benchmarks" / "random_agent.csv"))
    parser.add_argument("--paper", default=str(ROOT / "benchmarks" / "paper_results.csv"),
                        help="the paper's sparse-reward results (the mix script), after its full budget")
    parser.add_argument("--paper-curves", default=str(ROOT / "benchmarks" / "paper_curves.csv"),
                        help="the paper's pure-curiosity learning curves, as numbers")
    args = parser.parse_args()
    out = Path(args.results_dir) / args.name
    by_metric = {metric: read_runs(out / "runs", tag) for metric, tag in TAGS.items()}
    runs = {}  # each run by its game's score (metrics_of): two-player Pong's by its ball returns
    for metric, tagged in by_metric.items():
        runs.update({key: seeds for key, seeds in tagged.items() if metrics_of(key[1])[0] == metric})
    if not runs:
        raise SystemExit(f"error: no finished episodes logged under {out / 'runs'}; run benchmarks/run.py first")
    runs, shorter = longest_seeds(runs)  # every metric of a group over the same seeds: those of its score
    by_metric = {metric: {key: {seed: run for seed, run in seeds.items() if seed in runs[key]}
                          for key, seeds in tagged.items() if key in runs}
                 for metric, tagged in by_metric.items()}
    random_agent = {env_of(env): row for env, row in read_csv(Path(args.random_agent), "env_id").items()}
    paper_curves = read_paper_curves(Path(args.paper_curves))
    plot(by_metric, random_agent, paper_curves).savefig(out / "curves.png", dpi=110)

    table, order = summarise(runs, random_agent, paper_curves, read_csv(Path(args.paper), "env_id"),
                             by_metric["length"], wall_hours(out / "status", runs), by_metric["episodes"])
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    lines = [f"# Benchmark results: {args.name}", "",
             f"Final score = mean raw game score of the last {FINAL_FRACTION:.0%} of logged iterations, "
             "mean +- standard error over seeds (two-player Pong, whose reward is removed: ball returns per "
             "episode). Paper at our budget = the paper's curve (Figure 2, pure "
             "curiosity; benchmarks/paper_curves.csv) interpolated at our frames, from the random agent's "
             "score at 0 frames below its first point (10M frames): a rough yardstick. Normalised = (ours - "
             "random) / (paper - random): 0 is the random agent, 1 the paper. Length = mean episode length over "
             "the same iterations. Tag = a setting the run differs in (a precision, a batch). Hours = wall time "
             "and machine = what it ran on (run.py's status files; no machine where one predates it).", "",
             "| script | tag | game | seeds | frames | final score | length | random agent (length) "
             "| paper at our budget | normalised | hours | machine | paper, full budget |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in table:
        final = f"{r['paper_final']} ({r['paper_final_budget']})" if r["paper_final"] else ""
        random = f"{r['random_agent']} ({float(r['random_length']):.0f})" if r["random_length"] else r["random_agent"]
        unit = "" if r["score"] == "return" else f" {r['score'].replace('_', ' ')}"
        lines.append(f"| {r['script']} | {r['tag']} | {r['env_id']} | {r['seeds']} | {r['frames']:,} | "
                     f"{r['final_return']} +- {r['sem']}{unit} | {r['final_length']} | {random} | "
                     f"{r['paper_at_budget']} | {r['normalised']} | {r['hours']} | {r['machine']} | "
                     f"{final} |")
    verdicts = {True: "matches the paper's", False: "differs from the paper's",
                "tied": "the paper's variants are within its reading's error of each other: no order"}
    ordered = [f"- {env} at {frames:,} frames{f' ({tag})' if tag else ''}: {verdicts[same]}"
               for (env, frames, tag), same in order.items() if same is not None]
    if ordered:
        lines += ["", "Order of the variants by final score, against the paper's order at our budget:",
                  *ordered]
    if shorter:
        left_out = "; ".join(f"{variant} on {env}, seed {seed} at {frames:,.0f} frames"
                             for variant, env, seed, frames in shorter)
        lines += ["", "Left out of the tables and curves, shorter than their group's longest seed (under "
                  f"way, or cut short): {left_out}."]
    lines += paper_points(runs, random_agent, paper_curves, by_metric["episodes"])
    lines += maze_table(by_metric, random_agent)
    lines += ["", "![learning curves](curves.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines[4:-3]))
    print(f"wrote {out / 'curves.png'}, {out / 'report.md'}, {out / 'report.csv'}")


if __name__ == "__main__":
    main()
