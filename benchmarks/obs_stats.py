"""Observation statistics of the scripts' warm-up beside the reference's estimate, per game.

    python benchmarks/obs_stats.py                                  # Breakout, Seaquest, Montezuma's Revenge
    python benchmarks/obs_stats.py --games Pong --reference-seeds 3 --seeds 2
    python benchmarks/obs_stats.py --games Breakout --reference-seeds 3 --seeds 0 \
        --save-reference tests/data/breakout_reference_obs_stats.npz     # the tests' yardstick

The reference estimates the per-pixel mean and the scalar std from 10,000 random-agent steps of one
env, so across many whole episodes. One such estimate is noisy (its std moves by about 10% from seed
to seed on Breakout), so the yardstick here is the mean of that estimate over --reference-seeds seeds.
Each of the scripts' own estimates (--obs-norm-envs envs sharing --obs-norm-steps steps, as the
scripts' warm-up runs) is printed beside it, with the ratio of the stds, the largest gap of the
per-pixel means and the seconds it took. `--obs-norm-envs 8 128` shows why the warm-up does not use
the training envs: 79 steps per env are all episode starts.
"""
import argparse
import time

import numpy as np

from common import load_script


def estimate(rf, env_id: str, num_envs: int, num_steps: int, seed: int):
    """The scripts' warm-up: per-pixel mean and scalar std of random-agent frames; and its seconds."""
    start = time.perf_counter()
    args = rf.Args(env_id=env_id, obs_norm_envs=num_envs, obs_norm_steps=num_steps)
    mean, std = rf.random_agent_obs_stats(args, seed, np.random.default_rng(seed))
    return mean, float(std), time.perf_counter() - start


def reference_like(rf, env_id: str, seeds: list[int], num_steps: int = 10_000):
    """The reference's estimate (one env, `num_steps` steps) averaged over seeds: mean, std, and the stds."""
    runs = [estimate(rf, env_id, 1, num_steps, seed) for seed in seeds]
    stds = [s for _, s, _ in runs]
    return np.mean([m for m, _, _ in runs], 0), float(np.mean(stds)), stds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", nargs="+", default=["Breakout", "Seaquest", "MontezumaRevenge"])
    parser.add_argument("--reference-seeds", type=int, default=5, help="seeds of the one-env estimate")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the scripts' estimate")
    parser.add_argument("--obs-norm-envs", type=int, nargs="+", default=[8],
                        help="env counts of the scripts' estimate to compare (the scripts' default is 8)")
    parser.add_argument("--obs-norm-steps", type=int, default=10_000)
    parser.add_argument("--save-reference", metavar="FILE",
                        help="write the game's reference-like estimate (pixel means, std) to FILE (.npz)")
    args = parser.parse_args()
    if args.save_reference and len(args.games) != 1:
        parser.error("--save-reference writes one game's estimate: name one game in --games")
    rf = load_script("curiosity_rf")
    for game in args.games:
        env_id = f"{game}NoFrameskip-v4"
        ref_mean, ref_std, ref_stds = reference_like(rf, env_id, list(range(1, args.reference_seeds + 1)))
        print(f"{env_id}: reference-like std {ref_std:.3f} (one env x 10,000 steps, mean of "
              f"{len(ref_stds)} seeds: {', '.join(f'{s:.3f}' for s in ref_stds)})", flush=True)
        if args.save_reference:
            np.savez_compressed(args.save_reference, mean=ref_mean.astype(np.float32), std=ref_std,
                                stds=np.array(ref_stds))
        for num_envs in args.obs_norm_envs:
            for seed in range(1, args.seeds + 1):
                mean, std, seconds = estimate(rf, env_id, num_envs, args.obs_norm_steps, seed)
                gap = np.abs(mean - ref_mean).max()
                print(f"  {num_envs} envs x {args.obs_norm_steps // num_envs} steps, seed {seed}: "
                      f"std {std:.3f} (ratio {std / ref_std:.3f}), largest per-pixel mean gap {gap:.1f} "
                      f"grey levels, {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
