"""Behaviour of curiosity_extrinsic_mix.py: the reward mixture, the room-reading env backend against ALE's
native vector env, the room counter, and end-to-end runs on real games. Everything the script shares with
curiosity_rf.py is tested by test_rf.py and kept identical by test_consistency.py."""
import ast

import ale_py
import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, load_script, read_scalars, reference_frame_stack, run_script
from test_rf import SPEC_TAGS

MONTEZUMA = "MontezumaRevengeNoFrameskip-v4"


@pytest.fixture(scope="module")
def mix():
    return load_script("curiosity_extrinsic_mix")


def test_defaults_are_the_papers_sparse_reward_setting(mix):
    args = mix.Args()
    assert (args.ext_coef, args.int_coef, args.env_id) == (1.0, 0.01, MONTEZUMA)
    assert args.track_rooms and not args.room_envs_async and not args.use_dones
    assert mix.Features.cache  # random features, frozen: the same phi as curiosity_rf.py


# ---------------------------------------------------------------- the reward mixture
def _main_reward_expression():
    """The expression of main's line `rewards = ...` that mixes the two rewards, compiled as the script has it."""
    tree = ast.parse((ROOT / "curiosity_extrinsic_mix.py").read_text())
    (main,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    mixes = [n.value for n in ast.walk(main) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "rewards"
             and "ext_rewards" in ast.unparse(n.value)]
    assert len(mixes) == 1
    return ast.unparse(mixes[0]), compile(ast.Expression(mixes[0]), "main", "eval")


@pytest.mark.parametrize("int_coef", [0.01, 100.0])
def test_reward_mixture_clips_the_game_reward_only(mix, int_coef):
    text, expression = _main_reward_expression()
    assert text == "args.ext_coef * ext_rewards.clamp(-1, 1) + args.int_coef * int_rewards"
    ext = torch.tensor([[-3.0, -1.0, 0.0], [0.5, 2.0, 100.0]])  # (T, N) raw game rewards
    intr = torch.tensor([[0.5, 2.0, 3.0], [0.1, 0.0, 7.0]])
    args = mix.Args(int_coef=int_coef)
    rewards = eval(expression, {"args": args, "ext_rewards": ext, "int_rewards": intr})
    clipped = torch.tensor([[-1.0, -1.0, 0.0], [0.5, 1.0, 1.0]])
    torch.testing.assert_close(rewards, clipped + int_coef * intr)
    if int_coef == 100.0:  # the curiosity part is scaled, never clipped
        assert rewards[1, 2].item() == pytest.approx(701.0)


def test_with_int_coef_zero_the_training_reward_is_the_game_reward_alone(tmp_path):
    # Freeway: a random agent scores nothing in two tiny rollouts, so with int_coef 0 every training reward
    # is exactly 0 and the running variance is the prior (var 1, count 1e-4) merged with 64 zeros per rollout.
    result = run_script("curiosity_extrinsic_mix", *TINY, "--env-id", "FreewayNoFrameskip-v4", "--int-coef", "0",
                        "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    scalars = read_scalars(tmp_path)
    stds = [v for _, v in scalars["charts/reward_rms_std"]]
    assert stds == pytest.approx([np.sqrt(1e-4 / (64 + 1e-4)), np.sqrt(1e-4 / (128 + 1e-4))], rel=1e-4)
    assert scalars["charts/intrinsic_reward_mean"][0][1] > 0  # curiosity is computed, just weighted by 0
    assert not any(tag.startswith("charts/rooms") for tag in scalars)  # not Montezuma: the native env, no rooms
    assert "rooms visited" not in result.stdout


# ---------------------------------------------------------------- the room backend against the native env
@pytest.fixture
def native_without_noops(mix, monkeypatch):
    """make_envs exactly as the script builds it, but with no random no-ops, so both backends start alike."""
    native = ale_py.AtariVectorEnv
    monkeypatch.setattr(ale_py, "AtariVectorEnv", lambda *a, **kw: native(*a, **{**kw, "noop_max": 0}))
    return mix.make_envs


@pytest.mark.parametrize("env_id, cap, steps", [(MONTEZUMA, 25, 60), ("BreakoutNoFrameskip-v4", 4500, 300)])
def test_room_envs_equal_the_native_env_frame_for_frame(mix, native_without_noops, env_id, cap, steps):
    native = native_without_noops(env_id, 2, cap)
    python = mix.make_room_envs(env_id, 2, cap, noop_max=0)
    assert python.single_observation_space.shape == native.single_observation_space.shape == (4, 84, 84)
    assert python.single_observation_space.dtype == np.uint8 and python.num_envs == 2
    assert python.single_action_space.n == native.single_action_space.n
    a, b = native.reset(seed=0)[0], python.reset(seed=0)[0]
    np.testing.assert_array_equal(a, b)
    rng, ends, rewards = np.random.default_rng(0), [], 0.0
    for t in range(steps):
        actions = rng.integers(native.single_action_space.n, size=2)
        a, ra, ta, tra, _ = native.step(actions)
        b, rb, tb, trb, _ = python.step(actions)
        assert isinstance(b, np.ndarray) and b.dtype == np.uint8
        np.testing.assert_array_equal(a, b, err_msg=f"step {t}")  # resize, max-pool, stacking: all equal
        np.testing.assert_array_equal(ra, rb)  # raw game rewards, not clipped
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(tra, trb)
        rewards += rb.sum()
        if (tb | trb).any():
            ends.append((t, tb.tolist(), trb.tolist()))
            fresh = b[tb | trb]  # same-step autoreset: a fresh stack of 4 copies of the new episode's first frame
            assert fresh.any() and (fresh == fresh[:, -1:]).all()
    native.close()
    python.close()
    if env_id == MONTEZUMA:  # the cap, in agent steps, ends episodes as truncations
        assert ends == [(24, [False, False], [True, True]), (49, [False, False], [True, True])]
    else:  # game over ends episodes as terminations; a lost life does not
        assert ends and all(any(term) and not any(trunc) for _, term, trunc in ends)
        assert rewards > 1 and ends[0][0] > 100


def test_room_envs_stack_copies_the_first_frame_at_reset_and_autoreset(mix, native_without_noops):
    single = native_without_noops(MONTEZUMA, 2, 7).envs  # single ALE frames, bit for bit the room env's
    room = mix.make_room_envs(MONTEZUMA, 2, 7, noop_max=0)
    obs, frames, dones = [room.reset(seed=2)[0]], [single.reset(seed=2)[0]], []
    rng = np.random.default_rng(1)
    for _ in range(24):
        actions = rng.integers(room.single_action_space.n, size=2)
        o, _, terminated, truncated, _ = room.step(actions)
        obs.append(o)
        frames.append(single.step(actions)[0])
        dones.append(terminated | truncated)
    room.close()
    single.close()
    obs = np.stack(obs)
    np.testing.assert_array_equal(obs, reference_frame_stack(frames, dones))  # frame by frame, every step
    assert sum(done.all() for done in dones) == 3  # three autoresets (the 7-step cap)
    assert (obs[:, :, 0] != obs[:, :, 3]).any()  # the frames do change, so the check has teeth


def test_room_envs_with_noops_look_like_the_native_env(mix):
    native, python = mix.make_envs(MONTEZUMA, 4, 4500), mix.make_room_envs(MONTEZUMA, 4, 4500)
    a, b = native.reset(seed=1)[0], python.reset(seed=1)[0]
    native.close()
    python.close()
    assert a.shape == b.shape and a.dtype == b.dtype
    assert (a == a[:, -1:]).all() and (b == b[:, -1:]).all()  # 4 copies of the first frame, never black
    # Only the random number of no-op frames differs (the two backends draw it from different generators)
    assert np.abs(a[:, 3].astype(float) - b[:, 3]).mean() < 2.0


def test_room_envs_are_seeded_sticky_for_v5_ids_and_the_same_in_subprocesses(mix):
    envs = mix.make_room_envs("ALE/MontezumaRevenge-v5", 2, 4500)
    assert envs.envs[0].unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    envs.close()
    envs = mix.make_room_envs(MONTEZUMA, 2, 4500)
    assert envs.envs[0].unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    envs.close()
    with pytest.raises(SystemExit, match="names no Atari game"):  # ids as gymnasium spells them, case included
        mix.make_room_envs("montezumarevengeNoFrameskip-v4", 2, 4500)
    runs = []
    for asynchronous in (False, True):
        envs = mix.make_room_envs(MONTEZUMA, 2, 4500, asynchronous=asynchronous)
        frames = [envs.reset(seed=5)[0]]
        for action in (0, 3, 3, 4):
            frames.append(envs.step(np.full(2, action))[0])
        envs.close()
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])  # one seed, one run: in this process or in two others


# ---------------------------------------------------------------- rooms
def test_montezuma_starts_in_room_one_and_rooms_reach_the_tracker(mix):
    envs = mix.make_room_envs(MONTEZUMA, 2, max_episode_steps=5)
    _, info = envs.reset(seed=0)
    assert info["room"].tolist() == [1, 1]  # RAM byte 3: the first room of the pyramid is room 1
    tracker = mix.RoomTracker(2)
    for t in range(5):
        if t == 3:  # pretend env 0 walked into room 7 on its episode's second-to-last step
            envs.envs[0].unwrapped.ale.setRAM(3, 7)
        _, _, terminated, truncated, info = envs.step(np.zeros(2, dtype=np.int64))
        finished, new = tracker.update(info, terminated, truncated)
        assert new == ({1} if t == 0 else {7} if t == 3 else set())
    envs.close()
    # Step 5 hit the cap: the last room of each ended episode came through info["final_info"]
    assert truncated.all() and info["final_info"]["room"].tolist() == [7, 1] and info["room"].tolist() == [1, 1]
    assert finished == [2, 1] and tracker.seen == {1, 7}
    assert tracker.episode_rooms == [{1}, {1}]  # the next episodes start afresh, in room 1


def test_room_tracker_counts_rooms_per_episode_and_over_the_run(mix):
    tracker = mix.RoomTracker(3)
    no = np.zeros(3, dtype=bool)

    def step(rooms, terminated=no, truncated=no, final=None):
        info = {"room": np.array(rooms)}
        if final is not None:
            info["final_info"] = {"room": np.array(final)}
        return tracker.update(info, terminated, truncated)

    assert step([1, 1, 1]) == ([], {1})
    assert step([0, 1, 1]) == ([], {0})
    assert step([0, 2, 1]) == ([], {2})
    # env 0 dies in room 4 (terminated), env 2 hits the time cap (truncated); both restart in room 1
    finished, new = step([1, 2, 1], np.array([True, False, False]), np.array([False, False, True]), final=[4, 0, 1])
    assert finished == [3, 1] and new == {4}  # env 0 saw {1, 0, 4}, env 2 saw {1}; env 1 goes on
    assert tracker.episode_rooms == [{1}, {1, 2}, {1}]
    assert step([1, 2, 1]) == ([], set())
    assert tracker.seen == {0, 1, 2, 4}


# ---------------------------------------------------------------- end to end
def test_two_iterations_on_montezuma_log_every_metric_and_the_rooms(tmp_path):
    # A 20-step cap makes every env finish episodes within the run, so per-episode rooms are logged too
    result = run_script("curiosity_extrinsic_mix", *TINY, "--max-episode-steps", "20", "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "iter 2/2 step 128 frames 512" in result.stdout
    assert "rooms visited so far [1]" in result.stdout
    scalars = read_scalars(tmp_path)
    missing = (SPEC_TAGS | {"charts/rooms_visited", "charts/rooms_visited_total"}) - set(scalars)
    assert not missing, f"missing tags: {missing}"
    assert [step for step, _ in scalars["charts/rooms_visited_total"]] == [64, 128]
    assert all(v >= 1 for _, v in scalars["charts/rooms_visited_total"])
    assert all(v >= 1 for _, v in scalars["charts/rooms_visited"])
    assert all(v <= 20 for _, v in scalars["charts/episodic_length"])
    assert all(np.isfinite(v) for tag in scalars for _, v in scalars[tag])


def test_a_run_without_rooms_resumes_with_rooms(tmp_path):
    first = run_script("curiosity_extrinsic_mix", *TINY, "--no-track-rooms", "--room-envs-async", "--log-dir",
                       str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "note: --room-envs-async applies only to the room-tracking envs" in first.stdout  # not silently
    (run_dir,) = tmp_path.iterdir()
    resumed = run_script("curiosity_extrinsic_mix", "--resume", str(run_dir / "checkpoint.pt"), "--track-rooms",
                         "--total-timesteps", "256")
    assert resumed.returncode == 0, resumed.stderr
    assert "rooms visited so far [1]" in resumed.stdout  # the rooms count from the resume on
    assert [step for step, _ in read_scalars(tmp_path)["charts/rooms_visited_total"]] == [192, 256]


def test_help_documents_the_mix_arguments():
    result = run_script("curiosity_extrinsic_mix", "--help")
    assert result.returncode == 0
    for flag in ("--track-rooms", "--no-track-rooms", "--room-envs-async", "--int-coef", "--ext-coef", "--use-dones"):
        assert flag in result.stdout
    assert "RAM byte 3" in result.stdout
