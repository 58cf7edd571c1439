# Curiosity-driven PPO with random features: Burda et al. 2018, "Large-Scale Study of
# Curiosity-Driven Learning" (arXiv:1808.04355). One file, CleanRL style; see README.md.
#
# Reading order: Args; the env; normalisation; the networks; the algorithm's pure functions (intrinsic
# reward, advantages); then a marked plumbing section (validation, torchrun, checkpoints, evaluation, logging)
# that a first reading can skip; then main(), whose loop is rollout, intrinsic reward, advantages, update,
# log and save.
import signal
import sys

# From the first line on, Ctrl-C, kill and a closed terminal end the script quietly, exiting with 128 + the
# signal's number, until there is training to save: then setup() makes them stop it at its next stop point
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_quietly(signum, frame):
    sys.exit(128 + signum)


def catch_stop_signals(handler) -> None:
    for signum in STOP_SIGNALS:  # SIGHUP stays ignored under nohup, which ignores it
        if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, handler)


if __name__ == "__main__":
    catch_stop_signals(exit_quietly)  # before any other import: torch's takes seconds

import atexit
import contextlib
import copy
import ctypes
import dataclasses
import fcntl
import gc
import importlib.util
import io
import math
import os
import random
import re
import shlex
import shutil
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Optional

import ale_py
import gymnasium as gym
import numpy as np
import PIL.Image
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.distributions import Categorical
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    # Experiment
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run directory's name)"""
    seed: int = 1
    """seed of python, numpy, torch and the environments (0 to 2^31 - 1)"""
    torch_deterministic: bool = True
    """set `torch.backends.cudnn.deterministic`"""
    cuda: bool = True
    """train on CUDA when it is available"""
    bf16: bool = False
    """run the networks under bfloat16 autocast: about 2x faster on a GPU or a CPU with bfloat16 units
    (AVX-512 BF16 or AMX), about 10x slower on one without; changes numerics (losses, rewards and
    statistics stay float32)"""
    profile: bool = False
    """print the seconds of each phase (env, inference, rewards, update) every iteration, waiting for the
    GPU at each phase end so the times are honest"""
    log_dir: str = "runs"
    """folder that receives one TensorBoard sub-folder per run"""

    # Env
    env_id: str = "BreakoutNoFrameskip-v4"
    """`XxxNoFrameskip-v4` (no sticky actions, the paper's setting) or `ALE/Xxx-v5` (sticky actions 0.25); or
    any gymnasium world with image observations and discrete actions, `module:Id` to import its module first
    (the paper's other worlds: `benchmarks.worlds:TwoPlayerPong-v0`, `...:Mario-v0`, `...:Maze-v0`, README)"""
    num_envs: int = 128
    """parallel environments N"""
    max_episode_steps: int = 4500
    """episode cap in agent steps (18,000 frames) on Atari; any other world keeps its own"""
    obs_norm_steps: int = 10_000
    """random-agent steps, summed over envs, that estimate the observation mean and std"""
    obs_norm_envs: int = 8
    """envs that share those steps: few, so that each plays whole episodes, as the reference's one env does
    (all 128 would see only the first 79 steps of an episode)"""

    # PPO
    total_timesteps: int = 100_000_000
    """training budget in agent steps summed over envs (frames = 4 x steps)"""
    learning_rate: float = 1e-4
    """Adam learning rate (constant)"""
    num_steps: int = 128
    """rollout length T per env"""
    gamma: float = 0.99
    """discount; also the decay of the reward forward filter"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 8
    """minibatches per epoch; each holds num_envs / num_minibatches whole env trajectories"""
    update_epochs: int = 3
    """passes over each rollout"""
    clip_coef: float = 0.1
    """PPO surrogate clipping"""
    ent_coef: float = 0.001
    """coefficient of the mean policy entropy"""
    vf_coef: float = 1.0
    """coefficient of the value loss 0.5 * mean((V - R)^2)"""
    max_grad_norm: float = 0.0
    """clip the global gradient norm to this value; 0 leaves gradients unclipped, as the paper does"""

    # Curiosity
    int_coef: float = 1.0
    """weight of the intrinsic (curiosity) reward"""
    ext_coef: float = 0.0
    """weight of the clipped game reward (0: pure curiosity, the agent never sees the score)"""
    use_dones: bool = False
    """cut GAE at episode ends; off in pure curiosity, where death is not the end"""
    feature_dim: int = 512
    """size of the feature space phi"""

    # Long runs and evaluation
    save_every: int = 50
    """write run_dir/checkpoint.pt every this many iterations (0: only at the end, on Ctrl-C or SIGTERM, on
    a NaN and on a crash); each write replaces the previous checkpoint only once it is complete"""
    resume: Optional[str] = None
    """continue the run of this checkpoint exactly, in its run directory; other flags given now override
    the checkpoint's settings, except those that fix the env and the network sizes"""
    eval_checkpoint: Optional[str] = None
    """play --eval-episodes episodes with this checkpoint's policy, print the game score, and exit"""
    eval_episodes: int = 10
    """episodes played by --eval-checkpoint"""
    eval_greedy: bool = False
    """with --eval-checkpoint, play the most likely action instead of sampling the policy"""
    capture_video: bool = False
    """record an episode of the current policy as an mp4 at every checkpoint and at --eval-checkpoint
    (needs PyAV: pip install av)"""


# ---------------------------------------------------------------------------------------------------------
# Env: ALE's vector env with the reference preprocessing (spec section 3)
# ---------------------------------------------------------------------------------------------------------
def ale_game(env_id: str) -> Optional[tuple[str, float]]:
    """ROM name and sticky-action probability of an Atari id, or None; stops on an id naming no game."""
    match = re.fullmatch(r"(ALE/)?(\w+?)(NoFrameskip|Deterministic)?-v\d+", env_id)  # (ALE's, e.g. Pong-v0)
    roms = {rom.title().replace("_", ""): rom for rom in ale_py.roms.get_all_rom_ids()}  # ale_py's names
    if match is None or match[2] not in roms and not (match[1] or match[3]):
        return None  # a gymnasium world
    if env_id not in (f"{match[2]}NoFrameskip-v4", f"ALE/{match[2]}-v5") or match[2] not in roms:
        raise SystemExit(f"error: --env-id {env_id!r} names no Atari game as these scripts take one; use "
                         "e.g. BreakoutNoFrameskip-v4 (no sticky actions, the paper's) or ALE/Breakout-v5")
    return roms[match[2]], 0.0 if match[3] else 0.25


class FrameStack:
    """The last 4 frames of each env of a vector env that returns single frames. At a reset and at every
    autoreset the stack holds 4 copies of the episode's first frame, as the reference's FrameStack does,
    so the k-th observation of an episode is [f0] * (3 - k) + [f0 .. fk]. ALE's own stack pads with black
    frames instead: that made the game-over transition the most surprising event in the game, and a
    pure-curiosity agent learned to die as fast as it could (spec section 3)."""

    def __init__(self, envs, num_frames: int = 4):
        self.envs, self.num_envs = envs, envs.num_envs
        self.single_action_space = envs.single_action_space
        self.num_frames = num_frames
        self.single_observation_space = gym.spaces.Box(
            0, 255, (num_frames, *envs.single_observation_space.shape[1:]), np.uint8)

    def reset(self, seed):
        """Seeds env i with seed + i, or with seed[i] given a list."""
        if not isinstance(seed, int) and not isinstance(self.envs, gym.vector.AsyncVectorEnv):
            seed = np.array(seed)  # (ALE's takes an array; gymnasium's hands each env a Python int of a list)
        frames, info = self.envs.reset(seed=seed)  # (N, 1, H, W)
        self.stack = np.repeat(frames, self.num_frames, axis=1)
        return self.stack, info

    def step(self, actions: np.ndarray):
        frames, rewards, terminated, truncated, info = self.envs.step(actions)
        # A new array each step (one copy, no shift in place), so a stack already returned never changes
        self.stack = np.concatenate([self.stack[:, 1:], frames], axis=1)
        done = terminated | truncated  # same-step autoreset: a done env's frame is its next episode's first
        self.stack[done] = frames[done]
        return self.stack, rewards, terminated, truncated, info

    def close(self) -> None:
        self.envs.close()


def make_envs(env_id: str, num_envs: int, max_episode_steps: int) -> FrameStack:
    """An Atari id: ALE's C++ vector env with the reference preprocessing (spec section 3); any other id: a
    gymnasium world, an env a process, its images as 84x84 grey frames (grey_frame). Stacked by FrameStack."""
    if (atari := ale_game(env_id)) is None:  # the ended episode's last info goes in info["final_info"]
        gc.freeze()  # the env processes are forked from this one: frozen, its objects are never copied into
        # them by their garbage collector (measured, 128 Pong envs and the trainer: 12.4 GiB PSS; frozen, 2.7)
        envs = gym.vector.AsyncVectorEnv([partial(make_world, env_id, os.getpid())] * num_envs,
                                         autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        gc.unfreeze()
        return FrameStack(envs)
    game, sticky = atari
    return FrameStack(ale_py.AtariVectorEnv(
        game, num_envs, frameskip=4, maxpool=True, grayscale=True, img_height=84, img_width=84,
        stack_num=1, noop_max=30, repeat_action_probability=sticky,
        max_num_frames_per_episode=4 * max_episode_steps,
        episodic_life=False,  # a lost life is not an episode end
        use_fire_reset=False,
        reward_clipping=False,  # clip only when forming the training reward: logs show the game score
        autoreset_mode="SameStep",  # the obs returned with done already starts the next episode
    ))


def grey_frame(image: np.ndarray) -> np.ndarray:
    """A world's image, of any size, grey or RGB, as an 84x84 grey frame (1, 84, 84), made as the reference's
    ProcessFrame84 makes one: grey = 0.299 R + 0.587 G + 0.114 B in float, resized by PIL's bilinear filter
    (which averages over the source pixels when it shrinks), then truncated to uint8."""
    grey = np.asarray(image, np.float32)
    if grey.ndim == 3:  # (H, W, 1) grey, (H, W, 3) RGB or (H, W, 4) RGBA
        grey = grey[..., 0] if grey.shape[-1] == 1 else grey[..., :3] @ np.float32([0.299, 0.587, 0.114])
    return np.array(PIL.Image.fromarray(grey).resize((84, 84), PIL.Image.BILINEAR), np.uint8)[None]


def make_world(env_id: str, parent: int) -> gym.Env:
    """One env of a gymnasium world, its frames made by grey_frame. In an env process (gymnasium makes one in
    `parent` too) SIGTERM ends it again, and the parent's end sends it one (Linux), so that any exit of the
    parent ends it without a word; Ctrl-C stays the parent's."""
    if os.getpid() != parent:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: so does the parent's kill -9, quietly
    frames = gym.spaces.Box(0, 255, (1, 84, 84), np.uint8)
    return gym.wrappers.TransformObservation(gym.make(env_id), grey_frame, frames)


def check_world(env_id: str) -> int:
    """Stops with one line unless env_id makes a world of images and discrete actions (made once, here);
    returns its number of actions."""
    try:
        with gym.make(env_id) as env:
            space, actions = env.observation_space, env.action_space
    except Exception as err:
        why = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise SystemExit(f"error: --env-id {env_id!r} is no Atari game, and gymnasium cannot make it: {why}")
    image = isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)
    if not (image and space.shape[2:] in ((), (1,), (3,), (4,)) and isinstance(actions, gym.spaces.Discrete)):
        raise SystemExit(f"error: --env-id {env_id} has observations {space} and actions {actions}; these "
                         "scripts take images (uint8, H x W, grey or RGB) and discrete actions")
    return int(actions.n)


def action_count(env_id: str) -> int:
    """How many actions the env id's policy chooses from, known without building its envs: the game's minimal
    action set, as ALE's vector env gives it, or the world's."""
    if (atari := ale_game(env_id)) is None:
        return check_world(env_id)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.loadROM(ale_py.roms.get_rom_path(atari[0]))
    return len(ale.getMinimalActionSet())


class EpisodeStats:
    """Raw game score and length of every episode, counted here from unclipped rewards, and a world's
    counters: every number in the `info` of an episode's last step (ball returns, goal reached)."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.recent_returns = deque(maxlen=100)
        self.finished_returns, self.finished_lengths = [], []  # the episodes ended since the last log()
        self.finished_metrics = {}

    def update(self, rewards, terminated, truncated, info: Optional[dict] = None):
        """Adds one step of every env; returns the (returns, lengths) of the episodes that just ended."""
        returns, lengths = self.returns, self.lengths
        returns += rewards
        lengths += 1
        done = terminated | truncated  # a time-limit cut ends the episode's statistics too
        finished = returns[done].copy(), lengths[done].copy()
        self.recent_returns.extend(finished[0])
        self.finished_returns.extend(finished[0])
        self.finished_lengths.extend(finished[1])
        final = info.get("final_info", {}) if info else {}  # (same-step autoreset: the ended episodes' info)
        for name, values in final.items():  # arrays over envs; "_name" marks the envs whose info had name
            if not name.startswith("_") and np.ndim(values) == 1:  # (numpy's bools arrive as objects)
                ended = np.asarray(values[done & final[f"_{name}"]].tolist())
                if ended.dtype.kind in "biuf":
                    self.finished_metrics.setdefault(name, []).extend(ended.tolist())
        returns[done] = 0
        lengths[done] = 0
        return finished

    def log(self) -> dict:
        """Mean score, length and counters of the episodes ended since the last call, in every process, and
        how many ended: the weight of these means (an iteration where one maze episode reached the goal early
        and one where 32 ran to the time limit are not worth the same in a success rate)."""
        returns, lengths, metrics = self.finished_returns, self.finished_lengths, self.finished_metrics
        self.finished_returns, self.finished_lengths, self.finished_metrics = [], [], {}
        gathered, rank = all_gather((returns, lengths, metrics))  # every process's, in rank order
        # so that "return(last 100)" covers every process
        self.recent_returns.extend(r for i, (rs, _, _) in enumerate(gathered) if i != rank for r in rs)
        returns = [r for rank_returns, _, _ in gathered for r in rank_returns]
        lengths = [n for _, rank_lengths, _ in gathered for n in rank_lengths]
        if not returns:
            return {}
        counters = {k: [v for *_, m in gathered for v in m.get(k, [])] for *_, ms in gathered for k in ms}
        return {"charts/episodic_return": float(np.mean(returns)),
                "charts/episodic_length": float(np.mean(lengths)), "charts/episodes": len(returns),
                **{f"charts/{name}": float(np.mean(values)) for name, values in counters.items() if values}}


# ---------------------------------------------------------------------------------------------------------
# Normalisation: observations by a random agent's statistics, rewards by the std of their discounted sum
# ---------------------------------------------------------------------------------------------------------
def random_agent_obs_stats(args: Args, seed: int, rng: np.random.Generator):
    """Per-pixel mean and one scalar std (per-pixel std averaged over pixels) of random-agent frames:
    --obs-norm-steps steps shared by --obs-norm-envs envs of their own, few enough that each plays whole
    episodes, as the reference's one env does. Spread over 128 envs, 79 steps each, they would describe only
    episode starts: on Breakout a std 27% too low and per-pixel means 44 grey levels off (spec section 3)."""
    print(f"estimating observation statistics from {args.obs_norm_steps} random-agent steps "
          f"in {args.obs_norm_envs} envs", flush=True)
    envs = make_envs(args.env_id, args.obs_norm_envs, args.max_episode_steps)
    envs.reset(seed=env_seeds(seed, envs.num_envs))
    total = np.zeros(envs.single_observation_space.shape)
    total_sq = np.zeros_like(total)
    count = 0
    for _ in range(-(-args.obs_norm_steps // envs.num_envs)):
        if STOP:  # a stop asked for: the first iteration's stop point ends the run, nothing saved
            break
        obs = envs.step(rng.integers(envs.single_action_space.n, size=envs.num_envs))[0].astype(np.float64)
        total += obs.sum(0)
        total_sq += np.square(obs).sum(0)
        count += len(obs)
    envs.close()
    count = max(count, 1)  # 0 after a stop before the first step: the run ends before it uses them
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)).mean()


class ObservationNorm(nn.Module):
    """x = (obs - per-pixel mean) / scalar std, frozen after the warm-up. No division by 255.
    The result is channels-last in memory (same shape and values): the CPU's convs train about 1.5x faster."""

    def __init__(self, mean: np.ndarray, std: float):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.movedim(-3, -1).contiguous().float()  # (..., H, W, C) in memory
        x.sub_(self.mean.movedim(-3, -1).contiguous()).div_(self.std)  # in place, mean in the same layout
        return x.movedim(-1, -3)  # (..., C, H, W) again, with C varying fastest


class RewardForwardFilter:
    """Per-env discounted sum of rewards, R = gamma * R + r_t, run along time and never reset."""

    def __init__(self, gamma: float, num_envs: int):
        self.gamma = gamma
        self.rewems = np.zeros(num_envs)

    def update(self, rewards: np.ndarray) -> np.ndarray:
        self.rewems = self.gamma * self.rewems + rewards
        return self.rewems


class RunningMeanStd:
    """Running mean and variance, merged batch by batch (Chan et al.'s parallel algorithm)."""

    def __init__(self, shape=()):
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, batch_count = global_moments(x)  # torchrun: all processes' x, as one batch
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total


def normalize_rewards(rewards: torch.Tensor, reward_filter: RewardForwardFilter,
                      reward_rms: RunningMeanStd) -> torch.Tensor:
    """Divides (T, N) rewards by the running std of their per-env discounted sum; the mean stays.
    The statistics are float64 numpy, as in the reference; the result is float32 on the rewards' device."""
    rewards_np = rewards.cpu().numpy()
    filtered = np.stack([reward_filter.update(r) for r in rewards_np])  # along time, never across envs
    reward_rms.update(filtered.ravel())
    return torch.as_tensor(rewards_np / np.sqrt(reward_rms.var), dtype=torch.float32, device=rewards.device)


# ---------------------------------------------------------------------------------------------------------
# Networks: the policy, the feature encoder phi and the forward model f
# ---------------------------------------------------------------------------------------------------------
def normc_(layer: nn.Module, std: float = 1.0) -> nn.Module:
    """Reference init of dense layers: Gaussian weights, each unit's weight vector scaled to norm `std`."""
    with torch.no_grad():
        nn.init.normal_(layer.weight)
        layer.weight *= std / layer.weight.norm(dim=1, keepdim=True)
        nn.init.zeros_(layer.bias)
    return layer


def glorot_(layer: nn.Module) -> nn.Module:
    """Reference init of convs and of the dynamics MLP (TensorFlow's default)."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def conv_trunk(out_dim: int) -> nn.Sequential:
    """84x84x4 frames to `out_dim` features; the policy and each encoder get their own copy. LeakyReLU's slope
    is TensorFlow's 0.2, not torch's 0.01; in place, so each layer saves one tensor for backward, not two."""
    return nn.Sequential(
        glorot_(nn.Conv2d(4, 32, 8, stride=4)), nn.LeakyReLU(0.2, inplace=True),
        glorot_(nn.Conv2d(32, 64, 4, stride=2)), nn.LeakyReLU(0.2, inplace=True),
        glorot_(nn.Conv2d(64, 64, 3, stride=1)), nn.LeakyReLU(0.2, inplace=True),
        nn.Flatten(), normc_(nn.Linear(64 * 7 * 7, out_dim)),  # no activation on the output
    )


def apply_flat(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Runs a batch-first module on a (T, n, ...) tensor."""
    return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class Policy(nn.Module):
    """PPO actor-critic with its own conv trunk: it never shares the curiosity encoder."""

    def __init__(self, num_actions: int, hidden: int = 512):
        super().__init__()
        self.trunk = conv_trunk(hidden)
        self.body = nn.Sequential(
            normc_(nn.Linear(hidden, hidden)), nn.ReLU(), normc_(nn.Linear(hidden, hidden)), nn.ReLU()
        )
        self.logits = normc_(nn.Linear(hidden, num_actions))
        self.value = normc_(nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(self.trunk(x))
        return self.logits(h).float(), self.value(h).squeeze(-1).float()  # float32 even under bf16 autocast


class Features(nn.Module):
    """phi: random features, a conv trunk frozen at its random initialisation (paper section 2.1)."""

    cache = True  # phi never changes, so a rollout's features are computed once and reused by every epoch

    def __init__(self, feature_dim: int, num_actions: int):
        super().__init__()
        self.encoder = conv_trunk(feature_dim).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss(self, x: torch.Tensor, actions: torch.Tensor):
        """Features of a (T+1, n) sequence of normalised frames, auxiliary loss (none here), metrics."""
        return apply_flat(self, x), x.new_zeros(()), {}


class ForwardModel(nn.Module):
    """f(phi(x_t), a_t) -> phi(x_{t+1}): residual MLP with the action one-hot at every dense layer."""

    def __init__(self, feature_dim: int, num_actions: int, hidden: int = 512, num_blocks: int = 4):
        super().__init__()
        self.num_actions = num_actions
        self.inp = glorot_(nn.Linear(feature_dim + num_actions, hidden))
        self.blocks = nn.ModuleList(
            nn.ModuleList([glorot_(nn.Linear(hidden + num_actions, hidden)),
                           glorot_(nn.Linear(hidden + num_actions, hidden))])
            for _ in range(num_blocks)
        )
        self.out = glorot_(nn.Linear(hidden + num_actions, feature_dim))

    def forward(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        a = F.one_hot(actions, self.num_actions).to(features.dtype)

        def with_action(h):
            return torch.cat([h, a], dim=-1)

        x = F.leaky_relu(self.inp(with_action(features)), 0.2)
        for dense1, dense2 in self.blocks:
            x = x + dense2(with_action(F.leaky_relu(dense1(with_action(x)), 0.2)))
        return self.out(with_action(x))


def build_networks(args: Args, num_actions: int, ob_mean: np.ndarray, ob_std: float, device) -> dict:
    """The observation normaliser, the policy, the feature encoder phi and the forward model f."""
    return {"obs_norm": ObservationNorm(ob_mean, ob_std).to(device), "policy": Policy(num_actions).to(device),
            "phi": Features(args.feature_dim, num_actions).to(device),
            "forward_model": ForwardModel(args.feature_dim, num_actions).to(device)}


# ---------------------------------------------------------------------------------------------------------
# The algorithm: curiosity reward, advantages, minibatches
# ---------------------------------------------------------------------------------------------------------
def prediction_error(forward_model: nn.Module, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Per-transition forward-model error on a (T+1, n, ...) feature sequence: the curiosity reward
    r_t = -log p(phi(x_{t+1}) | x_t, a_t) of paper eq. 1 under a fixed-variance Gaussian."""
    features = features.detach()  # input and target: the forward loss must never shape phi, or phi collapses
    prediction = forward_model(features[:-1].flatten(0, 1), actions.flatten())
    error = (prediction.float() - features[1:].flatten(0, 1).float()).pow(2)
    return error.flatten(1).mean(1).view(actions.shape)


def intrinsic_reward(phi: nn.Module, forward_model: nn.Module, obs_norm: nn.Module, obs: torch.Tensor,
                     actions: torch.Tensor, chunks: int):
    """Curiosity reward of a (T+1, N) rollout of frames by the forward model that was current during it
    (paper eq. 1), computed `chunks` groups of envs at a time to bound memory. Also returns the features
    (float32) when phi is fixed (`phi.cache`: every epoch of the update reuses them; else None), and the
    features' std over the batch, averaged over dimensions."""
    rewards = torch.zeros(actions.shape, device=actions.device)
    cached, stds = [], []
    for envs in torch.arange(actions.shape[1], device=actions.device).chunk(chunks):
        features = apply_flat(phi, obs_norm(obs[:, envs]))
        rewards[:, envs] = prediction_error(forward_model, features, actions[:, envs])
        stds.append(features.flatten(0, 1).flatten(1).float().std(0).mean())
        if phi.cache:
            cached.append(features.float())
    return rewards, torch.cat(cached, dim=1) if cached else None, torch.stack(stds).mean().item()


def gae(rewards, values, next_value, dones, gamma: float, lam: float, use_dones: bool):
    """Advantages and returns of (T, N) tensors; without use_dones it bootstraps through episode ends."""
    values = torch.cat([values, next_value[None]])
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        not_done = 1.0 - dones[t].float() if use_dones else 1.0
        delta = rewards[t] + gamma * values[t + 1] * not_done - values[t]  # TD error
        advantages[t] = last = delta + gamma * lam * not_done * last  # GAE (Schulman et al. 2016, eq. 16)
    return advantages, advantages + values[:-1]


def ppo_loss(policy: Policy, x: torch.Tensor, actions, logprobs, advantages, returns, args: Args):
    """PPO's loss on (T, n) minibatch tensors: the clipped surrogate, the entropy bonus and the value loss;
    also its parts, for the log."""
    logits, value = policy(x.flatten(0, 1))
    pi = Categorical(logits=logits)
    logratio = pi.log_prob(actions.flatten()) - logprobs.flatten()
    ratio = logratio.exp()
    advantages = advantages.flatten()
    clipped_ratio = ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
    pg_loss = torch.max(-advantages * ratio, -advantages * clipped_ratio).mean()  # Schulman 2017, eq. 7
    v_loss = 0.5 * (value - returns.flatten()).pow(2).mean()
    entropy = pi.entropy().mean()
    with torch.no_grad():
        stats = {"losses/policy_loss": pg_loss, "losses/value_loss": v_loss, "losses/entropy": entropy,
                 "losses/approx_kl": 0.5 * logratio.pow(2).mean(),
                 "losses/clipfrac": ((ratio - 1).abs() > args.clip_coef).float().mean()}
    return pg_loss - args.ent_coef * entropy + args.vf_coef * v_loss, stats


def update_loss(policy: Policy, phi: nn.Module, forward_model: nn.Module, x: torch.Tensor, actions, logprobs,
                advantages, returns, features: Optional[torch.Tensor], args: Args):
    """The loss of one minibatch of (T+1, n) normalised frames: PPO's, the forward model's and the feature
    method's own; also their parts, for the log. `features`: the rollout's, when phi is fixed (else None)."""
    ppo, stats = ppo_loss(policy, x[:-1], actions, logprobs, advantages, returns, args)
    aux_loss, aux_stats = x.new_zeros(()), {}
    if features is None:  # a learned phi moves with every optimizer step
        features, aux_loss, aux_stats = phi.loss(x, actions)
    dynamics_loss = prediction_error(forward_model, features, actions).mean()
    stats = {**stats, "losses/dynamics_loss": dynamics_loss.detach(), **aux_stats}
    return ppo + dynamics_loss + aux_loss, stats


def minibatch_envs(num_envs: int, num_minibatches: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffled env indices cut into groups: a minibatch is whole env trajectories, as in the reference."""
    return rng.permutation(num_envs).reshape(num_minibatches, -1)


def explained_variance(y_pred: torch.Tensor, y_true: torch.Tensor) -> float:
    var_y = y_true.var()
    return float("nan") if var_y == 0 else float(1 - (y_true - y_pred).var() / var_y)


# =========================================================================================================
# Plumbing: validation, torchrun, run directory, stops, checkpoints, evaluation and video, logging. Nothing
# here changes what is learned; a first reading can skip to main().
# =========================================================================================================
# Settings a resumed or evaluated run must share with its checkpoint: they fix the envs and the networks
FIXED_BY_CHECKPOINT = ("env_id", "num_envs", "num_steps", "max_episode_steps", "feature_dim", "seed")
INT_MAX, FLOAT_MAX = 2**31 - 1, sys.float_info.max  # ALE and numpy take seeds and sizes as C ints
# Each number's allowed range, tested as `low <= value <= high`, which NaN fails. Unlisted ints: 1 to INT_MAX
RANGES = {"seed": (0, INT_MAX), "save_every": (0, INT_MAX), "total_timesteps": (1, 2**62),
          "max_episode_steps": (1, INT_MAX // 4),  # ALE counts an episode's frames, 4 a step, in a C int
          "feature_dim": (1, 2**16), "gamma": (0, 1), "gae_lambda": (0, 1),
          **dict.fromkeys(("learning_rate", "clip_coef"), (math.ulp(0), FLOAT_MAX)),
          **dict.fromkeys(("max_grad_norm", "ent_coef", "vf_coef", "int_coef", "ext_coef"), (0, FLOAT_MAX))}


def parse_args() -> tuple[Args, Optional[dict]]:
    """The flags, checked; with --resume or --eval-checkpoint, the checkpoint's settings overridden by the
    flags given now (settings this version does not know are ignored), and the checkpoint. Under torchrun
    every process checks the same flags, and rank 0 alone prints (from here on)."""
    catch_stop_signals(exit_quietly)
    rank_0 = int(os.environ.get("RANK", 0)) == 0
    if not rank_0:
        sys.stdout = open(os.devnull, "w")
    try:
        with contextlib.nullcontext() if rank_0 else contextlib.redirect_stderr(io.StringIO()):
            args, checkpoint = tyro.cli(Args), None
            if args.resume is not None or args.eval_checkpoint is not None:  # (an empty one is no checkpoint)
                checkpoint = load_checkpoint(args.resume if args.resume is not None else args.eval_checkpoint)
                known = {field.name for field in dataclasses.fields(Args)} - {"resume", "eval_checkpoint"}
                saved = {name: value for name, value in checkpoint["args"].items() if name in known}
                if unsaved := sorted(f"--{name.replace('_', '-')}" for name in known - set(saved)):
                    print(f"note: the checkpoint does not record {', '.join(unsaved)}: the defaults or the "
                          "flags given now are used", flush=True)
                args = tyro.cli(Args, default=Args(**saved))
            check_args(args, checkpoint)
    except SystemExit as stop:  # the other processes exit as rank 0 does, silently
        stopped = stop.code in (0, None, *(128 + s for s in STOP_SIGNALS))  # --help, or a signal
        if not rank_0 and not stopped:  # a bad flag: torchrun ends every process once one has failed, so
            time.sleep(10)  # the others give rank 0 time to say why (else its words can be cut off)
        raise stop if rank_0 or not isinstance(stop.code, str) else SystemExit(1)
    except BrokenPipeError:  # `--help | head`: the reader has gone; stop as shell tools do, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (else the flush at exit fails again)
        raise SystemExit(128 + signal.SIGPIPE)
    return args, checkpoint


def out_of_range(name: str, value) -> Optional[str]:
    """The range a number of Args must be in (RANGES), if `value` is outside it."""
    low, high = RANGES.get(name, (1, INT_MAX))
    if not low <= value <= high:
        finite = f"{'0 or more' if low == 0 else 'positive'} and finite"
        return f"between {low:,} and {high:,}" if high < FLOAT_MAX else finite


def check_args(args: Args, checkpoint: Optional[dict] = None) -> None:
    """Stops with one line on impossible settings, before any env or network is built."""
    for field in dataclasses.fields(args):
        value = getattr(args, field.name)
        if field.type in (int, float) and (rule := out_of_range(field.name, value)):
            raise SystemExit(f"error: --{field.name.replace('_', '-')} must be {rule}, got {value}")
    processes = int(os.environ.get("WORLD_SIZE", 1))  # torchrun: one iteration is every process's rollout
    iteration = args.num_envs * args.num_steps * processes
    if args.eval_checkpoint:  # evaluation plays: the rules below are training's
        pass
    elif args.num_envs % args.num_minibatches:
        raise SystemExit(f"error: --num-envs {args.num_envs} must be divisible by --num-minibatches "
                         f"{args.num_minibatches}: each minibatch holds whole env trajectories")
    elif args.int_coef == args.ext_coef == 0:
        raise SystemExit("error: --int-coef 0 and --ext-coef 0 leave a reward of zero to train on; "
                         "give either a positive value")
    elif args.obs_norm_envs > args.obs_norm_steps:
        raise SystemExit(f"error: --obs-norm-envs {args.obs_norm_envs} is more than --obs-norm-steps "
                         f"{args.obs_norm_steps}: every warm-up env must take a step")
    elif args.total_timesteps < iteration:
        times = "--num-envs x --num-steps" + (f" x {processes} processes" if processes > 1 else "")
        raise SystemExit(f"error: --total-timesteps {args.total_timesteps} is less than one iteration "
                         f"({times} = {iteration})")
    elif args.total_timesteps % iteration and args.total_timesteps != Args.total_timesteps:  # (1e8: no note)
        print(f"note: --total-timesteps {args.total_timesteps:,} is not a whole number of iterations of "
              f"{iteration:,} steps: training stops at {args.total_timesteps // iteration * iteration:,}",
              flush=True)
    if args.resume and args.eval_checkpoint:
        raise SystemExit("error: give --resume (train on) or --eval-checkpoint (play and score), not both")
    if "/" in args.exp_name or args.exp_name in ("", ".", "..") or not args.exp_name.isprintable():
        raise SystemExit(f"error: --exp-name {args.exp_name!r} names a folder in --log-dir: printable, and "
                         "no '/', '.' or '..'")
    if not args.log_dir.strip() or not args.log_dir.isprintable():
        raise SystemExit(f"error: --log-dir {args.log_dir!r} names no folder; pass one (runs, by default)")
    if len(f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}".encode()) > 255:
        raise SystemExit("error: --exp-name is too long: with the env id, seed and time it makes a run "
                         "directory name over the file system's 255 bytes; pass a shorter one")
    needs, memory = memory_needed(args), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not args.eval_checkpoint and sum(needs.values()) > memory / 2:
        flags, most = max(needs.items(), key=lambda item: item[1])
        raise SystemExit(f"error: these settings need about {sum(needs.values()) / 2**30:.0f} GiB of "
                         f"memory, over half of this machine's {memory / 2**30:.0f} GiB, "
                         f"{most / 2**30:.0f} GiB of it for {flags}; use smaller values, or several "
                         "processes under torchrun")
    if args.capture_video and importlib.util.find_spec("av") is None:
        raise SystemExit("error: --capture-video writes mp4 files with PyAV: pip install av, "
                         "or drop the flag")
    if checkpoint is None:
        ale_game(args.env_id) or check_world(args.env_id)
        return
    for name in FIXED_BY_CHECKPOINT if args.resume else ("env_id",):  # evaluation may change the rest
        if getattr(args, name) != checkpoint["args"].get(name):
            raise SystemExit(f"error: the checkpoint was trained with --{name.replace('_', '-')} "
                             f"{checkpoint['args'].get(name)}, not {getattr(args, name)}; drop the flag "
                             "(a checkpoint keeps its env and network sizes)")
    ranks = checkpoint.get("ranks")
    if args.resume and isinstance(ranks, list) and not all(isinstance(p, dict) and "recent_returns" in p
                                                           for p in ranks):
        raise SystemExit(
            "error: the checkpoint was written by an earlier version of this script, whose resume replayed "
            "every action; resume it with that version, or score it with --eval-checkpoint")
    fresh = fresh_state(args, action_count(args.env_id))
    if args.eval_checkpoint:  # evaluation uses the policy, the observation statistics and the step
        fresh = {"global_step": 0, "networks": {k: fresh["networks"][k] for k in ("policy", "obs_norm")}}
    damage = difference(checkpoint, fresh)
    if args.resume and not damage:  # a run saves after whole iterations of all its processes
        iteration, step = checkpoint["iteration"], checkpoint["global_step"]
        batch = args.num_envs * args.num_steps * len(ranks)
        damage = ("ranks differs (saved an empty list, expected a part for each process)" if not ranks else
                  f"iteration differs (saved {iteration}, expected 1 or more)" if iteration < 1 else
                  f"global_step differs (saved {step:,}, expected {iteration * batch:,}: {iteration} "
                  f"iterations of {batch:,} steps)" if step != iteration * batch else None)
    if damage:
        raise SystemExit(f"error: {(args.resume or args.eval_checkpoint)!r} is damaged: {damage}; resume or "
                         "score another checkpoint, or start a new run")
    if not args.resume:
        return
    if len(checkpoint["ranks"]) != processes:
        raise SystemExit(f"error: the checkpoint holds {len(checkpoint['ranks'])} processes' envs, not "
                         f"{processes}; resume it with torchrun --nproc_per_node {len(checkpoint['ranks'])} "
                         "(or plain python for 1)")
    if args.total_timesteps < checkpoint["global_step"] + args.num_envs * args.num_steps * processes:
        raise SystemExit(
            f"error: the checkpoint is at step {checkpoint['global_step']:,}, so --total-timesteps "
            f"{args.total_timesteps:,} leaves no iteration to train; pass a larger --total-timesteps")


ENV_BYTES = 2 * 2**20  # one emulator of ale_py's vector env and its frame stack (1.3 MiB on Breakout)
# one env of a gymnasium world, a process of its own forked from this one (make_envs): measured, PSS of all
# processes less the trainer's, about 10 MiB an env of two-player Pong and 70 MiB of the maze (MiniWorld)
WORLD_ENV_BYTES = 64 * 2**20


def memory_needed(args: Args) -> dict:
    """Bytes that the settings make this process allocate, by what sizes them: the rollout's uint8 frames,
    the emulators, and the networks (weights, gradients, Adam's two moments and the checkpoint's two copies:
    6 x 4 bytes a weight), built on the meta device, which allocates nothing, for the largest action set
    (two-player Pong's 36). The env id first: a mistyped game stops before the networks' build, whose
    first use of the meta device imports torch._dynamo (about 2 s)."""
    env_bytes = ENV_BYTES if ale_game(args.env_id) else WORLD_ENV_BYTES
    with torch.device("meta"):
        networks = build_networks(args, 36, np.zeros((4, 84, 84)), 1.0, "meta").values()
    weights = sum(p.numel() for network in networks for p in network.parameters())
    frames, emulators = (args.num_steps + 1) * args.num_envs * 4 * 84 * 84, args.num_envs + args.obs_norm_envs
    return {"--num-envs x --num-steps (the rollout's frames)": frames,
            "--num-envs and --obs-norm-envs (the emulators)": emulators * env_bytes,
            "--feature-dim (the networks)": 6 * 4 * weights}


def load_checkpoint(path: str) -> dict:
    """A checkpoint written by this script; stops with one line if it is missing, unreadable or another's."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: no checkpoint at {path!r}; pass the checkpoint.pt of a run directory")
    try:  # a checkpoint is a pickle: load only your own
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise SystemExit(f"error: {path!r} is not a readable checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})")
    script = os.path.basename(__file__)
    if not isinstance(checkpoint, dict) or checkpoint.get("script") != script:
        other = checkpoint.get("script") if isinstance(checkpoint, dict) else None
        raise SystemExit(f"error: {path!r} was written by {other or 'something else'}, not {script}; "
                         "use that script")
    settings = checkpoint.get("args")  # the settings; the rest is compared with a fresh run's (check_args)
    known = {name: value for name, value in vars(Args()).items()  # one that fixes nothing may be missing
             if name in FIXED_BY_CHECKPOINT or isinstance(settings, dict) and name in settings}
    damage = difference(settings, known, "args") or next(
        (f"args.{name} differs (saved {settings[name]}, expected {rule})" for name, value in known.items()
         if type(value) in (int, float) and (rule := out_of_range(name, settings[name]))), None)
    numbers = ("networks", "optimizer", "reward_rms", "ranks")
    damage = damage or next((f"its {part} hold NaN or infinite values" for part in numbers
                             if not all_finite(checkpoint.get(part))), None)
    if damage:
        raise SystemExit(f"error: {path!r} is damaged: {damage}; resume or score another checkpoint, or "
                         "start a new run")
    return checkpoint


def fresh_state(args: Args, num_actions: int) -> dict:
    """What a run of these settings saves after its first iteration, built on the meta device, which allocates
    nothing: the tree (keys, kinds, shapes, dtypes) a checkpoint is compared with before anything is built."""
    with torch.device("meta"):
        networks = build_networks(args, num_actions, np.zeros((4, 84, 84)), 1.0, "meta")
        params = [p for m in networks.values() for p in m.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer = torch.optim.Adam(params)  # the same state as fused Adam's, which meta tensors lack
        optimizer.step()
    episodes = EpisodeStats(args.num_envs)
    episodes.recent_returns.append(0.0)
    reward_filter, rng = RewardForwardFilter(args.gamma, args.num_envs), np.random.default_rng()
    state = training_state(args, 1, 0, networks, optimizer, RunningMeanStd(), reward_filter, episodes, rng,
                           torch.device("cpu"))
    return {part: value for part, value in state.items() if part != "args"}  # (checked in load_checkpoint)


def kind(value) -> str:
    """A checkpoint's value as a damage message names it: a tensor's or array's dtype and shape, or its type
    (numpy's numbers as Python's, 0-d arrays as floats)."""
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray) and value.ndim:
        return f"a {value.dtype} array of shape {value.shape}"
    for types, name in (((bool, np.bool_), "a bool"), ((int, np.integer), "an int"),
                        ((float, np.number, np.ndarray), "a float"), (dict, "a dict"), (type(None), "None")):
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def difference(saved, fresh, where: str = "") -> Optional[str]:
    """Where a checkpoint first differs from what a fresh run saves: a part missing, or of another kind,
    dtype or shape; None if nothing does. Parts the fresh state lacks are ignored (as are settings this
    version does not know); where it holds None (the GPU's random stream) anything goes; of Adam's options
    only the parameters count, as torch fills in the rest."""
    found, expected = kind(saved), kind(fresh)
    if fresh is not None and found != expected and (found, expected) != ("an int", "a float"):
        return f"{where} differs (saved {found}, expected {expected})"
    if isinstance(fresh, dict):
        options = re.search(r"param_groups\[\d+\]$", where)
        for key, part in fresh.items():
            name = f"{where}.{key}".removeprefix(".")
            if key not in saved and not (options and key != "params"):
                return f"{name} differs (saved nothing, expected {kind(part)})"
            if key in saved and (found := difference(saved[key], part, name)):
                return found
    for i, item in enumerate(saved if isinstance(fresh, (list, tuple)) and fresh else ()):
        if found := difference(item, fresh[0], f"{where}[{i}]"):  # each item is like the fresh state's first
            return found
    return None


def all_finite(value) -> bool:
    """Whether every float in a checkpoint's part (tensors, arrays, numbers, nested) is finite."""
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(value.isfinite().all())
    if isinstance(value, (np.ndarray, float)):
        return not np.issubdtype(np.asarray(value).dtype, np.floating) or bool(np.isfinite(value).all())
    return True


def load_weights(modules: dict, saved: dict) -> None:
    """Each module's state from `saved`; stops with one line if the checkpoint lacks it or it does not fit."""
    for name, module in modules.items():
        try:
            module.load_state_dict(saved[name])
        except (KeyError, ValueError, RuntimeError) as err:
            reason = f"no {err}" if isinstance(err, KeyError) else " ".join(str(err).split())
            raise SystemExit(f"error: the checkpoint's {name} does not fit this script ({reason[:300]})")


def seed_everything(args: Args, rank: int, start: int) -> tuple[np.random.Generator, int]:
    """Seeds everything, the envs included, so that a CPU run repeats exactly; each process differently.
    Returns main's numpy generator and the first env's seed: env i of process r, started after iteration
    k, gets seed + (k * processes + r) * num_envs + i: no two alike, and a resume plays new episodes."""
    random.seed(args.seed + rank)
    np.random.seed(args.seed + rank)
    torch.manual_seed(args.seed + rank)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.distributions.Distribution.set_default_validate_args(False)  # NaNs are caught by first_non_finite
    return np.random.default_rng(args.seed + rank), args.seed + start * args.num_envs


def setup(args: Args) -> tuple[int, int, torch.device, partial]:
    """Rank, number of processes, device and autocast (bfloat16 with --bf16, else a no-op); from here
    SIGINT, SIGTERM and SIGHUP wait for a stop point. Under torchrun each process steps its own N envs;
    gradients and statistics are shared, and rank 0 alone prints, logs and saves."""
    catch_stop_signals(request_stop)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    use_cuda = torch.cuda.is_available() and args.cuda
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if use_cuda else "cpu")
    if world_size > 1:
        # Adam's constructor imports torch._dynamo, whose modules bind the process group as default arguments.
        # Imported after init_process_group, they keep it alive past destroy_process_group, and a gloo thread
        # still releasing the last collective then aborts the exit ("terminate called without an active
        # exception"): import it first
        importlib.import_module("torch._dynamo")  # (an import statement here would make torch a local name)
        dist.init_process_group("cpu:gloo,cuda:nccl" if use_cuda else "gloo")
    if device.type == "cpu" and args.bf16 != torch.ops.mkldnn._is_mkldnn_bf16_supported():  # what is faster
        print("warning: this CPU has no bfloat16 units (AVX-512 BF16 or AMX): --bf16 runs its networks "
              "several times slower than float32 here (README, Speed); drop the flag" if args.bf16 else
              "note: this CPU has bfloat16 units: --bf16 trains 1.5-2x faster (README, Speed)", flush=True)
    return rank, world_size, device, partial(torch.autocast, device.type, torch.bfloat16, enabled=args.bf16)


def open_run_dir(args: Args, rank: int) -> tuple[str, str]:
    """The run directory and its checkpoint's path: a new directory in --log-dir (named by rank 0), or on
    --resume the checkpoint's. Rank 0 holds an OS lock on it while it runs (the kernel drops it at exit,
    even at kill -9): a second process on the same run stops with one line. A new run that ends before its
    first iteration has finished leaves nothing."""
    names = [f"{re.sub('[/:]', '-', args.env_id)}__{args.exp_name}__{args.seed}__{int(time.time())}"]
    if dist.is_initialized():
        dist.broadcast_object_list(names, src=0)
    run_dir = os.path.join(args.log_dir, names[0])
    if args.resume:  # the run directory is where its checkpoint lies
        run_dir = os.path.dirname(args.resume) or os.curdir  # as given: a path printed back works from here
    checkpoint_path = os.path.join(run_dir, "checkpoint.pt")
    if rank > 0:
        return run_dir, checkpoint_path
    try:
        os.makedirs(run_dir, exist_ok=bool(args.resume))
        if not args.resume:  # a new run that fails while starting leaves nothing (finish() cleans later)
            empty = lambda: os.path.isdir(run_dir) and os.listdir(run_dir) in ([], [".lock"])  # noqa: E731
            atexit.register(lambda: empty() and shutil.rmtree(run_dir))
        lock = open(os.path.join(run_dir, ".lock"), "a")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()  # so that a full disk shows here, not in TensorBoard's writer thread
        os.fsync(lock.fileno())
    except BlockingIOError:
        raise SystemExit(f"error: another process is training in {run_dir}; wait for it to end, or stop it")
    except FileExistsError:
        raise SystemExit(f"error: {run_dir} exists: a run of this --exp-name and --seed started in the same "
                         "second; start again, or pass another --exp-name")
    except OSError as err:
        fix = ("copy the run directory somewhere writable and resume from there" if args.resume
               else "pass a writable --log-dir")
        raise SystemExit(f"error: cannot write in the run directory {run_dir!r} ({err.strerror}); {fix}")
    atexit.register(lock.close)  # which keeps the lock held until the process exits
    return run_dir, checkpoint_path


# Stops: SIGINT, SIGTERM and SIGHUP only note that a stop was asked for; the loop stops at its next stop
# point, so that nothing (a checkpoint write, the log writer's close) is ever cut mid-way by a signal
STOP = []  # the signals received


def request_stop(signum, frame):
    STOP.append(signal.Signals(signum).name)
    if signum == signal.SIGHUP:  # a closed terminal fails every write, even of nothing: write no more to it
        for name in ("stdout", "stderr"):
            try:
                os.write(getattr(sys, name).fileno(), b"")
            except (OSError, ValueError):
                setattr(sys, name, open(os.devnull, "w"))


class Stop(Exception):
    """Raised at a stop point after SIGINT, SIGTERM or SIGHUP: the iteration under way is dropped."""


def stop_point() -> None:
    """Raises Stop if a signal asked to stop; under torchrun, in every process at the same point. Of several
    signals the one with the highest number is named: SIGTERM (a job runner's), then SIGINT, then SIGHUP."""
    asked = torch.tensor(max((int(signal.Signals[name]) for name in STOP), default=0))
    if dist.is_initialized():
        dist.all_reduce(asked, op=dist.ReduceOp.MAX)
    if asked:
        raise Stop(signal.Signals(int(asked)).name)


def training_state(args: Args, iteration: int, global_step: int, networks: dict, optimizer, reward_rms,
                   reward_filter: RewardForwardFilter, episodes: EpisodeStats, rng, device, **more) -> dict:
    """A copy of everything a checkpoint holds, taken now; nothing in it grows with the run. Rank 0 holds
    every process's own part (`ranks`), so that one checkpoint restores them all."""
    process = {"reward_filter": reward_filter.rewems, "recent_returns": list(episodes.recent_returns),
               "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
               "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None, **more}
    return copy.deepcopy({
        "script": os.path.basename(__file__), "args": vars(args), "iteration": iteration,
        "global_step": global_step, "networks": {name: m.state_dict() for name, m in networks.items()},
        "optimizer": optimizer.state_dict(), "reward_rms": vars(reward_rms),
        "ranks": all_gather(process)[0],
    })


def restore(checkpoint: Optional[dict], rank: int, args: Args, networks: dict, optimizer,
            reward_rms: RunningMeanStd, reward_filter: RewardForwardFilter, episodes: EpisodeStats, rng,
            device) -> tuple[int, dict]:
    """Puts the checkpoint's state into the new run's objects: everything that decides what comes next
    except the envs (ALE and the other worlds cannot save them exactly). Returns its global step and this
    process's part (0 and {} without a checkpoint)."""
    if checkpoint is None:
        return 0, {}
    print(f"resuming after iteration {checkpoint['iteration']} (step {checkpoint['global_step']:,}): "
          "networks, optimizer, normalisers and random streams as saved; the envs start new episodes")
    load_weights({**networks, "optimizer": optimizer},
                 {**checkpoint["networks"], "optimizer": checkpoint["optimizer"]})
    for group in optimizer.param_groups:
        group["lr"] = args.learning_rate
    vars(reward_rms).update(checkpoint["reward_rms"])
    process = checkpoint["ranks"][rank]
    reward_filter.rewems = process["reward_filter"]
    episodes.recent_returns.extend(process["recent_returns"])  # the episodes the stop cut are not logged
    restore_rng_states(process, rng, device)
    return checkpoint["global_step"], process


def restore_rng_states(process: dict, rng: np.random.Generator, device: torch.device) -> None:
    """This process's random streams as its checkpoint left them; the GPU's only when training on one."""
    rng.bit_generator.state = process["rng"]
    torch.set_rng_state(process["torch_rng"])
    if device.type == "cuda" and process["cuda_rng"] is not None:  # a tensor: its truth value would raise
        torch.cuda.set_rng_state(process["cuda_rng"], device)


def save_checkpoint(state: dict, path: str) -> Optional[str]:
    """Writes `state` to a temporary file, then renames it over `path`: a crash, a kill or a full disk
    mid-write leaves the previous checkpoint whole. Returns None, or why the write failed."""
    data = io.BytesIO()
    torch.save(state, data)  # in memory first, so that a failed write is the OS's error, not torch's
    try:
        with open(path + ".tmp", "wb") as f:
            f.write(data.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
    except OSError as err:
        kept = "the previous checkpoint is intact" if os.path.exists(path) else "no earlier checkpoint exists"
        return f"could not write {path} ({err.strerror or err}); {kept}"
    finally:
        if os.path.exists(path + ".tmp"):
            os.remove(path + ".tmp")
    return None


def first_non_finite(scalars: dict, networks: dict) -> Optional[str]:
    """Name of the first of the intrinsic reward, the losses and the weights that is NaN or infinite, in
    any torchrun process (so that all stop together)."""
    checked = ["charts/intrinsic_reward_mean", *(k for k in scalars if k.startswith("losses/"))]
    names = [name for name in checked  # explained variance may be NaN (a rollout of equal returns)
             if not math.isfinite(scalars[name]) and name != "losses/explained_variance"]
    names += [f"the {name} weights" for name, module in networks.items()
              if not all(p.isfinite().all() for p in module.parameters())]
    return next((found[0] for found in all_gather(names)[0] if found), None)


def finish(snapshot: Optional[dict], checkpoint: Optional[dict], checkpoint_path: str, failure: Optional[str],
           ended_by: Optional[Exception], params: list, to_close: list) -> None:
    """Closes the envs and the log writer, saves the last finished iteration (unless the checkpoint on disk
    holds it), checks that torchrun's processes agree, and says how to go on. A stop exits with 130 or 143,
    a NaN with 1, a crash with its own error once the last finished iteration is saved. A new run that
    ends before its first iteration has finished leaves no run directory."""
    for thing in to_close:
        if thing is not None:
            thing.close()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    stopped_by = ended_by.args[0] if isinstance(ended_by, Stop) else None
    crash = None if stopped_by else ended_by
    if snapshot is None:
        if rank == 0 and checkpoint is None:  # nothing worth keeping: at most the first iteration's start
            shutil.rmtree(os.path.dirname(checkpoint_path), ignore_errors=True)
        if crash:
            raise crash
        print(failure or f"{stopped_by}: stopped before the first iteration ended; nothing saved",
              file=sys.stderr)
        raise SystemExit(1 if failure else 128 + signal.Signals[stopped_by].value)
    if stopped_by:
        print(f"\n{stopped_by}: stopping; the unfinished iteration is dropped and will be redone on resume",
              flush=True)
    error = save_checkpoint(snapshot, checkpoint_path) if rank == 0 and snapshot is not checkpoint else None
    if world_size > 1 and not crash:  # torchrun kills the last process about 30 s after the first exits
        dist.barrier()  # so every process waits for rank 0's save
    if error:
        raise SystemExit(f"error: {error}")
    if world_size > 1 and not (failure or ended_by):  # the processes' weights must never have drifted apart
        sums, _ = all_gather(sum(p.double().sum().item() for p in params))
        if len(set(sums)) > 1:
            raise SystemExit(f"error: the processes' weights differ at the end (checksums {sums})")
        print(f"weights identical in all {world_size} processes (checksum {sums[0]:.12g})")
        dist.destroy_process_group()
    launcher = "python" if world_size == 1 else f"torchrun --nproc_per_node {world_size}"
    script, path = shlex.quote(sys.argv[0]), shlex.quote(checkpoint_path)  # the script's path as invoked
    resume_command = f"{launcher} {script} --resume {path}"
    saved = (f"checkpoint {checkpoint_path} holds iteration {snapshot['iteration']} "
             f"(step {snapshot['global_step']:,})")
    if failure:
        raise SystemExit(f"{failure}; {saved}, the last good state")
    if ended_by:
        print(f"{saved}; continue with: {resume_command}", file=sys.stderr if crash else sys.stdout,
              flush=True)
        if crash:
            raise crash
        raise SystemExit(128 + max(signal.Signals[name] for name in (stopped_by, *STOP)))  # SIGTERM wins
    print(f"{saved}; train longer with: {resume_command} --total-timesteps N; "
          "score it with --eval-checkpoint", flush=True)


def evaluate(policy: Policy, obs_norm: ObservationNorm, args: Args, episodes: int, greedy: bool, seed: int,
             video_path: Optional[str] = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Raw game score, length and a world's counters ({name: values}: the maze's goal_reached, two-player
    Pong's ball_returns) of `episodes` whole episodes, played in envs of their own; each env plays a fixed
    share, so short episodes are not favoured. With `video_path`, env 0's first episode goes to an mp4."""
    envs = make_envs(args.env_id, min(episodes, args.num_envs), args.max_episode_steps)
    share = episodes // envs.num_envs + (np.arange(envs.num_envs) < episodes % envs.num_envs)
    obs, stats = envs.reset(seed=env_seeds(seed, envs.num_envs))[0], EpisodeStats(envs.num_envs)
    device = obs_norm.mean.device
    generator = torch.Generator(device).manual_seed(seed)  # its own, so training's random stream is untouched
    returns, lengths, counters, frames = [], [], {}, [] if video_path else None
    while len(returns) < episodes:
        with torch.no_grad():
            logits = policy(obs_norm(torch.from_numpy(obs).to(device)))[0]
        if greedy:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
        if frames is not None:
            frames.append(obs[0, -1])
        obs, rewards, terminated, truncated, info = envs.step(actions.cpu().numpy())
        scores, ep_lengths = stats.update(rewards, terminated, truncated, info)
        # a world's counters of the episodes that just ended, in env order as scores
        ended = {name: v for name, v in stats.finished_metrics.items() if len(v) == len(scores)}
        stats.finished_metrics = {}
        envs_ended = np.flatnonzero(terminated | truncated)
        for j, (i, score, length) in enumerate(zip(envs_ended, scores, ep_lengths)):
            if share[i] > 0:  # an env that has played its share keeps playing, unrecorded
                share[i] -= 1
                returns.append(score)
                lengths.append(length)
                for name, values in ended.items():
                    counters.setdefault(name, []).append(values[j])
        if frames is not None and (terminated[0] or truncated[0]):
            write_video(frames, video_path)
            frames = None
    envs.close()
    return np.array(returns), np.array(lengths), {name: np.array(v) for name, v in counters.items()}


def evaluate_checkpoint(args: Args, checkpoint: dict) -> None:
    """--eval-checkpoint: plays the checkpoint's policy and prints its score and a world's counters."""
    saved = checkpoint["networks"]
    policy = Policy(len(saved.get("policy", {}).get("logits.bias", [0])))  # else load_weights says why
    obs_norm = ObservationNorm(np.zeros((4, 84, 84)), 1.0)
    load_weights({"policy": policy, "obs_norm": obs_norm}, saved)
    video = args.eval_checkpoint[: -len(".pt")] + "_eval.mp4" if args.capture_video else None
    if video:  # made before any episode is played: a folder that cannot take it stops the evaluation now
        try:
            open(video, "wb").close()
        except OSError as err:
            raise SystemExit(f"error: cannot write the video {video!r} ({err.strerror}); copy the "
                             "checkpoint somewhere writable, or drop --capture-video")
    scores, lengths, counters = evaluate(policy, obs_norm, args, args.eval_episodes, args.eval_greedy,
                                         args.seed + 1, video)
    video = f"; video {video}" if video and os.path.exists(video) else ""  # (none if it could not be written)
    counters = "".join(f", {name} {v.mean():.3g} +- {v.std():.3g}" for name, v in counters.items())
    print(f"{args.eval_episodes} episodes of {args.env_id} at step {checkpoint['global_step']:,}"
          f"{' (greedy)' if args.eval_greedy else ''}: score {scores.mean():.1f} +- {scores.std():.1f}, "
          f"length {lengths.mean():.0f} +- {lengths.std():.0f}{counters}{video}")


def record_video(policy: Policy, obs_norm: ObservationNorm, args: Args, run_dir: str, global_step: int,
                 iteration: int) -> None:
    """--capture-video: one episode of the current policy, beside the checkpoint."""
    video = os.path.join(run_dir, "videos", f"step_{global_step:012d}.mp4")
    os.makedirs(os.path.dirname(video), exist_ok=True)
    score = evaluate(policy, obs_norm, args, 1, False, args.seed + iteration, video)[0][0]
    if os.path.exists(video):  # (else write_video said why not)
        print(f"video {video}: one episode, score {score:.0f}", flush=True)


def write_video(frames: list, path: str, fps: int = 15) -> None:
    """84x84 grayscale frames, 4x enlarged, as an H.264 mp4 at the game's speed (15 agent steps a second)."""
    import av

    try:
        with av.open(path, "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = 336, 336, "yuv420p"
            for frame in frames:
                image = np.ascontiguousarray(frame.repeat(4, axis=0).repeat(4, axis=1))
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="gray")))
            container.mux(stream.encode())
    except (OSError, av.FFmpegError) as err:  # a full disk: warn, leave no broken file, go on
        with contextlib.suppress(OSError):
            os.remove(path)
        why = getattr(err, "strerror", None) or err
        print(f"warning: could not write the video {path} ({why}); none kept", file=sys.stderr, flush=True)


def open_logs(args: Args, run_dir: str, resumed: bool, global_step: int) -> SummaryWriter:
    """TensorBoard, with the settings as a table. On resume, purge_step drops what the stopped run logged
    after its checkpoint."""
    writer = SummaryWriter(run_dir, purge_step=global_step + 1 if resumed else None)
    table = "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
    writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
    return writer


class PhaseTimer:
    """Wall-clock seconds of each phase of an iteration: `lap(phase)` charges the time since the previous
    lap to `phase`. With `sync` it first waits for the GPU, so asynchronous CUDA work counts where it was
    queued."""

    def __init__(self, sync: bool):
        self.sync = sync
        self.seconds = {}
        self.start = self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now


def log_iteration(writer: Optional[SummaryWriter], scalars: dict, global_step: int, iterations: tuple,
                  start_time: float, recent_returns, phase_seconds: Optional[dict]) -> None:
    """Writes the iteration's scalars to TensorBoard and prints one line (with --profile, two).
    `iterations`: the first of this process, this one, the last."""
    first, iteration, last = iterations
    seconds_left = (time.time() - start_time) / (iteration - first) * (last - iteration)
    if writer is not None:
        for name, value in scalars.items():
            writer.add_scalar(name, value, global_step)
    recent = f"{np.mean(recent_returns):.2f}" if recent_returns else "n/a"  # 1 goal in 100: 0.01
    left = (f"{seconds_left / 86400:.1f} days" if seconds_left >= 86400
            else time.strftime("%H:%M:%S", time.gmtime(seconds_left)))
    print(f"iter {iteration}/{last} step {global_step:,} frames {4 * global_step:,} "
          f"SPS {scalars['charts/SPS']} "
          f"return(last 100) {recent} r_int {scalars['charts/intrinsic_reward_mean']:.4g} left {left}",
          flush=True)
    if phase_seconds is not None:
        print("  seconds:", ", ".join(f"{k} {v:.2f}" for k, v in phase_seconds.items()), flush=True)


# torchrun: every process's numbers as one. Without torchrun each helper returns its input's own statistics
def env_seeds(first: int, num_envs: int) -> list:
    """Seeds first, first + 1, ... of `num_envs` envs, wrapped into ALE's range (0 to INT_MAX)."""
    return [(first + i) % (INT_MAX + 1) for i in range(num_envs)]


def all_gather(obj) -> tuple[list, int]:
    """Every process's `obj` in rank order, and this process's rank; ([obj], 0) without torchrun."""
    if not dist.is_initialized():
        return [obj], 0
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered, dist.get_rank()


def global_moments(x: np.ndarray) -> tuple:
    """Mean, variance and count of a float64 array over every process (scalars under torchrun)."""
    if not dist.is_initialized():
        return x.mean(0), x.var(0), x.shape[0]
    count, mean, var = x.shape[0], x.mean(0), x.var(0)
    moments = torch.tensor([count, count * mean, count * (var + mean**2)], dtype=torch.float64)
    dist.all_reduce(moments)
    mean = (moments[1] / moments[0]).item()
    return mean, (moments[2] / moments[0]).item() - mean**2, moments[0].item()


def global_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) std of x over every process of a torchrun job; of x alone without one."""
    if not dist.is_initialized():
        return x.mean(), x.std()
    moments = torch.stack([x.new_tensor(x.numel()), x.sum(), x.square().sum()]).double()
    dist.all_reduce(moments)
    count, total, total_sq = moments
    mean = total / count
    return mean.to(x.dtype), ((total_sq - count * mean**2) / (count - 1)).sqrt().to(x.dtype)


def broadcast_from_rank_0(networks: dict) -> None:
    """Every process's weights and buffers become rank 0's."""
    for tensor in (t for module in networks.values() for t in module.state_dict().values()):
        if dist.is_initialized():
            dist.broadcast(tensor, src=0)


def average_gradients(params: list) -> None:
    """Every process's gradient becomes the mean over every process's minibatch."""
    for p in params if dist.is_initialized() else ():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()


def mean_over_processes(stats: dict) -> dict:
    """Floats of a dict of scalar tensors, averaged over every torchrun process."""
    if dist.is_initialized():
        averaged = torch.stack(list(stats.values()))
        dist.all_reduce(averaged)
        stats = dict(zip(stats, averaged / dist.get_world_size()))
    return {name: value.item() for name, value in stats.items()}


def main():
    args, checkpoint = parse_args()
    if args.eval_checkpoint:
        return evaluate_checkpoint(args, checkpoint)
    rank, world_size, device, autocast = setup(args)
    run_dir, checkpoint_path = open_run_dir(args, rank)
    T, N = args.num_steps, args.num_envs
    batch_size = N * T * world_size  # agent steps of an iteration, all processes
    num_iterations = args.total_timesteps // batch_size
    start_iteration = checkpoint["iteration"] if checkpoint else 0
    rng, env_seed = seed_everything(args, rank, start_iteration * world_size + rank)

    # Envs (ALE cannot save them: a resumed run's start new episodes), the observation statistics of a
    # random agent (on resume: the checkpoint's)
    envs, episodes = make_envs(args.env_id, N, args.max_episode_steps), EpisodeStats(N)
    num_actions = envs.single_action_space.n
    ob_mean, ob_std = np.zeros(envs.single_observation_space.shape), 1.0
    if checkpoint is None and rank == 0:  # the other processes get rank 0's with its weights
        ob_mean, ob_std = random_agent_obs_stats(args, env_seed, rng)
    next_obs = torch.from_numpy(envs.reset(seed=env_seeds(env_seed, N))[0]).to(device)

    # Networks: policy, feature encoder phi and forward model f, under one Adam
    networks = build_networks(args, num_actions, ob_mean, ob_std, device)
    obs_norm, policy, phi, forward_model = networks.values()
    params = [p for m in (policy, phi, forward_model) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.learning_rate, eps=1e-8, fused=True)  # one kernel: 3x faster
    reward_filter, reward_rms = RewardForwardFilter(args.gamma, N), RunningMeanStd()
    global_step, _ = restore(checkpoint, rank, args, networks, optimizer, reward_rms, reward_filter, episodes,
                             rng, device)
    broadcast_from_rank_0(networks)  # every process starts from rank 0's weights and observation statistics

    # Storage: uint8 frames, channels-last as ObservationNorm's output; obs[T]: the one after the last step
    obs = torch.zeros((T + 1, N, 84, 84, 4), dtype=torch.uint8, device=device).movedim(-1, -3)  # T+1,N,C,H,W
    actions = torch.zeros((T, N), dtype=torch.long, device=device)
    logprobs, values, ext_rewards, dones = (torch.zeros((T, N), device=device) for _ in range(4))

    writer = open_logs(args, run_dir, checkpoint is not None, global_step) if rank == 0 else None
    print(f"run {os.path.basename(run_dir)}: {num_iterations} iterations of {batch_size} steps on {device}")
    snapshot, ended_by, failure, start_time = checkpoint, None, None, time.time()  # snapshot: last state
    try:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            timer = PhaseTimer(sync=args.profile and device.type == "cuda")

            # 1. Rollout with the current stochastic policy; envs are never reset between rollouts
            for t in range(T):
                stop_point()
                obs[t] = next_obs
                with torch.no_grad(), autocast():
                    logits, values[t] = policy(obs_norm(next_obs))
                    pi = Categorical(logits=logits)
                    actions[t] = pi.sample()
                    logprobs[t] = pi.log_prob(actions[t])
                timer.lap("inference")
                next_obs_np, reward, terminated, truncated, info = envs.step(actions[t].cpu().numpy())
                episodes.update(reward, terminated, truncated, info)
                ext_rewards[t], dones[t] = torch.from_numpy(reward), torch.from_numpy(terminated | truncated)
                next_obs = torch.from_numpy(next_obs_np).to(device)
                timer.lap("env")
            obs[T] = next_obs
            global_step += batch_size

            with torch.no_grad(), autocast():
                # 2. Intrinsic reward: the forward model's prediction error (eq. 1), plus the clipped game
                # reward when --ext-coef > 0, divided by the running std of its discounted sum
                int_rewards, features, feature_std = intrinsic_reward(
                    phi, forward_model, obs_norm, obs, actions, args.num_minibatches)
                rewards = args.ext_coef * ext_rewards.clamp(-1, 1) + args.int_coef * int_rewards
                rewards = normalize_rewards(rewards, reward_filter, reward_rms)

                # 3. Advantages (GAE), normalised once over the whole rollout
                next_value = policy(obs_norm(next_obs))[1]
                advantages, returns = gae(rewards, values, next_value, dones, args.gamma, args.gae_lambda,
                                          args.use_dones)
                advantages_mean, advantages_std = global_mean_std(advantages)
                advantages = (advantages - advantages_mean) / (advantages_std + 1e-8)
            timer.lap("rewards")

            # 4. Update: PPO + forward-model loss + the feature method's loss, one Adam step per minibatch
            stats = {}
            for epoch in range(args.update_epochs):
                for envs_np in minibatch_envs(N, args.num_minibatches, rng):
                    stop_point()
                    mb = torch.from_numpy(envs_np).to(device)
                    with autocast():  # a no-op unless --bf16; backward runs outside it, as torch advises
                        loss, mb_stats = update_loss(
                            policy, phi, forward_model, obs_norm(obs[:, mb]), actions[:, mb], logprobs[:, mb],
                            advantages[:, mb], returns[:, mb], None if features is None else features[:, mb],
                            args)
                    optimizer.zero_grad()
                    loss.backward()
                    average_gradients(params)
                    if args.max_grad_norm > 0:
                        nn.utils.clip_grad_norm_(params, args.max_grad_norm)
                    optimizer.step()
                    for name, value in mb_stats.items():  # the log shows each loss's mean over minibatches
                        stats[name] = stats.get(name, 0) + value / (args.update_epochs * args.num_minibatches)
            timer.lap("update")

            # 5. Log (means over every process; episodes that ended in this rollout)
            scalars = {
                **mean_over_processes(stats),
                "losses/explained_variance": explained_variance(values.flatten(), returns.flatten()),
                "charts/SPS": int(batch_size / (time.perf_counter() - timer.start)),  # of this iteration
                "charts/frames": 4 * global_step,
                "charts/intrinsic_reward_mean": int_rewards.mean().item(),
                "charts/reward_rms_std": float(np.sqrt(reward_rms.var)),
                "charts/feature_std": feature_std,
                **{f"charts/{phase}_seconds": seconds for phase, seconds in timer.seconds.items()},
                **episodes.log(),
            }
            log_iteration(writer, scalars, global_step, (start_iteration, iteration, num_iterations),
                          start_time, episodes.recent_returns, timer.seconds if args.profile else None)

            # 6. Save: never garbage. A non-finite loss or reward stops the run at the last good state
            if failed := first_non_finite(scalars, networks):
                failure = f"error: {failed} became NaN or infinite in iteration {iteration}; training stopped"
                break
            snapshot = training_state(args, iteration, global_step, networks, optimizer, reward_rms,
                                      reward_filter, episodes, rng, device)
            if rank == 0 and args.save_every and iteration % args.save_every == 0:
                if error := save_checkpoint(snapshot, checkpoint_path):
                    print(f"warning: {error}; training goes on", flush=True)
                if args.capture_video:
                    record_video(policy, obs_norm, args, run_dir, global_step, iteration)
    except Exception as error:  # a stop (Stop) or a crash: either way, the last finished iteration is saved
        ended_by = error
    finish(snapshot, checkpoint, checkpoint_path, failure, ended_by, params, [envs, writer])


if __name__ == "__main__":
    main()
