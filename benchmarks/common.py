"""What the benchmark tools share: where the scripts are, and how to load one as a module."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in ROOT.glob("curiosity_*.py"))


def load_script(name: str = "curiosity_rf"):
    """Imports a script by path; its __main__ block does not run."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
