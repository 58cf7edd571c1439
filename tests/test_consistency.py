"""The five scripts are one program with five feature methods: what they share must stay the same text.

A reader who diffs two scripts should see the feature idea and nothing else, and a fix to shared code
must reach every script. Each script lists here the top-level names it defines as its own; every other
function or class defined in two scripts under one name must have identical source, and so must every
module constant and every field of Args (its default and docstring) that the method does not change.
"""
import ast
import difflib
import functools
import itertools
import subprocess

import pytest

from conftest import ROOT

# Names a script defines for its own feature method (or, for the mix script, its own setting).
OWN = {
    "curiosity_rf": {"Features"},
    "curiosity_idf": {"Features"},
    "curiosity_vae": {"Args", "Features", "save_reconstructions"},
    "curiosity_pixels": {"Args", "Features", "ForwardModel", "save_predictions"},
    "curiosity_extrinsic_mix": {"Args", "Features", "make_room_envs", "RoomTracker"},
}
# Fields of Args whose default or meaning a script changes for its method; every other field it shares with
# curiosity_rf.py (annotation, default and docstring) must be the same text.
OWN_FIELDS = {
    "curiosity_rf": set(), "curiosity_idf": set(),
    "curiosity_vae": {"feature_dim"},
    "curiosity_pixels": {"feature_dim"},
    "curiosity_extrinsic_mix": {"env_id", "int_coef", "ext_coef", "use_dones"},
}
# How many lines of main() may differ from curiosity_rf.py's.
MAIN_BLOCK_BUDGET = {"curiosity_idf": 0, "curiosity_vae": 10, "curiosity_pixels": 10, "curiosity_extrinsic_mix": 30}
# How many lines `diff curiosity_rf.py X.py` may show changed, at most: the feature idea and nothing else.
DIFF_BUDGET = {"curiosity_idf": 24, "curiosity_vae": 94, "curiosity_pixels": 117, "curiosity_extrinsic_mix": 163}
MAIN_LINES = 130  # curiosity_rf.py's main() reads top to bottom in about two screens
PLUMBING_BANNER = "# Plumbing:"

SCRIPTS = sorted(p.stem for p in ROOT.glob("curiosity_*.py"))


@functools.cache
def parsed(name: str) -> tuple[str, ast.Module, list[bytes]]:
    """A script's text, its syntax tree and its lines as bytes (the offsets of ast count UTF-8 bytes)."""
    text = (ROOT / f"{name}.py").read_text()
    return text, ast.parse(text), text.encode().splitlines(keepends=True)


def source(name: str, node: ast.AST) -> str:
    """ast.get_source_segment without its cost: that splits the whole file into lines at each call, which made
    these tests take 2 s each."""
    lines = parsed(name)[2][node.lineno - 1:node.end_lineno]
    lines[-1] = lines[-1][:node.end_col_offset]
    lines[0] = lines[0][node.col_offset:]
    return b"".join(lines).decode()


def top_level(name: str) -> tuple[dict[str, str], list[str]]:
    """Source of each top-level function and class but main(), and the lines of main()."""
    defs, main = {}, []
    for node in parsed(name)[1].body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            main = source(name, node).splitlines()
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = source(name, node)
    return defs, main


def constants(name: str) -> dict[str, str]:
    """Source of each top-level assignment (module constants), by name."""
    found = {}
    for node in parsed(name)[1].body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    found[target.id] = source(name, node)
    return found


def args_fields(name: str) -> dict[str, str]:
    """Source of each field of Args with the docstring under it, by name."""
    (args,) = [node for node in parsed(name)[1].body if isinstance(node, ast.ClassDef) and node.name == "Args"]
    fields = {}
    for node, after in zip(args.body, args.body[1:] + [None]):
        if isinstance(node, ast.AnnAssign):
            doc = source(name, after) if isinstance(after, ast.Expr) else "(no docstring)"
            fields[node.target.id] = source(name, node) + "\n" + doc
    return fields


def test_every_script_is_known():
    assert "curiosity_rf" in SCRIPTS
    assert set(SCRIPTS) <= set(OWN), f"add {set(SCRIPTS) - set(OWN)} to OWN"


@pytest.mark.parametrize("name", SCRIPTS)
def test_own_names_exist(name):
    defs, main = top_level(name)
    assert main, f"{name} has no main()"
    assert (ROOT / f"{name}.py").read_text().rstrip().endswith('if __name__ == "__main__":\n    main()')
    assert OWN[name] <= set(defs) | {"Args"}, f"{name} declares names it does not define: {OWN[name] - set(defs)}"


@pytest.mark.parametrize("a, b", list(itertools.combinations(SCRIPTS, 2)))
def test_shared_code_is_identical(a, b):
    defs_a, _ = top_level(a)
    defs_b, _ = top_level(b)
    for name in sorted((set(defs_a) & set(defs_b)) - OWN[a] - OWN[b]):
        if defs_a[name] != defs_b[name]:
            diff = "\n".join(difflib.unified_diff(defs_a[name].splitlines(), defs_b[name].splitlines(), a, b, lineterm=""))
            pytest.fail(f"{name} differs between {a} and {b}:\n{diff}")


@pytest.mark.parametrize("a, b", list(itertools.combinations(SCRIPTS, 2)))
def test_shared_module_constants_are_identical(a, b):
    constants_a, constants_b = constants(a), constants(b)
    for name in sorted(set(constants_a) & set(constants_b)):
        assert constants_a[name] == constants_b[name], f"{name} differs between {a} and {b}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_args_fields_are_the_same_text_unless_the_method_changes_them(name):
    reference, fields = args_fields("curiosity_rf"), args_fields(name)
    assert set(reference) <= set(fields), f"{name} lacks {set(reference) - set(fields)}"
    differ = {field for field in reference if fields[field] != reference[field]}
    assert differ == OWN_FIELDS[name], f"{name}: fields differing from curiosity_rf.py: {sorted(differ)}"
    undocumented = [field for field, source in fields.items() if source.endswith("(no docstring)")]
    assert not undocumented, f"{name}: fields without a docstring: {undocumented}"


@pytest.mark.parametrize("name", [s for s in SCRIPTS if s != "curiosity_rf"])
def test_main_block_differs_only_where_the_method_does(name):
    _, main_rf = top_level("curiosity_rf")
    _, main = top_level(name)
    changed = [line for line in difflib.unified_diff(main_rf, main, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) <= MAIN_BLOCK_BUDGET[name], "\n".join(changed)


@pytest.mark.parametrize("name", [s for s in SCRIPTS if s != "curiosity_rf"])
def test_a_diff_against_rf_shows_the_method_and_nothing_else(name):
    diff = subprocess.run(["diff", ROOT / "curiosity_rf.py", ROOT / f"{name}.py"], capture_output=True, text=True)
    changed = [line for line in diff.stdout.splitlines() if line[:1] in "<>"]  # as `diff | grep -c '^[<>]'`
    assert len(changed) <= DIFF_BUDGET[name], f"{name}: {len(changed)} changed lines"


@pytest.mark.parametrize("name", SCRIPTS)
def test_main_reads_in_two_screens_and_the_algorithm_is_single_process_code(name):
    _, main = top_level(name)
    allowed = MAIN_LINES + MAIN_BLOCK_BUDGET.get(name, 0)  # a method's own lines in main() come on top
    assert len(main) <= allowed, f"{name}: main() has {len(main)} lines"
    text = (ROOT / f"{name}.py").read_text()
    above = text[: text.index(PLUMBING_BANNER)]
    assert "dist." not in above, "torch.distributed belongs in the plumbing section's helpers"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_import_nothing_from_this_repo(name):
    tree = ast.parse((ROOT / f"{name}.py").read_text())
    local = {p.stem for p in ROOT.glob("*.py")} | {"tests", "benchmarks", "conftest"}
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & local, f"{name} imports {imported & local}: a script must be copyable alone"


@pytest.mark.parametrize("name", SCRIPTS)
def test_lines_are_at_most_110_characters(name):
    long = [i for i, line in enumerate((ROOT / f"{name}.py").read_text().splitlines(), 1) if len(line) > 110]
    assert not long, f"{name}: lines over 110 characters: {long}"
