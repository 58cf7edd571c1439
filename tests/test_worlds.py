"""Any gymnasium world through every script's one door (README, "Worlds"), and the paper's worlds of
benchmarks/worlds.py: the door on a toy image world registered here (odd size, RGB, counters in `info`) and
its one-line refusals; the maze (goal reward and episode end, the TV switched only by its action and only
near it, a seed repeating an episode, its frames the same in env processes); the retro worlds (the
reference's action tables, frames and counters, the one-line errors, and two-player Pong trained, resumed,
scored, filmed and run under torchrun by every script). Pong's ROM comes from ale-py; no Mario ROM is here,
so Mario's counters are checked on a replayed sequence of its RAM values."""
import gc
import itertools
import os
import shutil
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, reference_frame_stack, read_scalars, run_script, torchrun
from test_long_runs import SCRIPTS, assert_one_line_error, checkpoint_of

sys.path.insert(0, str(ROOT))  # so that `benchmarks.worlds` imports here as the scripts import it
worlds = pytest.importorskip("benchmarks.worlds")
stable_retro = pytest.importorskip("stable_retro")
PONG, MARIO = "benchmarks.worlds:TwoPlayerPong-v0", "benchmarks.worlds:Mario-v0"
TINY_PONG = ["--env-id", PONG, "--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2",
             "--update-epochs", "2", "--obs-norm-steps", "64", "--obs-norm-envs", "2", "--total-timesteps", "128"]
NES = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]
ATARI_2600 = ["BUTTON", None, "SELECT", "RESET", "UP", "DOWN", "LEFT", "RIGHT"]


class ToyWorld(gym.Env):
    """50x70 RGB frames of noise drawn from the seed, the episode and the step, 3 actions, episodes of 3
    steps; in `info` two counters (how often action 2 was taken, and whether twice) and a string, which is
    no counter."""

    observation_space = gym.spaces.Box(0, 255, (50, 70, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def image(self) -> np.ndarray:
        return frame_of(self.seed, self.episode, self.t)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        assert seed is None or type(seed) is int  # gymnasium's rule (its vector env hands out numpy ints)
        if seed is not None:
            self.seed, self.episode = seed, -1
        self.episode, self.t, self.twos = self.episode + 1, 0, 0
        return self.image(), {"twos": 0, "won": False, "label": "start"}

    def step(self, action):
        self.t += 1
        self.twos += action == 2
        return self.image(), 1.0, self.t == 3, False, {"twos": self.twos, "won": self.twos >= 2, "label": "x"}


class VectorWorld(ToyWorld):
    observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)


gym.register("ToyImage-v0", entry_point=ToyWorld)
gym.register("ToyVector-v0", entry_point=VectorWorld)


def frame_of(seed: int, episode: int, t: int) -> np.ndarray:
    return np.random.default_rng([seed, episode, t]).integers(0, 256, (50, 70, 3), dtype=np.uint8)


def reference_process_frame(rgb, crop=False):
    """wrappers.py's ProcessFrame84.process."""
    img = rgb.astype(np.float32)
    img = img[:, :, 0] * 0.299 + img[:, :, 1] * 0.587 + img[:, :, 2] * 0.114
    resized = np.array(Image.fromarray(img).resize((84, 110 if crop else 84), resample=Image.BILINEAR),
                       dtype=np.uint8)
    return resized[18:102, :] if crop else resized


def test_the_door_makes_any_image_world_the_references_grey_frames_stacked_and_logs_its_counters(rf):
    envs = rf.make_envs("ToyImage-v0", 2, max_episode_steps=4500)  # an env process each
    assert envs.single_observation_space.shape == (4, 84, 84) and envs.single_action_space.n == 3
    def expected(seed, episode, t):
        return reference_process_frame(frame_of(seed, episode, t))[None]

    obs, _ = envs.reset(seed=[5, 9])
    np.testing.assert_array_equal(obs[1], np.concatenate([expected(9, 0, 0)] * 4))
    stats, frames, dones, stacks = rf.EpisodeStats(2), [obs[:, -1:]], [], [obs]
    for t, actions in enumerate([[2, 0], [2, 2], [1, 0], [0, 0]]):  # env 0 takes action 2 twice, env 1 once
        obs, rewards, terminated, truncated, info = envs.step(np.array(actions))
        stats.update(rewards, terminated, truncated, info)
        frames.append(obs[:, -1:])
        dones.append(terminated | truncated)
        stacks.append(obs)
        if t < 2:
            np.testing.assert_array_equal(obs[0, -1:], expected(5, 0, t + 1))
    assert [d.tolist() for d in dones] == [[False, False], [False, False], [True, True], [False, False]]
    np.testing.assert_array_equal(np.array(stacks), reference_frame_stack(frames, dones))
    np.testing.assert_array_equal(stacks[3][0], np.concatenate([expected(5, 1, 0)] * 4))  # the next episode
    logged = stats.log()  # the counters of the episode's last step, by name; the string is left out
    assert logged == {"charts/episodic_return": 3.0, "charts/episodic_length": 3.0, "charts/episodes": 2,
                      "charts/twos": 1.5, "charts/won": 0.5}
    envs.close()


def test_a_world_the_door_cannot_take_stops_with_one_line(rf):
    with pytest.raises(SystemExit, match=r"^error: --env-id ToyVector-v0 has observations Box\(-1.0, 1.0, "
                                         r"\(4,\), float32\) .*; these scripts take images"):
        rf.check_world("ToyVector-v0")
    rf.check_world("ToyImage-v0")  # passes
    result = run_script("curiosity_rf", "--env-id", "CartPole-v1")  # a real gymnasium world, not of images
    assert_one_line_error(result, "--env-id CartPole-v1 has observations Box(", "take images (uint8")
    result = run_script("curiosity_idf", "--env-id", "NoSuchWorld-v0")
    assert_one_line_error(result, "'NoSuchWorld-v0' is no Atari game, and gymnasium cannot make it: "
                                  "Environment `NoSuchWorld` doesn't exist")
    result = run_script("curiosity_vae", "--env-id", "no_such_module:World-v0")
    assert_one_line_error(result, "No module named 'no_such_module'")
    result = run_script("curiosity_rf", "--env-id", "BrekoutNoFrameskip-v4")  # an Atari id with a typo
    assert_one_line_error(result, "'BrekoutNoFrameskip-v4' names no Atari game as these scripts take one; "
                                  "use e.g. BreakoutNoFrameskip-v4")
    result = run_script("curiosity_rf", "--env-id", "PongDeterministic-v4")  # ALE's own: no reference frames
    assert_one_line_error(result, "'PongDeterministic-v4' names no Atari game as these scripts take one")


# ---------------------------------------------------------------------------------------------------------
# The maze
# ---------------------------------------------------------------------------------------------------------


def maze(tv: bool, seed: int = 0):
    env = gym.make("benchmarks.worlds:MazeTV-v0" if tv else "benchmarks.worlds:Maze-v0")
    obs, info = env.reset(seed=seed)
    return env, env.unwrapped, obs, info


def test_the_maze_pays_one_on_reaching_its_goal_which_ends_the_episode_and_only_then():
    env, world, obs, info = maze(tv=False)
    assert obs.shape == (84, 84, 3) and env.action_space.n == 4
    start = worlds.DOORWAYS_TO_GOAL[worlds.room_of(world.agent.pos)]
    assert info == {"goal_reached": 0, "rooms_visited": 1, "doorways_to_goal": start} and start >= 3
    assert env.spec.max_episode_steps == worlds.MAZE_STEPS == 1000
    rewards = [env.step(a)[1] for a in (worlds.NOOP, worlds.FORWARD, worlds.LEFT, worlds.RIGHT) * 5]
    assert rewards == [0.0] * 20  # the start is 3 to 6 doorways from the goal
    world.agent.pos = world.goal.pos + np.array([2.0, 0, 0])  # 2 to the goal's east, facing it (west)
    world.agent.dir = np.pi
    steps = []
    for _ in range(6):
        steps.append(env.step(worlds.FORWARD)[1:])
        if steps[-1][1]:
            break
    assert [s[0] for s in steps] == [0.0] * (len(steps) - 1) + [1.0] and 1 < len(steps) < 6
    # the start's room and the goal's: none left
    assert steps[-1][1:] == (True, False, {"goal_reached": 1, "rooms_visited": 2, "doorways_to_goal": 0})


def test_the_maze_counts_the_rooms_an_episode_enters_and_how_close_to_the_goal_it_comes():
    assert worlds.DOORWAYS_TO_GOAL == {(0, 0): 0, (0, 1): 1, (1, 1): 2, (1, 0): 3, (1, 2): 3, (0, 2): 4,
                                       (2, 0): 4, (2, 1): 5, (2, 2): 6}  # along the one path
    assert sorted(worlds.DOORWAYS_TO_GOAL[room] for room in worlds.START_ROOMS) == [3, 4, 5, 6]
    assert [worlds.room_of(worlds.room_centre(row, col)) for row in range(3) for col in range(3)] == \
        [(row, col) for row in range(3) for col in range(3)]
    doorway = np.array([worlds.ROOM + worlds.GAP / 2, 0, 7.0])  # between (1, 0) and (1, 1)
    assert worlds.room_of(doorway) == (1, 0)
    env, world, _, info = maze(tv=False, seed=5)
    start = worlds.room_of(world.agent.pos)
    assert info["rooms_visited"] == 1 and start in worlds.START_ROOMS
    visits, closest = [], []
    for room in (start, (1, 1), start, (1, 0), (1, 1)):
        world.agent.pos = worlds.room_centre(*room)
        info = env.step(worlds.NOOP)[4]
        visits.append(info["rooms_visited"])
        closest.append(info["doorways_to_goal"])
    assert visits == [1, 2, 2, 3, 3]
    assert closest == [worlds.DOORWAYS_TO_GOAL[start]] + [2] * 4  # the hub is 2 from the goal, and stays
    env.reset(seed=6)
    info = env.step(worlds.NOOP)[4]  # a new episode counts anew
    assert info["rooms_visited"] == 1 and info["doorways_to_goal"] == worlds.DOORWAYS_TO_GOAL[
        worlds.room_of(world.agent.pos)]
    env.close()


def test_the_tv_switches_only_by_its_action_and_only_near_it():
    env, world, obs, info = maze(tv=True, seed=3)
    assert env.action_space.n == 5
    assert info == {"goal_reached": 0, "rooms_visited": 1, "tv_action_share": 0.0, "near_tv_share": 0.0,
                    "doorways_to_goal": worlds.DOORWAYS_TO_GOAL[worlds.room_of(world.agent.pos)]}
    facing_tv = world.tv.pos * [1, 0, 1] - [0, 0, 3.0]  # 3 in front of it, looking at it (dir -pi/2: +z)

    def look(action):
        world.agent.pos, world.agent.dir = facing_tv.copy(), -np.pi / 2
        return env.step(action)

    first, portrait = look(worlds.NOOP)[0], world.tv.portrait
    for action in (worlds.NOOP, worlds.LEFT, worlds.RIGHT) * 3:  # near it, other actions: the picture stays
        look(action)
        assert world.tv.portrait == portrait
    np.testing.assert_array_equal(look(worlds.NOOP)[0], first)
    world.agent.pos = worlds.room_centre(2, 2)  # far from it: the switch does nothing
    assert env.step(worlds.SWITCH)[4]["near_tv_share"] < 1 and world.tv.portrait == portrait
    switched = [look(worlds.SWITCH) for _ in range(4)]
    assert len({world.tv.portrait, portrait}) == 2 or len({s[0].tobytes() for s in switched}) > 1
    assert not np.array_equal(switched[-1][0], first) or world.tv.portrait == portrait  # (1 in 82: same one)
    info = switched[-1][4]
    steps = world.step_count
    assert info["tv_action_share"] == 5 / steps and 0 < info["near_tv_share"] < 1


def test_a_maze_seed_repeats_its_episode_and_env_processes_render_the_same_frames(rf):
    actions = np.random.default_rng(0).integers(5, size=40)
    runs = []
    for seed in (11, 11, 12):
        env, world, obs, _ = maze(tv=True, seed=seed)
        runs.append([obs] + [env.step(a)[0] for a in actions])
        env.close()
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))
    assert not np.array_equal(np.array(runs[0]), np.array(runs[2]))
    envs = rf.make_envs("benchmarks.worlds:MazeTV-v0", 2, max_episode_steps=4500)  # forked env processes
    obs, _ = envs.reset(seed=[11, 12])
    in_process = [rf.grey_frame(frame) for frame in runs[0]]
    np.testing.assert_array_equal(obs[0, -1:], in_process[0])
    for t, action in enumerate(actions[:10]):
        obs = envs.step(np.array([action, 0]))[0]
        np.testing.assert_array_equal(obs[0, -1:], in_process[t + 1])
    envs.close()


def test_the_mix_script_trains_in_the_maze_with_its_tv_through_the_door(tmp_path):
    result = run_script("curiosity_extrinsic_mix", *TINY_PONG[2:], "--env-id", "benchmarks.worlds:MazeTV-v0",
                        "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    scalars = read_scalars(tmp_path)
    assert scalars["charts/intrinsic_reward_mean"][-1][1] > 0
    assert "Falling back" not in result.stdout  # MiniWorld's line about anti-aliasing, once per env, muted

    # benchmarks/reward_sources.py on its checkpoint: each step's switch and nearness to the TV, read back
    # from the running shares the env processes give, are those of the same episodes played here in-process
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import load_script
    from reward_sources import play, reward_sources

    checkpoint = torch.load(checkpoint_of(tmp_path), weights_only=False)
    t = play(load_script("curiosity_extrinsic_mix"), checkpoint, num_envs=2, num_steps=8, rollouts=1, seed=1)
    np.testing.assert_array_equal(t["tv_switch_action"], t["action"] == worlds.SWITCH)
    for i in range(2):  # env i of a vector env reset with seed 1 has seed 1 + i
        env, world, _, _ = maze(tv=True, seed=1 + i)
        near = []
        for action in t["action"][:, i]:
            env.step(action)
            near.append(np.linalg.norm(world.agent.pos - world.tv.pos * [1, 0, 1]) < worlds.TV_RANGE)
        env.close()
        np.testing.assert_array_equal(t["near_tv"][:, i], near)
    assert t["near_tv"][:, 1].all()  # (seed 2 starts in a room beside the TV's wall)
    sources = reward_sources(t)
    switched = int((t["tv_switch_action"] & t["near_tv"]).sum())
    assert sources["a TV switch near it (a new picture)"][1] == switched
    assert sources["the other steps near the TV"][1] == t["near_tv"].sum() - switched
    assert sources["the rest"][1] == (~t["near_tv"] & (t["episode_step"] >= 3)).sum()

    # its evaluation prints the maze's counters of a whole episode (1,000 steps at the time limit)
    scored = run_script("curiosity_extrinsic_mix", "--eval-checkpoint", str(checkpoint_of(tmp_path)),
                        "--eval-episodes", "1")
    assert scored.returncode == 0, scored.stderr
    line = scored.stdout.strip().splitlines()[-1]
    assert "score 0.0 +- 0.0, length 1000 +- 0, goal_reached 0 +- 0, rooms_visited " in line, line
    assert 1 <= int(line.split("rooms_visited ")[1].split()[0]) <= 9
    assert ", tv_action_share 0." in line and ", near_tv_share " in line


# ---------------------------------------------------------------------------------------------------------
# The retro worlds
# ---------------------------------------------------------------------------------------------------------


def reference_limited_discrete_actions(buttons):
    """wrappers.py's LimitedDiscreteActions, as the reference wrote it (index tuples)."""
    button_keys = {i for i in range(len(buttons)) if buttons[i] in {"A", "B"}}
    pressed = [(), *zip(button_keys), *itertools.combinations(button_keys, 2)]
    arrows = [(), (4,), (5,), (6,), (7,)]
    return arrows + pressed[1:] + [a + b for a in arrows[-2:] for b in pressed[1:]]


def reference_retro_ale_actions(buttons, n_players):
    """wrappers.py's RetroALEActions, as the reference wrote it (lists of indices)."""
    actions = [[]]
    for player in range(n_players):
        actions = [[*b, *([button + player * len(buttons)] if button != -1 else [])]
                   for b in actions for button in [-1, 0, 4, 5, 6, 7]]
    return actions


def masks(table, width):
    out = np.zeros((len(table), width), np.int8)
    for row, pressed in enumerate(table):
        out[row, list(pressed)] = 1
    return out


def test_action_tables_equal_the_references_button_by_button(rf):
    assert stable_retro.data.EMU_INFO["Nes"]["buttons"] == NES  # the emulators' own button orders
    assert stable_retro.data.EMU_INFO["Atari2600"]["buttons"] == ATARI_2600
    mario = worlds.retro_actions(NES, 1)
    assert len(mario) == 14
    np.testing.assert_array_equal(masks(mario, 9), masks(reference_limited_discrete_actions(NES), 9))
    names = [{NES[i] for i in pressed} for pressed in mario]
    assert names[:8] == [set(), {"UP"}, {"DOWN"}, {"LEFT"}, {"RIGHT"}, {"B"}, {"A"}, {"B", "A"}]
    assert names[8:] == [{"LEFT", "B"}, {"LEFT", "A"}, {"LEFT", "B", "A"}, {"RIGHT", "B"}, {"RIGHT", "A"},
                         {"RIGHT", "B", "A"}]
    pong = worlds.retro_actions(ATARI_2600, 2)
    assert len(pong) == 36
    np.testing.assert_array_equal(masks(pong, 16), masks(reference_retro_ale_actions(ATARI_2600, 2), 16))
    assert pong[6 * 2 + 3] == (4, 8 + 5)  # player 1 up (choice 2), player 2 down (choice 3)


def test_mario_progress_replays_the_references_x_reward_and_levels(rf):
    def info(x, level=(0, 0)):
        return {"levelLo": level[0], "levelHi": level[1], "xscrollHi": x // 256, "xscrollLo": x % 256}

    progress = worlds.MarioProgress()
    xs = [0, 3, 10, 7, 12, 300, 300]  # back 3 pixels (no reward), past a 256 boundary (xscrollHi)
    rewards = [progress.update(info(x)) for x in xs]
    assert rewards == [0, 3, 7, 0, 2, 288, 0]
    assert progress.info() == {"x_distance": 300, "levels": 1}
    assert progress.update(info(40, (1, 0))) == 0  # a new level: no reward on its first frame, x from 0
    assert progress.update(info(45, (1, 0))) == 45
    assert progress.info() == {"x_distance": 345, "levels": 2}


def test_ball_returns_count_reversals_at_paddles_not_serves(rf):
    returns = worlds.BallReturns()
    # the serve travels left, the left paddle returns it at 68, the right one at 188, then a point: the ball
    # rests at the edge and reappears mid-court (a jump), travelling left again
    xs = [127, 126, 69, 68, 69, 70, 187, 188, 187, 60, 52, 52, 52, 127, 126, 125]
    xs = [x for a, b in zip(xs, xs[1:]) for x in (range(a, b, 1 if b > a else -1) if abs(b - a) <= 8 else [a])]
    assert [returns.update({"ball_x": x}) for x in xs] == [0.0] * len(xs)  # no reward, as NoReward
    assert returns.info() == {"ball_returns": 2}


def test_two_player_pong_frames_are_the_references_and_the_stack_copies_the_first_at_reset_and_autoreset(rf):
    envs = rf.FrameStack(gym.vector.SyncVectorEnv(  # one emulator a process; a time limit for an autoreset
        [lambda: gym.wrappers.TimeLimit(rf.make_world(PONG, os.getpid()), 5)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP))
    world = envs.envs.envs[0]
    assert envs.single_action_space.n == 36 and envs.single_observation_space.shape == (4, 84, 84)
    obs, info = envs.reset(seed=[1])
    first = reference_process_frame(world.unwrapped.img, crop=False)
    assert np.ptp(first) > 50 and info["ball_returns"].tolist() == [0]
    frames, dones, stacks = [obs[:, -1:]], [], [obs]
    for t in range(7):
        obs, rewards, terminated, truncated, info = envs.step(np.array([6 * 2 + 3]))  # up and down
        assert rewards.tolist() == [0.0]
        if truncated[0]:  # the ended episode's counters, for EpisodeStats
            assert info["final_info"]["ball_returns"].tolist() == [0]
        else:
            np.testing.assert_array_equal(obs[0, -1], reference_process_frame(world.unwrapped.img, crop=False))
        frames.append(obs[:, -1:])
        dones.append(terminated | truncated)
        stacks.append(obs)
    assert [d.tolist() for d in dones] == [[False]] * 4 + [[True]] + [[False]] * 2
    np.testing.assert_array_equal(np.array(stacks), reference_frame_stack(frames, dones))
    np.testing.assert_array_equal(stacks[0][0], np.stack([first] * 4))
    np.testing.assert_array_equal(stacks[5][0], np.stack([first] * 4))  # the new episode: the same start
    envs.close()


def test_the_env_processes_are_forked_from_frozen_objects_and_the_trainer_collects_as_before(rf):
    # frozen, this process's objects are not copied into each env process by its garbage collector
    # (benchmarks/README.md, "Memory": 12.4 GiB of PSS at 128 envs without, 2.7 GiB with)
    frozen_at_fork = []
    os.register_at_fork(before=lambda: frozen_at_fork.append(gc.get_freeze_count()))
    envs = rf.make_envs(PONG, 2, max_episode_steps=4500)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and len(frozen_at_fork) >= 2 and min(frozen_at_fork) > 1000
    assert gc.get_freeze_count() == 0
    envs.close()


def test_episode_stats_log_the_counters_of_the_episodes_that_ended(rf):
    stats = rf.EpisodeStats(3)
    done = np.array([True, False, True])
    final = {"ball_returns": np.array([3, 0, 5]), "_ball_returns": done}
    stats.update(np.zeros(3), np.zeros(3, bool), np.zeros(3, bool), {"ball_returns": np.array([1, 1, 1])})
    stats.update(np.zeros(3), done, np.zeros(3, bool), {"final_info": final, "ball_returns": np.zeros(3)})
    logged = stats.log()
    assert logged["charts/ball_returns"] == 4.0 and logged["charts/episodic_length"] == 2.0
    assert "charts/x_distance" not in logged and stats.log() == {}


def test_pongs_rom_is_imported_from_ale_py_with_one_line(rf, tmp_path, monkeypatch, capsys):
    import ale_py.roms

    def no_rom(game, *args):
        raise FileNotFoundError(game)

    monkeypatch.setattr(stable_retro.data, "get_romfile_path", no_rom)
    monkeypatch.setattr(stable_retro.data, "get_file_path", lambda game, name, *a: str(tmp_path / name))
    worlds.check_retro_rom("Pong-Atari2600-v0")
    assert (tmp_path / "rom.a26").read_bytes() == ale_py.roms.get_rom_path("pong").read_bytes()
    assert capsys.readouterr().out == "imported Pong's ROM into stable-retro from ale-py's pong.bin\n"
    def read_only(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(worlds.shutil, "copyfile", read_only)  # a data folder this user cannot write (root can)
    with pytest.raises(gym.error.Error, match=r"^cannot import Pong's ROM into stable-retro \(Permission "
                                              r"denied\); run python -m stable_retro.import"):
        worlds.check_retro_rom("Pong-Atari2600-v0")


def test_a_missing_mario_rom_and_a_missing_stable_retro_stop_with_one_line(rf, monkeypatch):
    try:
        stable_retro.data.get_romfile_path(MARIO)
        pytest.skip("a Super Mario Bros ROM is imported on this machine")
    except FileNotFoundError:
        pass
    result = run_script("curiosity_rf", "--env-id", MARIO)
    assert_one_line_error(result, f"--env-id '{MARIO}' is no Atari game", "stable-retro has no ROM for "
                          "SuperMarioBros-Nes-v0", "python -m stable_retro.import")
    monkeypatch.setitem(sys.modules, "stable_retro", None)  # as if not installed
    with pytest.raises(SystemExit, match=f"^error: --env-id '{PONG}' is no Atari game, .*: Pong-Atari2600-v0 "
                                         "runs on stable-retro, which is not installed: pip install stable-retro$"):
        rf.check_world(PONG)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_trains_on_two_player_pong(name, tmp_path):
    result = run_script(name, *TINY_PONG, "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "iter 2/2" in result.stdout
    scalars = read_scalars(tmp_path)
    assert all(np.isfinite(v) for _, v in scalars["losses/policy_loss"])
    assert scalars["charts/intrinsic_reward_mean"][-1][1] > 0
    saved = torch.load(checkpoint_of(tmp_path), weights_only=False)
    assert saved["args"]["env_id"] == PONG and saved["networks"]["policy"]["logits.bias"].shape == (36,)


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory):
    """One finished two-iteration RF run on two-player Pong, for the tests that score it or copy it."""
    log_dir = tmp_path_factory.mktemp("pong_run")
    result = run_script("curiosity_rf", *TINY_PONG, "--log-dir", str(log_dir))
    assert result.returncode == 0, result.stderr
    return log_dir


def test_a_two_player_pong_run_resumes_from_its_checkpoint_as_an_atari_run_does(pong_run, tmp_path):
    """Two iterations and a checkpoint, then two more from two copies of it: both resumed halves are equal,
    and the first half is the uninterrupted run's. The envs start new episodes, as on Atari: stable-retro's
    Atari 2600 save states do not replay exactly (benchmarks/README.md), so they are not saved."""
    whole = run_script("curiosity_rf", *TINY_PONG, "--total-timesteps", "256", "--log-dir",
                       str(tmp_path / "a"), fresh=True)  # a new interpreter: the compared runs share no state
    assert whole.returncode == 0, whole.stderr
    shutil.copytree(pong_run, tmp_path / "b")  # the run of the first half, its checkpoint and its events
    checkpoint, copy = checkpoint_of(tmp_path / "b"), tmp_path / "c" / "run" / "checkpoint.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(checkpoint.read_bytes())
    for path in (checkpoint, copy):
        resumed = run_script("curiosity_rf", "--resume", str(path), "--total-timesteps", "256")
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming after iteration 2 (step 128)" in resumed.stdout and "iter 4/4" in resumed.stdout
    a, b, c = (read_scalars(tmp_path / name) for name in "abc")
    for tag in ("losses/policy_loss", "losses/dynamics_loss", "charts/intrinsic_reward_mean"):
        assert a[tag][:2] == b[tag][:2], tag  # the same run up to the checkpoint
        assert b[tag][2:] == c[tag] and len(c[tag]) == 2, tag  # and one resumed run, from either copy


def running(pid: str) -> bool:
    """Whether a process is there and not a zombie (one whose new parent, a container's init, may never reap it)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_pong_trainer_ends_its_env_processes_quietly_and_a_policy_of_another_game_builds_none(tmp_path):
    """kill -9 of the trainer: the kernel sends each env process SIGTERM (PR_SET_PDEATHSIG), which ends it
    without a word (before: a traceback from each as its pipe broke). Then that run's checkpoint with a
    policy of Breakout's 4 actions is refused in one line before any env process is made (before: about 120
    lines of env processes' tracebacks after it)."""
    trainer = subprocess.Popen([sys.executable, "curiosity_rf.py", *TINY_PONG, "--total-timesteps", "10000",
                                "--save-every", "1", "--log-dir", str(tmp_path)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert any(line.startswith("iter 2/") for line in trainer.stdout)  # (its checkpoint written)
    env_processes = subprocess.run(["pgrep", "-P", str(trainer.pid)], capture_output=True, text=True).stdout.split()
    assert len(env_processes) >= 4
    trainer.kill()
    trainer.wait()
    errors = trainer.stderr.read()  # read to its end: every env process has ended
    assert "Traceback" not in errors and "Error" not in errors, errors
    deadline = time.monotonic() + 10  # (a process closes its files first, then ends)
    while any(running(pid) for pid in env_processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in env_processes if running(pid)]
    saved = torch.load(checkpoint := checkpoint_of(tmp_path), weights_only=False)
    policy = saved["networks"]["policy"]
    policy["logits.weight"], policy["logits.bias"] = policy["logits.weight"][:4], policy["logits.bias"][:4]
    torch.save(saved, checkpoint)
    result = run_script("curiosity_rf", "--resume", str(checkpoint), "--total-timesteps", "9984")
    assert_one_line_error(result, "is damaged: networks.policy.logits.weight differs (saved a float32 tensor of "
                                  "shape (4, 512), expected a float32 tensor of shape (36, 512))")
    assert result.stdout == ""


def test_reward_sources_plays_a_world_without_lives(rf, pong_run):
    """benchmarks/reward_sources.py read info["lives"], which only ALE gives: on a world it stopped with a
    KeyError (seen on the maze's checkpoint); now a world loses no lives and the rest is measured as on Atari."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reward_sources import play, reward_sources

    checkpoint = torch.load(checkpoint_of(pong_run), weights_only=False)
    transitions = play(rf, checkpoint, num_envs=2, num_steps=8, rollouts=1, seed=1)
    assert transitions["r_int"].shape == (8, 2) and (transitions["r_int"] > 0).all()
    assert (transitions["lives_before"] == 0).all() and (transitions["lives_after"] == 0).all()
    ratio, count = reward_sources(transitions)["life lost"]
    assert count == 0 and np.isnan(ratio)
    assert reward_sources(transitions)["first 3 steps of an episode"][1] == 2 * 3


def test_two_player_pong_is_scored_and_filmed_and_trains_under_torchrun(pong_run, tmp_path):
    av = pytest.importorskip("av")
    checkpoint = checkpoint_of(pong_run)
    scored = run_script("curiosity_rf", "--eval-checkpoint", str(checkpoint), "--eval-episodes", "1",
                        "--capture-video", timeout=600)
    assert scored.returncode == 0, scored.stderr
    line = scored.stdout.strip().splitlines()[-1]
    assert line.startswith(f"1 episodes of {PONG} at step 128: score 0.0 +- 0.0, length ")
    length = int(line.split("length ")[1].split()[0])
    assert float(line.split("ball_returns ")[1].split()[0]) >= 0 and "video" in line  # its score, reward removed
    with av.open(str(checkpoint.parent / "checkpoint_eval.mp4")) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(frames) == length and np.ptp(frames[length // 2]) > 50
    result = torchrun("curiosity_rf", *TINY_PONG, "--log-dir", str(tmp_path / "torchrun"))
    assert result.returncode == 0, result.stderr
    assert "weights identical in all 2 processes" in result.stdout
