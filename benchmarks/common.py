"""What the benchmark tools share: where the scripts are, how to load one as a module or run it in-process."""
import importlib.util
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # so that gymnasium imports `benchmarks.worlds:...` ids here as the scripts do
SCRIPTS = sorted(p.stem for p in ROOT.glob("curiosity_*.py"))


def load_script(name: str = "curiosity_rf"):
    """Imports a script by path; its __main__ block does not run."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(name: str, argv: list[str]) -> None:
    """Runs a script's __main__ in this process, as `python NAME.py ARGV` would (so a profiler or a FLOP
    counter around the call sees every op it runs)."""
    saved_argv, sys.argv = sys.argv, [str(ROOT / f"{name}.py"), *argv]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv = saved_argv
