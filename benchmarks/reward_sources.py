"""Where a trained agent's intrinsic reward comes from: its ratio to the rollout mean at game events.

    python benchmarks/reward_sources.py runs/RUN/checkpoint.pt
    python benchmarks/reward_sources.py runs/RUN/checkpoint.pt --num-envs 32 --rollouts 4
    python benchmarks/reward_sources.py runs/RUN/checkpoint.pt --bf16   # float32 and bfloat16, same weights

Plays the checkpoint's policy (sampled, as in training) for --rollouts rollouts of --num-steps steps
in --num-envs fresh envs, computes every transition's intrinsic reward with the checkpoint's phi and
forward model exactly as the script does after a rollout, and prints the mean reward of each kind of
transition divided by the mean over all transitions. A pure-curiosity agent is drawn to whatever
kind stands far above 1; an agent that learns to die shows it at episode ends or life losses.
Beside it, the same ratios for why a kind surprises the forward model: how far phi moves in the step,
|phi(o_{t+1}) - phi(o_t)|^2, and how far the forward model predicted it to move, |f(phi(o_t), a_t) -
phi(o_t)|^2 (means over the feature dims). A kind with a large phi move and a small predicted one is
one the forward model cannot foresee from the action: IDF's lost life on SpaceInvaders, 26x the mean.
First it prints the forward model's mean error beside the error of predicting no change, phi(o_{t+1})
= phi(o_t): a forward model that does not beat it predicts no better than "nothing moves".

Kinds (a transition may be of several): the episode's end (game over, or the cap: the next
observation is already the next episode's first), the first 3 steps of an episode (stacks still
holding copies of the first frame), a life lost (`info["lives"]` falls), the 8 steps after a life
lost (the game waits for the next serve), a game reward (a brick hit on Breakout), and the rest. In the
maze with its noisy TV (benchmarks.worlds:MazeTV-v0) also: a switch of the TV near it (a new random picture)
and the other steps near the TV.

With --bf16 it also computes every intrinsic reward under bfloat16 autocast, as `--bf16` training would, from
the same weights and frames, and prints how far the two agree (correlation, mean absolute difference relative
to the float32 mean, ratio of the means) and the table's ratios in both: does bfloat16 change what the agent
is rewarded for?
"""
import argparse

import numpy as np
import torch

from common import load_script


def steps_from_shares(share: np.ndarray, episode_step: np.ndarray, done: np.ndarray, count: np.ndarray):
    """This step's 0 or 1 in each env from its episode's running share of such steps (the maze's info gives
    tv_action_share and near_tv_share: steps so far of the kind / steps so far), and the count to carry
    into the next step (`count`: the count before this step; 0 again after an episode's end)."""
    counted = np.rint(share * (episode_step + 1))
    return counted - count, np.where(done, 0, counted)


def play(script, checkpoint: dict, num_envs: int, num_steps: int, rollouts: int, seed: int, bf16: bool = False):
    """Rollouts of the checkpoint's policy; per transition: intrinsic reward (with `bf16`, also under bfloat16
    autocast: r_int_bf16), game reward, episode end, lives before and after, the step's index within its
    episode, the action, and in the maze with its TV whether the step switched it and whether it was near
    it (tv_switch_action, near_tv). Arrays of shape (rollouts * T, N)."""
    args = script.Args(**{**checkpoint["args"], "resume": None, "eval_checkpoint": None})
    envs = script.make_envs(args.env_id, num_envs, args.max_episode_steps)
    num_actions = envs.single_action_space.n
    networks = {"obs_norm": script.ObservationNorm(np.zeros(envs.single_observation_space.shape), 1.0),
                "policy": script.Policy(num_actions), "phi": script.Features(args.feature_dim, num_actions),
                "forward_model": script.ForwardModel(args.feature_dim, num_actions)}
    for name, module in networks.items():
        module.load_state_dict(checkpoint["networks"][name])
        module.eval()
    obs_norm, policy, phi, forward_model = networks.values()
    generator = torch.Generator().manual_seed(seed)
    next_obs, info = envs.reset(seed=seed)
    no_lives = np.zeros(num_envs, np.int64)  # a world without lives (the maze): none is ever lost
    lives, episode_step = info.get("lives", no_lives).copy(), np.zeros(num_envs, np.int64)
    tv = {name: np.zeros(num_envs) for name in ("tv_action_share", "near_tv_share") if name in info}  # counts
    columns = {k: [] for k in ("r_int", "phi_move", "predicted_move", "reward", "done", "lives_before",
                               "lives_after", "episode_step", "action", *(["r_int_bf16"] if bf16 else []),
                               *(["tv_switch_action", "near_tv"] if tv else []))}
    for _ in range(rollouts):
        obs, actions = [next_obs], []
        for _ in range(num_steps):
            with torch.no_grad():
                logits = policy(obs_norm(torch.from_numpy(next_obs)))[0]
            action = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            next_obs, reward, terminated, truncated, info = envs.step(action.numpy())
            done = terminated | truncated
            columns["reward"].append(reward)
            columns["done"].append(done)
            columns["lives_before"].append(lives)
            # at an episode's end, info["lives"] is already the next episode's
            columns["lives_after"].append(np.where(done, lives, info.get("lives", no_lives)))
            columns["episode_step"].append(episode_step.copy())
            columns["action"].append(action.numpy())
            for name, column in zip(tv, ("tv_switch_action", "near_tv")):  # (at an episode's end, info is the
                share = np.where(done, info.get("final_info", {}).get(name, 0.0), info[name])  # next one's)
                step, tv[name] = steps_from_shares(share.astype(np.float64), episode_step, done, tv[name])
                columns[column].append(step.astype(bool))
            lives, episode_step = info.get("lives", no_lives).copy(), np.where(done, 0, episode_step + 1)
            obs.append(next_obs)
            actions.append(action)
        with torch.no_grad():  # as the scripts do after a rollout: features of all T+1 frames, then f's error
            actions = torch.stack(actions)
            features = phi.loss(obs_norm(torch.from_numpy(np.stack(obs))), actions)[0]
            columns["r_int"].extend(script.prediction_error(forward_model, features, actions).numpy())
            before, after = features[:-1].float(), features[1:].float()
            prediction = forward_model(features[:-1].flatten(0, 1), actions.flatten()).float()
            prediction = prediction.view(after.shape)
            for name, moved in (("phi_move", after), ("predicted_move", prediction)):
                columns[name].extend((moved - before).pow(2).flatten(2).mean(2).numpy())
            if bf16:  # the same frames and weights, the networks run as --bf16 runs them
                with torch.autocast("cpu", torch.bfloat16):
                    features = phi.loss(obs_norm(torch.from_numpy(np.stack(obs))), actions)[0]
                    columns["r_int_bf16"].extend(script.prediction_error(forward_model, features, actions).numpy())
    envs.close()
    return {k: np.array(v) for k, v in columns.items()}


def reward_sources(t: dict, wait: int = 8, column: str = "r_int") -> dict:
    """Mean of `column` (the intrinsic reward) over each kind of transition, divided by its mean over all,
    and how many transitions there are of the kind."""
    life_lost = (t["lives_after"] < t["lives_before"]) & ~t["done"]
    after_life_lost = np.zeros_like(life_lost)
    for lag in range(1, wait + 1):  # the steps the game waits before the next serve
        after_life_lost[lag:] |= life_lost[:-lag]
    kinds = {
        "episode end (next obs: a new episode)": t["done"],
        "first 3 steps of an episode": t["episode_step"] < 3,
        "life lost": life_lost,
        f"the {wait} steps after a life lost": after_life_lost & ~life_lost,
        "game reward (e.g. a brick hit)": t["reward"] > 0,
    }
    if "near_tv" in t:  # the maze with its noisy TV
        switched = t["tv_switch_action"] & t["near_tv"]
        kinds["a TV switch near it (a new picture)"] = switched
        kinds["the other steps near the TV"] = t["near_tv"] & ~switched
    kinds["the rest"] = ~np.logical_or.reduce(list(kinds.values()))
    mean = t[column].mean()
    return {name: (float(t[column][mask].mean() / mean) if mask.any() else float("nan"), int(mask.sum()))
            for name, mask in kinds.items()}


def precision_agreement(r32: np.ndarray, r16: np.ndarray) -> dict:
    """How far intrinsic rewards computed in bfloat16 agree with the same ones in float32."""
    return {"correlation": float(np.corrcoef(r32.ravel(), r16.ravel())[0, 1]),
            "mean |bf16 - float32| / mean float32": float(np.abs(r16 - r32).mean() / r32.mean()),
            "mean bf16 / mean float32": float(r16.mean() / r32.mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="also compute the rewards under bfloat16 autocast")
    args = parser.parse_args()
    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    script = load_script(checkpoint["script"][: -len(".py")])
    transitions = play(script, checkpoint, args.num_envs, args.num_steps, args.rollouts, args.seed, args.bf16)
    episodes = transitions["done"].sum()
    print(f"{checkpoint['script']} on {checkpoint['args']['env_id']} at step {checkpoint['global_step']:,}: "
          f"{transitions['r_int'].size:,} transitions, {episodes} episodes ended, "
          f"mean intrinsic reward {transitions['r_int'].mean():.4g}")
    # Persistence, phi(o_{t+1}) predicted as phi(o_t), is the forward model's first yardstick: a loss that
    # falls from its initial value can still be no better than it (pixels: a stack whose frames only shift).
    print(f"  the forward model's error against predicting no change, phi(o_t): "
          f"{transitions['r_int'].mean():.4g} against {transitions['phi_move'].mean():.4g}")
    moves = [reward_sources(transitions, column=c) for c in ("phi_move", "predicted_move")]
    header = f"{'kind of transition':40s} {'reward':>8s} {'phi move':>9s} {'predicted':>9s}"
    print(f"  {header}   (each: x its mean)")
    for name, (ratio, count) in reward_sources(transitions).items():
        print(f"  {name:40s} {ratio:8.2f} {moves[0][name][0]:9.2f} {moves[1][name][0]:9.2f}   "
              f"({count:,} transitions)")
    if args.bf16:
        agreement = precision_agreement(transitions["r_int"], transitions["r_int_bf16"])
        print("  bfloat16 at the same weights and frames: "
              + ", ".join(f"{name} {value:.4g}" for name, value in agreement.items()))
        for (name, (r32, _)), (r16, _) in zip(reward_sources(transitions).items(),
                                              reward_sources(transitions, column="r_int_bf16").values()):
            print(f"  {name:40s} {r32:8.2f} float32, {r16:8.2f} bfloat16")


if __name__ == "__main__":
    main()
