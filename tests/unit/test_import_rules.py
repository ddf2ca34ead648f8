"""The sides of the SPE (docs/architecture.md) import only what they may: checked on every module.

Each module of lnds_spe belongs to one side, by the longest matching prefix in SIDES; every
`import lnds_spe...` / `from lnds_spe... import` in it (at any depth, TYPE_CHECKING blocks
included) must name a module of its own side or of a side in MAY_IMPORT.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lnds_spe"

# Side -> module prefixes (dotted, without "lnds_spe.").
SIDES = {
    "core": ["", "errors", "policy", "config", "clock", "sdc", "analysis"],
    "workspace": ["workspace"],
    "data": ["crypto", "storage", "datasets", "ingress", "cli_data"],
    "registry": ["projects", "db", "audit", "migrations", "demo"],
    "hub": ["hub", "airlock", "lifecycle", "services", "services.airlock", "services.airlock_api",
            "services.airlock_pages", "services.hub_auth"],
    "ipms": ["pseudonym", "services.pseudonym", "services.pseudonym_api", "cli_pseudo"],
    "admin": ["cli", "__main__"],
}
MAY_IMPORT = {
    "core": {"core"},
    "workspace": {"core"},
    "data": {"core", "registry"},
    "registry": {"core", "data"},
    "hub": {"core", "data", "registry", "admin"},
    "ipms": {"core", "data"},
    "admin": {"core", "data", "registry", "hub", "ipms"},
}
FORBIDDEN_EVERYWHERE_BUT_ITSELF = {"workspace"}  # nothing imports code that runs in a workspace


def side_of(module: str) -> str:
    """The side of a dotted module name below lnds_spe ('' for the package itself)."""
    best, best_len = "", -1
    for side, prefixes in SIDES.items():
        for prefix in prefixes:
            matches = (module == prefix or module.startswith(prefix + ".")) if prefix else True
            length = len(prefix.split(".")) if prefix else 0
            if matches and length > best_len:
                best, best_len = side, length
    return best


def module_name(path: Path) -> str:
    """`lnds_spe/hub/spawner.py` -> 'hub.spawner'; a package's __init__ -> its name."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def spe_imports(path: Path) -> list[str]:
    """Every lnds_spe module a file imports, dotted below lnds_spe ('' for the package)."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = ["lnds_spe." + target if target else "lnds_spe"]
            else:
                names = [node.module or ""]
            if names[0] == "lnds_spe":  # `from lnds_spe import x`: x may be a module
                names = ["lnds_spe." + alias.name for alias in node.names]
        else:
            continue
        found += [name.removeprefix("lnds_spe").lstrip(".") for name in names
                  if name == "lnds_spe" or name.startswith("lnds_spe.")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_on_a_side():
    assert len(MODULES) > 50, f"found only {len(MODULES)} modules under {PACKAGE}"
    unplaced = [module_name(p) for p in MODULES
                if side_of(module_name(p)) == "core" and module_name(p).split(".")[0]
                not in {"", "errors", "policy", "config", "clock", "sdc", "analysis"}]
    assert not unplaced, f"put these modules on a side in SIDES: {unplaced}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p) or "lnds_spe")
def test_imports_stay_within_the_sides_allowed(path):
    side = side_of(module_name(path))
    wrong = [(target, side_of(target)) for target in spe_imports(path)
             if side_of(target) != side and side_of(target) not in MAY_IMPORT[side]]
    assert not wrong, (f"{module_name(path)} ({side} side) imports {wrong}; the {side} side may "
                       f"import only {sorted(MAY_IMPORT[side] | {side})} (docs/architecture.md)")


def test_the_rules_catch_a_hub_import_in_the_workspace(tmp_path):
    """The checker itself: a workspace module importing the registry is found."""
    bad = PACKAGE / "workspace" / "egress.py"
    imports = spe_imports(bad) + ["projects"]
    assert any(side_of(t) not in MAY_IMPORT["workspace"] | {"workspace"} for t in imports)
    assert side_of("hub.spawner") == "hub" and side_of("services.pseudonym") == "ipms"
    assert side_of("workspace.egress") == "workspace" and side_of("sdc.acro") == "core"


def test_nothing_imports_the_workspace_side():
    importers = [module_name(p) for p in MODULES if side_of(module_name(p)) != "workspace"
                 and any(side_of(t) in FORBIDDEN_EVERYWHERE_BUT_ITSELF for t in spe_imports(p))]
    assert not importers, f"these modules import workspace-side code: {importers}"
