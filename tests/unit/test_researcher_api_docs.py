"""The researcher-facing APIs (lnds_spe.sdc.ACRO, lnds_spe.analysis) document every parameter
in a numpydoc "Parameters" section, so the docs cannot drift from the signatures."""

import inspect
import re

import pytest

import lnds_spe.analysis
from lnds_spe.analysis import synthetic
from lnds_spe.sdc import ACRO

_SECTION_RULE = re.compile(r"^-{3,}$")
_ENTRY = re.compile(r"^(\*{0,2}\w+)(?:\s*:\s*(.*))?$")


def numpydoc_sections(doc: str) -> dict[str, list[str]]:
    """The lines of each numpydoc section ('Parameters', 'Returns', ...) by its title."""
    lines = inspect.cleandoc(doc).splitlines()
    sections: dict[str, list[str]] = {}
    title = None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and _SECTION_RULE.match(lines[i + 1].strip()) and line.strip():
            title = line.strip()
            sections[title] = []
        elif title is not None and not _SECTION_RULE.match(line.strip()):
            sections[title].append(line)
    return sections


def documented_parameters(doc: str) -> dict[str, tuple[str | None, list[str]]]:
    """Each entry of the Parameters section: name -> (type, description lines)."""
    entries: dict[str, tuple[str | None, list[str]]] = {}
    name = None
    for line in numpydoc_sections(doc).get("Parameters", []):
        if line and not line[0].isspace():
            match = _ENTRY.match(line.strip())
            assert match, f"not a numpydoc parameter line: {line!r}"
            name = match.group(1)
            entries[name] = (match.group(2), [])
        elif name is not None and line.strip():
            entries[name][1].append(line.strip())
    return entries


def signature_names(func) -> list[str]:
    """Parameter names as numpydoc writes them (*args, **kwargs), without self/cls."""
    names = []
    for parameter in inspect.signature(func).parameters.values():
        if parameter.name in ("self", "cls"):
            continue
        prefix = {inspect.Parameter.VAR_POSITIONAL: "*",
                  inspect.Parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "")
        names.append(prefix + parameter.name)
    return names


def public_methods(cls: type) -> dict[str, object]:
    """The functions, classmethods and staticmethods a class defines without a leading _."""
    methods = {}
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, classmethod | staticmethod):
            member = member.__func__
        if inspect.isfunction(member):
            methods[f"{cls.__name__}.{name}"] = member
    return methods


def researcher_api() -> dict[str, tuple[object, object]]:
    """What to check: name -> (the callable whose signature counts, the docstring's owner)."""
    api: dict[str, tuple[object, object]] = {"ACRO": (ACRO.__init__, ACRO)}
    api.update({name: (func, func) for name, func in public_methods(ACRO).items()})
    # the package's API, and the synthetic data the notebooks and benchmarks build on
    exported = [getattr(lnds_spe.analysis, name) for name in lnds_spe.analysis.__all__]
    exported += [obj for name, obj in vars(synthetic).items()
                 if not name.startswith("_") and getattr(obj, "__module__", "") == synthetic.__name__]
    for obj in exported:
        if inspect.isfunction(obj):
            api[obj.__name__] = (obj, obj)
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            api.update({n: (f, f) for n, f in public_methods(obj).items()})
    return api


API = researcher_api()


def test_the_api_covers_what_researchers_call():
    for name in ("ACRO", "ACRO.crosstab", "ACRO.pivot_table", "ACRO.finalise", "ACRO.logitr",
                 "groupby_reduce", "knn_idw", "dice_candidates", "window_scan",
                 "TimeSeriesStore.build", "TimeSeriesStore.window", "meteo_network",
                 "MeteoNetwork.series_of"):
        assert name in API


def parameter_problems(func, doc: str) -> list[str]:
    """What the docstring gets wrong about the parameters of `func` (empty when all is well)."""
    expected = signature_names(func)
    documented = documented_parameters(doc)
    if not expected:
        return [f"documents {list(documented)} but takes no parameters"] if documented else []
    if "Parameters" not in numpydoc_sections(doc):
        return ["no numpydoc Parameters section"]
    problems = []
    if list(documented) != expected:
        problems.append(f"the Parameters section lists {list(documented)}, "
                        f"the signature {expected}")
    defaults = {p.name: p.default for p in inspect.signature(func).parameters.values()}
    for parameter, (kind, meaning) in documented.items():
        if not meaning:
            problems.append(f"{parameter} says nothing about what it means")
        if parameter.startswith("*") or parameter not in defaults:
            continue
        if not kind:
            problems.append(f"{parameter} has no type ('{parameter} : type')")
        elif defaults[parameter] is None and not re.search(r"\b(optional|default)\b", kind):
            problems.append(f"{parameter} defaults to None but is not marked optional")
        elif defaults[parameter] not in (None, inspect.Parameter.empty) and "default" not in kind:
            problems.append(f"{parameter} has a default the docstring does not give")
    return problems


@pytest.mark.parametrize("name", sorted(API))
def test_every_parameter_is_documented_with_a_type_and_a_meaning(name):
    func, owner = API[name]
    assert parameter_problems(func, inspect.getdoc(owner) or "") == [], name


@pytest.mark.parametrize("name", sorted(API))
def test_what_is_returned_is_documented(name):
    func, owner = API[name]
    returns = inspect.signature(func).return_annotation
    if returns in ("None", None, inspect.Signature.empty) or owner is ACRO:
        return
    assert "Returns" in numpydoc_sections(inspect.getdoc(owner)), f"{name}: no Returns section"


def test_a_missing_stale_or_untyped_parameter_is_caught():
    def add(a: int, b: int = 1, c: int | None = None) -> int:
        """Add.

        Parameters
        ----------
        a
            The first.
        b : int
            The second.
        gone : int, default 1
            A parameter that no longer exists.
        """
        return a + b + (c or 0)

    problems = parameter_problems(add, inspect.getdoc(add))
    assert any("['a', 'b', 'gone']" in p and "['a', 'b', 'c']" in p for p in problems)
    assert "a has no type ('a : type')" in problems
    assert "b has a default the docstring does not give" in problems
    assert parameter_problems(add, "Add.") == ["no numpydoc Parameters section"]
