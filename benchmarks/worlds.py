"""The paper's worlds besides Atari, as gymnasium ids that every script takes through its one door:

    python curiosity_rf.py --env-id benchmarks.worlds:TwoPlayerPong-v0   # one policy plays both paddles
    python curiosity_rf.py --env-id benchmarks.worlds:Mario-v0           # Super Mario Bros 1-1, your ROM
    python curiosity_extrinsic_mix.py --env-id benchmarks.worlds:Maze-v0 --num-envs 32 --num-minibatches 4
    python curiosity_rf.py --env-id benchmarks.worlds:MazeTV-v0 ...      # the maze with its noisy TV

Gymnasium imports this module for the `benchmarks.worlds:` prefix (from the repository root) and makes the id.
Each world returns grey or RGB images and takes discrete actions; per-episode counters (ball returns, x
distance, goal reached, rooms visited, the TV's use) travel in `info`, which the scripts log as `charts/NAME`
at each episode's end and their evaluation prints. Retro worlds need `pip install stable-retro`; the maze
needs `pip install miniworld`.
"""
import contextlib
import io
import math
import os
import shutil

import gymnasium as gym
import numpy as np
import PIL.Image

# ---------------------------------------------------------------------------------------------------------
# The retro worlds (stable-retro): two-player Pong and Mario, as the reference's wrappers.py makes them
# ---------------------------------------------------------------------------------------------------------
RETRO_GAMES = {"Pong-Atari2600-v0": 2, "SuperMarioBros-Nes-v0": 1}  # the players the policy controls


def check_retro_rom(game: str) -> None:
    """Raises a one-line error without stable-retro or the game's ROM; Pong's ROM it imports from ale-py's."""
    try:
        import stable_retro
    except ImportError:
        raise gym.error.DependencyNotInstalled(f"{game} runs on stable-retro, which is not installed: "
                                               "pip install stable-retro") from None
    with contextlib.suppress(FileNotFoundError):
        stable_retro.data.get_romfile_path(game)
        return
    if game != "Pong-Atari2600-v0":
        raise gym.error.Error(f"stable-retro has no ROM for {game}: Nintendo's ROM ships in no package; "
                              "import your copy with python -m stable_retro.import FOLDER_WITH_IT")
    import ale_py

    source = ale_py.roms.get_rom_path("pong")  # the ROM stable-retro knows: its hash is in rom.sha
    rom = os.path.join(os.path.dirname(stable_retro.data.get_file_path(game, "rom.sha")), "rom.a26")
    try:  # written whole, then renamed: a torchrun process beside this one never reads half a ROM
        shutil.copyfile(source, f"{rom}.{os.getpid()}")
        os.replace(f"{rom}.{os.getpid()}", rom)
    except OSError as err:
        raise gym.error.Error(f"cannot import Pong's ROM into stable-retro ({err.strerror}); run python -m "
                              "stable_retro.import on ale-py's roms folder as a user who can write there"
                              ) from None
    print(f"imported Pong's ROM into stable-retro from ale-py's {os.path.basename(source)}", flush=True)


def retro_actions(buttons: list, players: int) -> list[tuple]:
    """The reference's action tables, as tuples of the buttons pressed (indices into the emulator's mask).
    NES (LimitedDiscreteActions): no-op, up, down, left, right; B, A, B+A; left or right with each of
    those three: 14. Atari 2600 (RetroALEActions): per player no-op, fire, up, down, left, right, and
    every combination of the players' (player 1's choice major): 6 x 6 = 36 for two players."""
    index = {name: i for i, name in enumerate(buttons) if name}
    if "A" in index:
        arrows = [(), *((index[name],) for name in ("UP", "DOWN", "LEFT", "RIGHT"))]
        jumps = [(index["B"],), (index["A"],), (index["B"], index["A"])]
        return arrows + jumps + [arrow + jump for arrow in arrows[-2:] for jump in jumps]
    one = [(), *((index[name],) for name in ("BUTTON", "UP", "DOWN", "LEFT", "RIGHT"))]
    table = [()]
    for player in range(players):
        table = [taken + tuple(i + player * len(buttons) for i in b) for taken in table for b in one]
    return table


class MarioProgress:
    """The reference's MarioXReward, per frame: the reward is how far right of his furthest x in this level
    Mario got (x = xscrollHi * 256 + xscrollLo), 0 on a frame that changes the level. The episode's sum is
    its x distance (the paper's Mario "return"); the levels it visited are counted, 1-1 included."""

    def __init__(self):
        self.level, self.max_x, self.x_distance, self.levels = (0, 0), 0, 0, {(0, 0)}

    def update(self, info: dict) -> float:
        level, x = (info["levelLo"], info["levelHi"]), info["xscrollHi"] * 256 + info["xscrollLo"]
        if level != self.level:
            self.level, self.max_x = level, 0
            self.levels.add(level)
            return 0.0
        progress = max(x - self.max_x, 0)
        self.max_x += progress
        self.x_distance += progress
        return float(progress)

    def info(self) -> dict:
        return {"x_distance": self.x_distance, "levels": len(self.levels)}


class BallReturns:
    """Two-player Pong's rallies, per frame: a return is the ball's horizontal direction reversing (it does
    so only at a paddle); a serve, the ball reappearing mid-court 75 pixels away, starts a new point. The
    reward is none: the reference removes the game's (NoReward)."""

    def __init__(self):
        self.x, self.direction, self.returns = None, 0, 0

    def update(self, info: dict) -> float:
        dx = 0 if self.x is None else info["ball_x"] - self.x  # in play the ball moves 1 pixel a frame
        self.x = info["ball_x"]
        if abs(dx) > 8:
            self.direction = 0
        elif dx:
            direction = 1 if dx > 0 else -1
            self.returns += self.direction == -direction
            self.direction = direction
        return 0.0

    def info(self) -> dict:
        return {"ball_returns": self.returns}


class RetroWorld(gym.Wrapper):
    """One env of a retro world as the reference makes it, from stable-retro's default state (level 1-1,
    Pong's "Start.2P"): its discrete actions (retro_actions), each held for 4 frames with the rewards summed
    (FrameSkip: no max over frames), the frame in grey resized to 84x84 by PIL's bilinear filter
    (ProcessFrame84; Mario's to 84x110, then rows 18-101 kept), the reward and episode counters of
    MarioProgress or BallReturns in `info`; no episode limit."""

    def __init__(self, game: str):
        check_retro_rom(game)
        import stable_retro

        super().__init__(stable_retro.make(game, players=RETRO_GAMES[game], render_mode=None))
        self.actions = retro_actions(self.unwrapped.buttons, RETRO_GAMES[game])
        self.action_space = gym.spaces.Discrete(len(self.actions))
        self.observation_space = gym.spaces.Box(0, 255, (84, 84), np.uint8)
        self.mario = game.startswith("SuperMarioBros")

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        rgb = rgb.astype(np.float32)
        grey = PIL.Image.fromarray(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)
        frame = np.array(grey.resize((84, 110 if self.mario else 84), PIL.Image.BILINEAR), np.uint8)
        return frame[18:102] if self.mario else frame

    def reset(self, *, seed=None, options=None):
        rgb, _ = self.env.reset(seed=None if seed is None else int(seed))  # (a numpy int is refused)
        self.counter = MarioProgress() if self.mario else BallReturns()
        return self.frame(rgb), self.counter.info()

    def step(self, action):
        buttons = np.zeros(self.env.action_space.n, np.int8)
        buttons[list(self.actions[action])] = 1
        reward = 0.0
        for _ in range(4):
            rgb, _, terminated, truncated, info = self.env.step(buttons)
            reward += self.counter.update(info)
            if terminated or truncated:
                break
        return self.frame(rgb), reward, terminated, truncated, self.counter.info()


# ---------------------------------------------------------------------------------------------------------
# The paper's maze (its Unity "tv_maze", luchris429/noisy-tv-env), rebuilt in MiniWorld
# ---------------------------------------------------------------------------------------------------------
# Mesa's software renderer must not start threads: the env processes are forked from one that has rendered
# (gymnasium's AsyncVectorEnv builds one env in the parent first), and a forked child has none of them, so it
# would wait for them forever. Set before MiniWorld loads pyglet; no display is needed (EGL, headless).
os.environ.setdefault("LP_NUM_THREADS", "0")

MAZE_ROWS, MAZE_COLS = 3, 3  # nine rooms, as the paper's maze
ROOM, GAP, DOOR = 5.0, 0.25, 1.5  # a room's side, the wall between two rooms, a doorway's width
# The doorways: a spanning tree of the 3x3 grid of rooms (row, col), so that one path joins any two rooms.
# From the goal's room (0, 0) the starts are 6, 5, 3 and 4 doorways away (DOORWAYS_TO_GOAL).
DOORWAYS = [((0, 0), (0, 1)), ((0, 1), (1, 1)), ((1, 1), (1, 0)), ((1, 0), (2, 0)), ((2, 0), (2, 1)),
            ((2, 1), (2, 2)), ((1, 1), (1, 2)), ((1, 2), (0, 2))]
GOAL_ROOM, START_ROOMS = (0, 0), [(2, 2), (2, 1), (1, 2), (0, 2)]


def doorways_to(room: tuple[int, int]) -> dict[tuple[int, int], int]:
    """How many doorways each room of the maze is from `room` along the one path (a breadth-first search)."""
    distance, frontier = {room: 0}, [room]
    for here in frontier:  # (the list grows as rooms are reached; each is read once)
        for a, b in DOORWAYS:
            there = b if a == here else a if b == here else None
            if there is not None and there not in distance:
                distance[there] = distance[here] + 1
                frontier.append(there)
    return distance


DOORWAYS_TO_GOAL = doorways_to(GOAL_ROOM)
TV_ROOM = (1, 1)  # the hub every path from a start to the goal crosses
WALLS = ["brick_wall", "cinder_blocks", "concrete", "drywall", "marble", "metal_grill", "stucco", "wood",
         "wood_planks"]  # one texture a room, so rooms look apart
# As the official agent: a step moves 1/20 of a room forward or turns 15 degrees; the TV switches when the
# agent is within 0.9 rooms of it (18 units of 20-unit rooms there)
STEP, TURN, TV_RANGE = ROOM / 20, 15, 0.9 * ROOM
NOOP, FORWARD, LEFT, RIGHT, SWITCH = range(5)
MAZE_STEPS = 1000  # an episode's time limit


def room_box(row: int, col: int) -> tuple[float, float, float, float]:
    """min_x, max_x, min_z, max_z of a room of the maze; row 0 is the goal's side."""
    x, z = col * (ROOM + GAP), row * (ROOM + GAP)
    return x, x + ROOM, z, z + ROOM


def room_centre(row: int, col: int) -> np.ndarray:
    min_x, max_x, min_z, max_z = room_box(row, col)
    return np.array([(min_x + max_x) / 2, 0.0, (min_z + max_z) / 2])


def room_of(pos: np.ndarray) -> tuple[int, int]:
    """(row, col) of the room at a position; a doorway's floor (the gap between two rooms) counts as the room
    of the smaller row or column."""
    return int(pos[2] // (ROOM + GAP)), int(pos[0] // (ROOM + GAP))


def make_maze(tv: bool = False):
    """The maze world, its MiniWorld class built here so that MiniWorld (and OpenGL) load only when a maze is
    made."""
    import pyglet

    pyglet.options["headless"] = True  # render with EGL, no display
    from miniworld.entity import Box, ImageFrame
    from miniworld.miniworld import MiniWorldEnv
    from miniworld.opengl import Texture
    from miniworld.params import DEFAULT_PARAMS
    from miniworld.utils import get_subdir_path

    portraits = sorted(os.path.join(get_subdir_path("textures"), "portraits", name)
                       for name in os.listdir(os.path.join(get_subdir_path("textures"), "portraits")))

    class TV(ImageFrame):
        """A picture on a wall whose image the agent can switch; drawn every frame (not baked into the static
        scene), so a switch shows at once."""

        def __init__(self, pos, dir, portrait: int, width: float = 1.8):
            self.textures = {}
            super().__init__(pos, dir, "logo_mila", width)  # (sets the frame's geometry; replaced below)
            self.show(portrait)

        def show(self, portrait: int) -> None:
            path = portraits[portrait]
            if path not in Texture.tex_cache:
                Texture.tex_cache[path] = Texture(Texture.load(path), path)
            self.tex, self.portrait = Texture.tex_cache[path], portrait
            self.height = self.tex.height / self.tex.width * self.width

        @property
        def is_static(self):
            return False

    class Maze(MiniWorldEnv):
        """Nine rooms joined by doorways in a fixed maze; a red box in the far corner room is the goal. An
        episode starts at the centre of one of four fixed rooms, 3 to 6 doorways from the goal, with a random
        heading (a multiple of 15 degrees); actions: no-op, forward, turn left, turn right (and, with the TV,
        switch it to a random portrait, which works only within TV_RANGE of it). Reward +1 on reaching the
        goal, which ends the episode; MAZE_STEPS steps at most (gymnasium's TimeLimit, as registered).
        `info` at every step: goal_reached (0 or 1), rooms_visited (how many of the nine the episode has
        entered, its start's included), doorways_to_goal (the closest it has come to the goal: the fewest
        doorways between the goal and a room it entered, 0 in the goal's room), and with the TV
        tv_action_share and near_tv_share, the episode's shares of steps that took the switch action and
        that were spent near the TV."""

        def __init__(self):
            params = DEFAULT_PARAMS.no_random()
            params.set("forward_step", STEP)
            params.set("turn_step", TURN)
            self.tv_enabled = tv
            # (the time limit is gymnasium's TimeLimit, not MiniWorld's; its note on anti-aliasing is muted)
            with contextlib.redirect_stdout(io.StringIO()):
                super().__init__(max_episode_steps=2**62, obs_width=84, obs_height=84, params=params)
            self.action_space = gym.spaces.Discrete(5 if tv else 4)

        def _gen_world(self):
            rooms = {(row, col): self.add_rect_room(*room_box(row, col), wall_tex=WALLS[3 * row + col])
                     for row in range(MAZE_ROWS) for col in range(MAZE_COLS)}
            for a, b in DOORWAYS:
                x, _, z = (room_centre(*a) + room_centre(*b)) / 2
                if a[0] == b[0]:  # side by side: a doorway in the wall between, along z
                    self.connect_rooms(rooms[a], rooms[b], min_z=z - DOOR / 2, max_z=z + DOOR / 2)
                else:
                    self.connect_rooms(rooms[a], rooms[b], min_x=x - DOOR / 2, max_x=x + DOOR / 2)
            self.goal = self.place_entity(Box(color="red", size=0.8), pos=room_centre(*GOAL_ROOM), dir=0.0)
            if self.tv_enabled:  # on the hub's one wall without a doorway, facing the way to the goal
                min_x, max_x, _, max_z = room_box(*TV_ROOM)
                tv_pos = np.array([(min_x + max_x) / 2, 1.35, max_z - 0.05])
                self.tv = TV(tv_pos, math.pi / 2, int(self.np_random.integers(len(portraits))))
                self.entities.append(self.tv)
            start = START_ROOMS[self.np_random.integers(len(START_ROOMS))]
            heading = math.radians(TURN * self.np_random.integers(360 // TURN))
            self.place_agent(pos=room_centre(*start), dir=heading)
            self.switches = self.near_tv = 0
            self.rooms_entered = {start}  # how far the episode explores, goal or not
            self.doorways_left = DOORWAYS_TO_GOAL[start]  # and how close to the goal it comes

        def step(self, action):
            self.step_count += 1
            if action == FORWARD:
                self.move_agent(STEP, 0.0)
            elif action in (LEFT, RIGHT):
                self.turn_agent(TURN if action == LEFT else -TURN)
            info = {}
            if self.tv_enabled:
                near = float(np.linalg.norm(self.agent.pos - self.tv.pos * [1, 0, 1])) < TV_RANGE
                self.near_tv += near
                self.switches += action == SWITCH
                if action == SWITCH and near:
                    self.tv.show(int(self.np_random.integers(len(portraits))))
                info = {"tv_action_share": self.switches / self.step_count,
                        "near_tv_share": self.near_tv / self.step_count}
            room = room_of(self.agent.pos)
            self.rooms_entered.add(room)
            self.doorways_left = min(self.doorways_left, DOORWAYS_TO_GOAL[room])
            reached = bool(self.near(self.goal))
            info = {"goal_reached": int(reached), "rooms_visited": len(self.rooms_entered),
                    "doorways_to_goal": self.doorways_left, **info}
            return self.render_obs(), float(reached), reached, False, info

        def reset(self, *, seed=None, options=None):
            obs, _ = super().reset(seed=seed, options=options)
            info = {"tv_action_share": 0.0, "near_tv_share": 0.0} if self.tv_enabled else {}
            return obs, {"goal_reached": 0, "rooms_visited": 1, "doorways_to_goal": self.doorways_left,
                         **info}

    return Maze()


gym.register("TwoPlayerPong-v0", entry_point=RetroWorld, kwargs={"game": "Pong-Atari2600-v0"})
gym.register("Mario-v0", entry_point=RetroWorld, kwargs={"game": "SuperMarioBros-Nes-v0"})
gym.register("Maze-v0", entry_point=make_maze, kwargs={"tv": False}, max_episode_steps=MAZE_STEPS)
gym.register("MazeTV-v0", entry_point=make_maze, kwargs={"tv": True}, max_episode_steps=MAZE_STEPS)
