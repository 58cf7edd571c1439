"""The floor every learning curve is compared to: a uniform random agent's raw score per game.

    python benchmarks/random_agent.py                       # the paper's games, 30 episodes each
    python benchmarks/random_agent.py --env-ids PongNoFrameskip-v4 --episodes 10

Uses the scripts' own env (same preprocessing, 4500-step cap, sticky-action rule; any gymnasium world
through the same door, e.g. benchmarks.worlds:Maze-v0) and their own episode statistics (raw, unclipped
game score; a world's counters too, such as two-player Pong's ball returns or the maze's goal_reached, as
mean_COUNTER). Adds its rows to the CSV that `report.py` reads, replacing those of the
same games and keeping the others.
"""
import argparse
import csv
import os

import numpy as np

from common import ROOT, load_script

PAPER_GAMES = ["Breakout", "BeamRider", "MontezumaRevenge", "Pong", "Qbert", "Riverraid", "Seaquest",
               "SpaceInvaders", "Freeway", "Gravitar", "PrivateEye", "Venture"]


def random_agent(env_id: str, episodes: int, num_envs: int, seed: int, max_episode_steps: int = 4500):
    """Returns, lengths and counters ({name: values}, a world's) of a uniform random agent's episodes:
    the first ceil(episodes / num_envs) of every env, so that short episodes are not over-counted by
    stopping at the first ones to end."""
    rf = load_script("curiosity_rf")
    envs = rf.make_envs(env_id, num_envs, max_episode_steps)
    envs.reset(seed=seed)
    stats, rng = rf.EpisodeStats(num_envs), np.random.default_rng(seed)
    per_env = -(-episodes // num_envs)
    returns, lengths = [[] for _ in range(num_envs)], [[] for _ in range(num_envs)]
    counters = {}  # every number in the info of an episode's last step, as the scripts log them
    while min(map(len, returns)) < per_env:
        _, reward, terminated, truncated, info = envs.step(rng.integers(envs.single_action_space.n, size=num_envs))
        done = np.flatnonzero(terminated | truncated)
        for env, ret, length in zip(done, *stats.update(reward, terminated, truncated)):
            returns[env].append(ret)
            lengths[env].append(length)
            final = info.get("final_info", {})
            for name, values in final.items():  # (numpy's bools arrive in object arrays)
                value = np.asarray(values[env] if np.ndim(values) == 1 else None)
                if not name.startswith("_") and final[f"_{name}"][env] and value.dtype.kind in "biuf":
                    counters.setdefault(name, [[] for _ in range(num_envs)])[env].append(value.item())
    envs.close()
    first = lambda per_env_values: np.concatenate([v[:per_env] for v in per_env_values])  # noqa: E731
    return first(returns), first(lengths), {name: first(v) for name, v in counters.items() if any(v)}


def csv_row(env_id: str, returns: np.ndarray, lengths: np.ndarray, counters: dict) -> dict:
    """One world's row of the CSV. Means keep 4 decimals: a rare event must stay readable (the goal in 1 of
    128 episodes is 0.0078, which 2 decimals would write as 0.01, 1 in 100)."""
    return {"env_id": env_id, "episodes": len(returns), "mean_return": round(float(returns.mean()), 4),
            "std_return": round(float(returns.std()), 4), "mean_length": round(float(lengths.mean()), 1),
            **{f"mean_{name}": round(float(v.mean()), 4) for name, v in counters.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-ids", nargs="+", default=[f"{g}NoFrameskip-v4" for g in PAPER_GAMES])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "random_agent.csv"))
    args = parser.parse_args()
    rows = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            rows = {row["env_id"]: row for row in csv.DictReader(f)}
    for env_id in args.env_ids:
        returns, lengths, counters = random_agent(env_id, args.episodes, args.num_envs, args.seed)
        rows[env_id] = csv_row(env_id, returns, lengths, counters)
        more = "".join(f", {name} {values.mean():.2f} +- {values.std():.2f}" for name, values in counters.items())
        print(f"{env_id}: return {returns.mean():.1f} +- {returns.std():.1f}, length {lengths.mean():.0f} "
              f"({len(returns)} episodes){more}", flush=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows.values() for k in row)))
        writer.writeheader()
        writer.writerows(rows.values())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
