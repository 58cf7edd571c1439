"""Behaviour of curiosity_rf.py: each test checks a piece of the algorithm against numbers worked out
by hand or by numpy, and the end-to-end tests run the real script on a real Atari game."""
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, load_script, read_scalars, reference_frame_stack, run_script

EPISODE_TAGS = {"charts/episodic_return", "charts/episodic_length", "charts/episodes"}  # once an episode ends
SPEC_TAGS = EPISODE_TAGS | {
    "charts/SPS", "charts/frames",
    "charts/intrinsic_reward_mean", "charts/reward_rms_std", "charts/feature_std",
    "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac",
    "losses/explained_variance", "losses/dynamics_loss",
}


# ---------------------------------------------------------------- reward normalisation
def test_reward_filter_runs_along_time_and_persists_across_rollouts(rf):
    gamma = 0.5
    reward_filter, reward_rms = rf.RewardForwardFilter(gamma, num_envs=2), rf.RunningMeanStd()
    rewards = np.zeros((3, 2))  # (T, N): env 0 gets 1 at t=0, env 1 gets 4 at t=2
    rewards[0, 0], rewards[2, 1] = 1.0, 4.0
    normalised = rf.normalize_rewards(torch.as_tensor(rewards), reward_filter, reward_rms)
    assert normalised.dtype == torch.float32
    normalised = normalised.double().numpy()
    # Along time, per env: env 0 decays 1, .5, .25; env 1 is 0, 0, 4. Along the env axis it would mix them.
    filtered = np.array([[1.0, 0.0], [0.5, 0.0], [0.25, 4.0]])
    np.testing.assert_allclose(reward_filter.rewems, [0.25, 4.0])
    np.testing.assert_allclose(reward_rms.mean, filtered.mean(), rtol=1e-4)
    np.testing.assert_allclose(reward_rms.var, filtered.var(), rtol=1e-4)
    np.testing.assert_allclose(normalised, rewards / np.sqrt(reward_rms.var), rtol=1e-6)
    assert normalised[0, 0] == pytest.approx(1 / filtered.std(), rel=1e-4)  # the mean is not subtracted

    # Next rollout: the filter carries on from where it stopped (never reset, not even at episode ends)
    rf.normalize_rewards(torch.zeros((2, 2)), reward_filter, reward_rms)
    np.testing.assert_allclose(reward_filter.rewems, [0.25 * gamma**2, 4.0 * gamma**2])
    assert reward_rms.count == pytest.approx(10 + 1e-4)


def test_running_mean_std_merge_matches_numpy(rf):
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (7, 100, 1, 33)]
    rms = rf.RunningMeanStd()
    for batch in batches:
        rms.update(batch)
    everything = np.concatenate(batches)
    assert rms.count == pytest.approx(len(everything) + 1e-4)
    np.testing.assert_allclose(rms.mean, everything.mean(), rtol=1e-5)
    np.testing.assert_allclose(rms.var, everything.var(), rtol=1e-5)


# ---------------------------------------------------------------- advantages
def test_gae_matches_hand_worked_example(rf):
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.4], [0.3]])
    next_value = torch.tensor([0.2])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ended with step 1
    gamma, lam = 0.9, 0.8
    # Without dones (pure curiosity): bootstrap through the episode end.
    #   delta = [1 + .9*.4 - .5, 0 + .9*.3 - .4, 2 + .9*.2 - .3] = [.86, -.13, 1.88]
    #   A2 = 1.88; A1 = -.13 + .72*1.88 = 1.2236; A0 = .86 + .72*1.2236 = 1.740992
    adv, ret = rf.gae(rewards, values, next_value, dones, gamma, lam, use_dones=False)
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.740992, 1.2236, 1.88]))
    torch.testing.assert_close(ret, adv + values)
    # With dones: step 1 neither bootstraps from V(x_2) nor sees A2. A1 = -.4; A0 = .86 + .72*(-.4) = .572
    adv, ret = rf.gae(rewards, values, next_value, dones, gamma, lam, use_dones=True)
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.572, -0.4, 1.88]))
    torch.testing.assert_close(ret, adv + values)


def test_minibatches_are_whole_env_trajectories(rf):
    groups = rf.minibatch_envs(16, 4, np.random.default_rng(0))
    assert groups.shape == (4, 4)
    assert sorted(groups.ravel().tolist()) == list(range(16))  # every env once per epoch
    assert not np.array_equal(groups.ravel(), np.arange(16))  # shuffled
    # The update indexes storage as [:, envs]: all T steps of each chosen env, nothing else
    storage = torch.arange(5 * 16).view(5, 16)  # (T, N)
    for envs in groups:
        assert storage[:, torch.from_numpy(envs)].shape == (5, 4)


# ---------------------------------------------------------------- networks
def test_forward_loss_never_reaches_the_encoder_and_policy_has_its_own(rf):
    torch.manual_seed(0)
    num_actions, dim = 4, 32
    phi, forward_model, policy = rf.Features(dim, num_actions), rf.ForwardModel(dim, num_actions), rf.Policy(num_actions)
    phi_ids = {id(p) for p in phi.parameters()}
    assert phi_ids and phi_ids.isdisjoint(id(p) for p in policy.parameters())
    before = {k: v.clone() for k, v in phi.state_dict().items()}

    x = torch.randn(6, 3, 4, 84, 84)  # (T+1, n) normalised frames
    actions = torch.randint(num_actions, (5, 3))
    features, aux_loss, _ = phi.loss(x, actions)
    features.requires_grad_(True)  # even a differentiable input must get no gradient from the forward loss
    optimizer = torch.optim.Adam([*forward_model.parameters(), *policy.parameters()], lr=1e-2)
    loss = rf.prediction_error(forward_model, features, actions).mean() + aux_loss
    loss.backward()
    assert features.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in forward_model.parameters())
    optimizer.step()
    for k, v in phi.state_dict().items():
        assert torch.equal(v, before[k]), f"random encoder changed: {k}"
    assert not any(p.requires_grad for p in phi.parameters())


def test_intrinsic_reward_is_mean_over_feature_dims_of_squared_error(rf):
    torch.manual_seed(0)
    forward_model = rf.ForwardModel(8, 3, hidden=16)
    features = torch.randn(4, 2, 8)  # (T+1, n, D)
    actions = torch.randint(3, (3, 2))
    reward = rf.prediction_error(forward_model, features, actions)
    assert reward.shape == (3, 2)
    for t in range(3):
        for e in range(2):
            pred = forward_model(features[t, e][None], actions[t, e][None])[0]
            expected = ((pred - features[t + 1, e]) ** 2).sum() / 8
            assert reward[t, e].item() == pytest.approx(expected.item(), rel=1e-5)


def test_intrinsic_reward_of_a_rollout_is_the_same_in_any_number_of_chunks(rf):
    torch.manual_seed(0)
    phi, forward_model = rf.Features(16, 4), rf.ForwardModel(16, 4, hidden=32)
    obs_norm = rf.ObservationNorm(np.full((4, 84, 84), 100.0), 50.0)
    obs = torch.randint(0, 256, (5, 6, 4, 84, 84), dtype=torch.uint8)  # (T+1, N) frames
    actions = torch.randint(4, (4, 6))
    with torch.no_grad():
        rewards, features, feature_std = rf.intrinsic_reward(phi, forward_model, obs_norm, obs, actions, 3)
        whole = rf.apply_flat(phi, obs_norm(obs))
        expected = rf.prediction_error(forward_model, whole, actions)
    assert rewards.shape == (4, 6) and features.shape == (5, 6, 16) and features.dtype == torch.float32
    torch.testing.assert_close(rewards, expected)  # chunks of 2 envs, one pass: the same rewards
    torch.testing.assert_close(features, whole)  # phi is fixed: the update reuses these
    chunks = (slice(0, 2), slice(2, 4), slice(4, 6))
    chunk_stds = [whole[:, envs].flatten(0, 1).std(0).mean() for envs in chunks]
    assert feature_std == pytest.approx(torch.stack(chunk_stds).mean().item(), rel=1e-6)


def test_ppo_loss_at_the_rollout_policy_is_minus_the_mean_advantage(rf):
    torch.manual_seed(0)
    policy, x = rf.Policy(3, hidden=32), torch.randn(2, 4, 4, 84, 84)  # (T, n)
    actions, advantages, returns = torch.randint(3, (2, 4)), torch.randn(2, 4), torch.randn(2, 4)
    args = rf.Args(clip_coef=0.1, ent_coef=0.01, vf_coef=0.5)
    with torch.no_grad():
        logits, value = policy(x.flatten(0, 1))
        logprobs = torch.distributions.Categorical(logits=logits).log_prob(actions.flatten()).view(2, 4)
    loss, stats = rf.ppo_loss(policy, x, actions, logprobs, advantages, returns, args)
    # ratio 1 everywhere: no clipping, no KL, and the surrogate is -mean(A)
    assert stats["losses/policy_loss"].item() == pytest.approx(-advantages.mean().item(), abs=1e-6)
    assert stats["losses/clipfrac"].item() == 0
    assert stats["losses/approx_kl"].item() == pytest.approx(0, abs=1e-9)
    v_loss = 0.5 * (value - returns.flatten()).pow(2).mean()
    entropy = torch.distributions.Categorical(logits=logits).entropy().mean()
    assert stats["losses/value_loss"].item() == pytest.approx(v_loss.item(), rel=1e-5)
    expected = -advantages.mean() - 0.01 * entropy + 0.5 * v_loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()  # the loss trains the policy
    assert all(p.grad is not None for p in policy.parameters())

    # Far from the rollout policy, the clipped ratio caps what one step can gain
    loss_far, stats_far = rf.ppo_loss(policy, x, actions, logprobs - 1.0, advantages.abs(), returns, args)
    assert stats_far["losses/clipfrac"].item() == 1.0  # every ratio is e, outside [0.9, 1.1]
    capped = -1.1 * advantages.abs().mean().item()
    assert stats_far["losses/policy_loss"].item() == pytest.approx(capped, rel=1e-5)


def test_forward_model_sees_the_action_at_every_layer(rf):
    forward_model = rf.ForwardModel(8, 3, hidden=16, num_blocks=2)
    layers = [forward_model.inp, *[d for block in forward_model.blocks for d in block], forward_model.out]
    assert [layer.in_features for layer in layers] == [8 + 3] + [16 + 3] * 4 + [16 + 3]
    x = torch.randn(5, 8)
    assert not torch.allclose(forward_model(x, torch.zeros(5, dtype=torch.long)),
                              forward_model(x, torch.ones(5, dtype=torch.long)))


def test_cached_features_equal_recomputed_ones(rf):
    phi = rf.Features(16, 4)
    x = torch.randn(3, 2, 4, 84, 84)
    features, aux_loss, stats = phi.loss(x, torch.zeros(2, 2, dtype=torch.long))
    assert rf.Features.cache and aux_loss.item() == 0 and stats == {}
    torch.testing.assert_close(features, rf.apply_flat(phi, x))


def test_reference_initialisation_and_leaky_slope(rf):
    torch.manual_seed(0)
    policy = rf.Policy(6)
    norms = policy.logits.weight.norm(dim=1)  # normc: every unit's weight vector has norm 1
    torch.testing.assert_close(norms, torch.ones(6))
    assert torch.all(policy.logits.bias == 0)
    slopes = [m.negative_slope for m in rf.conv_trunk(8) if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes == [0.2, 0.2, 0.2]
    assert rf.conv_trunk(8)(torch.zeros(2, 4, 84, 84)).shape == (2, 8)


# ---------------------------------------------------------------- observations and envs
class _FrameEnv:
    """Stands in for the vector env: step returns pre-drawn frames, to check the statistics exactly."""

    class _Space:
        n = 3

    def __init__(self, frames):
        self.frames, self.i = frames, 0
        self.num_envs = frames.shape[1]
        self.single_observation_space = type("S", (), {"shape": frames.shape[2:]})
        self.single_action_space = self._Space()

    def reset(self, seed=None):
        return self.frames[0], {}  # the reset's frame is not counted, as in the scripts

    def step(self, actions):
        self.i += 1
        return (self.frames[self.i - 1],)

    def close(self):
        pass


def test_observation_mean_is_per_pixel_and_std_one_scalar(rf, monkeypatch):
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 3, 2, 4, 4)).astype(np.uint8)
    built = []
    monkeypatch.setattr(rf, "make_envs", lambda *a: built.append(a) or _FrameEnv(frames))
    args = rf.Args(obs_norm_envs=3, obs_norm_steps=15)
    mean, std = rf.random_agent_obs_stats(args, seed=0, rng=np.random.default_rng(0))
    assert built == [(args.env_id, 3, args.max_episode_steps)]  # envs of their own, --obs-norm-envs of them
    flat = frames.reshape(15, 2, 4, 4).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0))
    assert np.ndim(std) == 0
    assert std == pytest.approx(flat.std(0).mean())  # per-pixel std averaged over pixels, not std of all pixels
    norm = rf.ObservationNorm(mean, std)
    assert norm.std.shape == ()
    x = norm(torch.from_numpy(frames[0]))
    torch.testing.assert_close(x, (torch.from_numpy(flat[:3]) - torch.from_numpy(mean)).float() / float(std))
    assert x.is_contiguous(memory_format=torch.channels_last)  # the layout the CPU's convs train fastest in
    sequence = norm(torch.from_numpy(frames))  # (T, n, C, H, W): flattening T and n keeps channels-last
    assert sequence.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(sequence[0], x, rtol=0, atol=0)


@pytest.mark.parametrize("env_id, rom, sticky", [
    ("BreakoutNoFrameskip-v4", "breakout", 0.0),
    ("MontezumaRevengeNoFrameskip-v4", "montezuma_revenge", 0.0),
    ("ALE/Breakout-v5", "breakout", 0.25),
    ("ALE/PrivateEye-v5", "private_eye", 0.25),
    ("ALE/MsPacman-v5", "ms_pacman", 0.25),
])
def test_env_id_maps_to_rom_and_sticky_actions(rf, env_id, rom, sticky):
    assert rf.ale_game(env_id) == (rom, sticky)


@pytest.mark.parametrize("env_id", ["Breakout-v4", "BreakoutNoFrameskip-v5", "ALE/NotAGame-v5", "Pong-v0",
                                    "breakoutNoFrameskip-v4", "ALE/breakout-v5", "SpaceinvadersNoFrameskip-v4"])
def test_bad_env_id_stops_with_a_hint(rf, env_id):
    with pytest.raises(SystemExit, match="BreakoutNoFrameskip-v4"):
        rf.ale_game(env_id)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "", "benchmarks.worlds:Maze-v0"])
def test_an_id_that_is_no_atari_game_is_a_gymnasium_worlds_and_an_unknown_one_stops_there(rf, env_id):
    assert rf.ale_game(env_id) is None  # tests/test_worlds.py: the door takes it, or says why not
    if env_id == "":
        with pytest.raises(SystemExit, match="^error: --env-id '' is no Atari game, and gymnasium cannot make it"):
            rf.check_world(env_id)


def test_frame_stack_copies_the_first_frame_at_reset_and_autoreset(rf):
    stacked = rf.make_envs("BreakoutNoFrameskip-v4", 2, max_episode_steps=6)
    single = rf.make_envs("BreakoutNoFrameskip-v4", 2, max_episode_steps=6).envs  # the same ALE env, unstacked
    assert single.single_observation_space.shape == (1, 84, 84)
    assert stacked.single_observation_space.shape == (4, 84, 84)
    obs, frames, dones = [stacked.reset(seed=3)[0]], [single.reset(seed=3)[0]], []
    rng = np.random.default_rng(0)
    for _ in range(20):
        actions = rng.integers(stacked.single_action_space.n, size=2)
        o, _, terminated, truncated, _ = stacked.step(actions)
        f, *_ = single.step(actions)
        obs.append(o)
        frames.append(f)
        dones.append(terminated | truncated)
    stacked.close()
    single.close()
    obs = np.stack(obs)
    np.testing.assert_array_equal(obs, reference_frame_stack(frames, dones))  # frame by frame, every step
    starts = [obs[0]] + [obs[t + 1][done] for t, done in enumerate(dones) if done.any()]
    assert len(starts) == 4  # the reset and three autoresets (the 6-step cap)
    for start in starts:
        assert start.any() and (start == start[:, -1:]).all()  # 4 copies of the first frame, never black
    assert (obs[3, :, 0] != obs[3, :, 3]).any()  # the frames do change, so the check above has teeth


def test_evaluation_sees_what_the_training_envs_show(rf):
    seen = []

    class Recorder(torch.nn.Module):  # a policy that always plays NOOP (greedy on equal logits)
        def forward(self, x):
            seen.append(x.numpy().copy())
            return torch.zeros(len(x), 4), torch.zeros(len(x))

    args = rf.Args(num_envs=2, max_episode_steps=8)
    norm = rf.ObservationNorm(np.zeros((4, 84, 84)), 1.0)  # x = obs: the policy sees the raw frames
    scores, lengths, counters = rf.evaluate(Recorder(), norm, args, episodes=2, greedy=True, seed=7)
    assert lengths.tolist() == [8, 8] and counters == {}  # (Atari: no counters)
    envs = rf.make_envs(args.env_id, 2, args.max_episode_steps)
    expected = [envs.reset(seed=7)[0]] + [envs.step(np.zeros(2, np.int64))[0] for _ in range(len(seen) - 1)]
    envs.close()
    np.testing.assert_array_equal(np.stack(seen), np.stack(expected).astype(np.float32))
    assert (seen[0] == seen[0][:, -1:]).all()  # evaluation starts from copies too


def test_warmup_statistics_match_the_reference_like_estimate(rf):
    """The reference: one env, 10,000 random steps, copy-filled stacks, averaged over seeds 1-3 (one such
    estimate moves by about 10% from seed to seed); the scripts: their default warm-up, over the same seeds,
    side by side in threads (ALE steps its emulators outside the GIL). The reference's estimate is the
    same numbers at every run, so it is read from a file (half of the test's 34 s), written by
    `python benchmarks/obs_stats.py --games Breakout --reference-seeds 3 --seeds 0 --save-reference
    tests/data/breakout_reference_obs_stats.npz` (the seeds' stds 1.769, 1.955, 2.020)."""
    import obs_stats

    reference = np.load(ROOT / "tests" / "data" / "breakout_reference_obs_stats.npz")
    args = rf.Args()
    with ThreadPoolExecutor() as pool:
        ours = list(pool.map(lambda seed: obs_stats.estimate(rf, "BreakoutNoFrameskip-v4", args.obs_norm_envs,
                                                             args.obs_norm_steps, seed), [1, 2, 3]))
    std = np.mean([s for _, s, _ in ours])
    assert std == pytest.approx(float(reference["std"]), rel=0.05)  # episode starts only (128 envs): 27% too low
    assert np.abs(np.mean([m for m, _, _ in ours], 0) - reference["mean"]).max() < 15  # episode starts: 44 grey levels


def test_episode_stats_reset_on_truncation_in_a_real_env(rf):
    envs = rf.make_envs("BreakoutNoFrameskip-v4", 2, max_episode_steps=20)
    envs.reset(seed=0)
    stats = rf.EpisodeStats(2)
    ended = []
    for step in range(25):
        _, reward, terminated, truncated, _ = envs.step(np.zeros(2, dtype=np.int64))  # NOOP: never dies
        returns, lengths = stats.update(reward, terminated, truncated)
        if truncated.any():
            assert not terminated.any()
            ended.append((step, lengths.tolist()))
    envs.close()
    assert ended == [(19, [20, 20])]  # the 4500-step cap, scaled down, ends episodes
    assert stats.lengths.tolist() == [5, 5]  # counting restarted after the cut


def test_episode_stats_use_raw_rewards(rf):
    stats = rf.EpisodeStats(2)
    stats.update(np.array([7, 1]), np.array([False, False]), np.array([False, False]))
    returns, lengths = stats.update(np.array([3, 0]), np.array([True, False]), np.array([False, False]))
    assert returns.tolist() == [10.0] and lengths.tolist() == [2]  # not clipped to 1 per step
    assert stats.returns.tolist() == [0.0, 1.0]


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize("overrides, message", [
    ({"num_envs": 12, "num_minibatches": 8}, "must be divisible by --num-minibatches"),
    ({"num_steps": 0}, "--num-steps must be between 1 and 2,147,483,647, got 0"),
    ({"update_epochs": -1}, "--update-epochs must be between 1 and 2,147,483,647"),
    ({"total_timesteps": 100}, r"less than one iteration \(--num-envs x --num-steps = 16384\)"),
    ({"env_id": "Pong-v0"}, "names no Atari game"),
    ({"seed": -1}, "--seed must be between 0 and 2,147,483,647, got -1"),
    ({"seed": 2**31}, "--seed must be between 0 and 2,147,483,647, got 2147483648"),  # numpy and ALE: C ints
    ({"seed": 2**32}, "--seed must be between 0 and 2,147,483,647"),
    ({"max_episode_steps": 2**32}, "--max-episode-steps must be between 1 and 536,870,911"),  # 4 frames a step
    ({"feature_dim": 10**9}, "--feature-dim must be between 1 and 65,536"),
    ({"save_every": -1}, "--save-every must be between 0 and"),
    ({"learning_rate": float("nan")}, "--learning-rate must be positive and finite, got nan"),
    ({"learning_rate": float("inf")}, "--learning-rate must be positive and finite, got inf"),
    ({"int_coef": float("nan")}, "--int-coef must be 0 or more and finite"),
    ({"ent_coef": -0.1}, "--ent-coef must be 0 or more"),
    ({"gamma": 1.5}, "--gamma must be between 0 and 1, got 1.5"),
    ({"gae_lambda": float("nan")}, "--gae-lambda must be between 0 and 1"),
    ({"clip_coef": -0.1}, "--clip-coef must be positive and finite"),
    ({"exp_name": "../.."}, "--exp-name '../..' names a folder in --log-dir"),
    ({"exp_name": "run\n2"}, r"--exp-name 'run\\n2' names a folder in --log-dir: printable"),  # one shell word
    ({"log_dir": ""}, "--log-dir '' names no folder"),  # what an unset shell variable gives
    ({"log_dir": "  "}, "--log-dir '  ' names no folder"),
    ({"resume": "a.pt", "eval_checkpoint": "b.pt"}, "not both"),
    ({"num_envs": 100_000, "num_minibatches": 1},
     r"need about \d+ GiB of memory, .* for --num-envs x --num-steps \(the rollout's frames\)"),
    ({"obs_norm_envs": 100_000, "obs_norm_steps": 10**6}, r"for --num-envs and --obs-norm-envs \(the emulators\)"),
    ({"obs_norm_envs": 2**31 - 1}, "--obs-norm-envs 2147483647 is more than --obs-norm-steps 10000"),
    ({"int_coef": 0.0}, "--int-coef 0 and --ext-coef 0 leave a reward of zero to train on"),
    ({"exp_name": "x" * 250}, "--exp-name is too long"),
])
def test_impossible_args_stop_with_one_line(rf, overrides, message):
    args = rf.Args(**overrides)
    with pytest.raises(SystemExit, match=message) as err:
        rf.check_args(args)
    assert "\n" not in str(err.value.code)


def test_every_atari_id_of_gymnasium_is_accepted_as_it_spells_it(rf):
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    ids = [i for i in gym.registry if i.endswith("NoFrameskip-v4") or (i.startswith("ALE/") and i.endswith("-v5"))]
    assert len(ids) > 100
    for env_id in ids:
        assert rf.ale_game(env_id)[0] == gym.spec(env_id).kwargs["game"]


def test_a_budget_of_part_of_an_iteration_says_where_training_stops(rf, capsys):
    rf.check_args(rf.Args(num_envs=4, num_minibatches=2, num_steps=32, total_timesteps=300))
    assert capsys.readouterr().out == ("note: --total-timesteps 300 is not a whole number of iterations of 128 "
                                       "steps: training stops at 256\n")
    rf.check_args(rf.Args(num_envs=4, num_minibatches=2, num_steps=32, total_timesteps=256))
    assert capsys.readouterr().out == ""
    rf.check_args(rf.Args())  # the paper's 10^8 steps, not a whole number of 16,384: the default says nothing
    assert capsys.readouterr().out == ""


def test_a_mistyped_game_stops_before_any_network_is_built(rf, monkeypatch):
    """Building on the meta device first imports torch._dynamo (about 2 s of a new interpreter's start)."""
    monkeypatch.setattr(rf, "build_networks", lambda *a: pytest.fail("networks built before the env id's check"))
    with pytest.raises(SystemExit, match="'BrekoutNoFrameskip-v4' names no Atari game"):
        rf.check_args(rf.Args(env_id="BrekoutNoFrameskip-v4"))


@pytest.mark.parametrize("name", ["curiosity_rf", "curiosity_idf", "curiosity_vae", "curiosity_pixels",
                                  "curiosity_extrinsic_mix"])
def test_the_memory_estimate_builds_every_network_without_allocating_it(name, monkeypatch):
    script = load_script(name)
    needs = script.memory_needed(script.Args())
    assert needs["--num-envs x --num-steps (the rollout's frames)"] == 129 * 128 * 4 * 84 * 84
    assert needs["--num-envs and --obs-norm-envs (the emulators)"] == (128 + 8) * script.ENV_BYTES
    world = script.memory_needed(script.Args(env_id="benchmarks.worlds:TwoPlayerPong-v0"))  # a process an env
    assert world["--num-envs and --obs-norm-envs (the emulators)"] == (128 + 8) * script.WORLD_ENV_BYTES
    networks = (script.Policy(36), script.Features(512, 36), script.ForwardModel(512, 36))  # two-player Pong
    assert needs["--feature-dim (the networks)"] == 24 * sum(p.numel() for n in networks for p in n.parameters())
    huge = script.memory_needed(script.Args(feature_dim=2**16))["--feature-dim (the networks)"]  # on meta: free
    assert huge > 20 * needs["--feature-dim (the networks)"]
    monkeypatch.setattr(script.os, "sysconf", lambda name: 2**20 if name == "SC_PHYS_PAGES" else 4096)  # 4 GiB
    with pytest.raises(SystemExit, match=r"GiB of it for --feature-dim \(the networks\)"):
        script.check_args(script.Args(num_envs=8, num_minibatches=2, feature_dim=2**16))


def test_a_budget_below_one_iteration_of_all_processes_stops(rf, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun --nproc_per_node 2
    args = rf.Args(num_envs=4, num_minibatches=2, num_steps=32, total_timesteps=128)  # one process's rollout
    with pytest.raises(SystemExit, match=r"--total-timesteps 128 is less than one iteration "
                                         r"\(--num-envs x --num-steps x 2 processes = 256\)"):
        rf.check_args(args)
    rf.check_args(rf.Args(num_envs=4, num_minibatches=2, num_steps=32, total_timesteps=256))


def test_capture_video_without_pyav_stops_before_any_work(rf, monkeypatch):
    monkeypatch.setattr(rf.importlib.util, "find_spec", lambda name: None)  # as on a machine without PyAV
    with pytest.raises(SystemExit, match="--capture-video writes mp4 files with PyAV: pip install av"):
        rf.check_args(rf.Args(capture_video=True))


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = run_script("curiosity_rf", "--env-id", "NotAGameNoFrameskip-v4", "--log-dir", str(tmp_path))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "BreakoutNoFrameskip-v4" in result.stderr
    assert not any(tmp_path.iterdir())  # stopped before any work
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_script("curiosity_rf", *TINY, "--log-dir", str(blocker / "runs"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "writable --log-dir" in result.stderr


def test_help_documents_every_argument():
    result = run_script("curiosity_rf", "--help")
    assert result.returncode == 0
    for flag in ("--env-id", "--num-envs", "--int-coef", "--ext-coef", "--use-dones", "--feature-dim",
                 "--obs-norm-steps", "--max-episode-steps", "--max-grad-norm", "--capture-video"):
        assert flag in result.stdout
    assert "sticky actions" in result.stdout  # field docstrings reach --help


def test_help_into_a_closed_pipe_stops_quietly():
    """`--help | head -1`: the reader closes the pipe before the help is written; the script stops with a
    shell's 141 (128 + SIGPIPE) and no traceback (the other scripts share the code: test_consistency)."""
    process = subprocess.Popen([sys.executable, str(ROOT / "curiosity_rf.py"), "--help"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # before the script has imported torch, let alone printed
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 141 and stderr == "", (process.returncode, stderr)


# ---------------------------------------------------------------- end to end
def test_two_iterations_on_breakout_log_every_metric_and_repeat_exactly(tmp_path):
    runs = []
    for name in ("a", "b"):  # b in a new interpreter: the two runs share no process state
        result = run_script("curiosity_rf", *TINY, "--seed", "3", "--log-dir", str(tmp_path / name),
                            fresh=name == "b")
        assert result.returncode == 0, result.stderr
        assert "iter 2/2 step 128 frames 512" in result.stdout
        runs.append(read_scalars(tmp_path / name))
    scalars = runs[0]
    missing = SPEC_TAGS - EPISODE_TAGS - set(scalars)
    assert not missing, f"missing tags: {missing}"
    assert [step for step, _ in scalars["losses/policy_loss"]] == [64, 128]
    assert [v for _, v in scalars["charts/frames"]] == [256, 512]
    assert all(np.isfinite(v) for tag in scalars for _, v in scalars[tag])
    assert scalars["charts/intrinsic_reward_mean"][0][1] > 0
    assert scalars["losses/dynamics_loss"][0][1] > 0
    for tag in ("losses/policy_loss", "losses/value_loss", "losses/dynamics_loss", "charts/intrinsic_reward_mean"):
        assert runs[0][tag] == runs[1][tag], f"{tag} differs between two runs of the same seed"


def test_episodic_return_is_logged_when_episodes_end(tmp_path):
    # A 20-step cap makes every env finish episodes within the run
    result = run_script("curiosity_rf", *TINY, "--max-episode-steps", "20", "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    scalars = read_scalars(tmp_path)
    lengths = [v for _, v in scalars["charts/episodic_length"]]
    assert lengths and all(v <= 20 for v in lengths)
    assert "charts/episodic_return" in scalars
    assert scalars["charts/episodes"] == [(128, 4.0)]  # each of the 4 envs ends one, at its step 20 (iteration 2)


def test_the_progress_line_shows_one_goal_in_a_hundred_episodes(rf, capsys):
    scalars = {"charts/SPS": 200, "charts/intrinsic_reward_mean": 0.25}
    rf.log_iteration(None, scalars, 8192, (0, 2, 10), time.time() - 10.0, [0.0] * 99 + [1.0], None)
    line = capsys.readouterr().out.strip()
    assert line.startswith("iter 2/10 step 8,192 frames 32,768 SPS 200 return(last 100) 0.01 r_int 0.25 left ")
    assert line.endswith("00:00:40") or line.endswith("00:00:41")  # 10 s for 2 iterations, 8 to go
    rf.log_iteration(None, scalars, 8192, (0, 2, 10), time.time(), [], None)
    assert "return(last 100) n/a" in capsys.readouterr().out
