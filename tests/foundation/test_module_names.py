"""One name per thing: no two modules of the package (recon/, cta/, vl/, vidllm/) share a name.

A name is a module's file stem (``__init__.py`` left out) or a package's folder name, so a module and a
package cannot share one either (``vidllm/teachers/`` next to ``vidllm/training/teachers.py`` was such a
pair). Two files with the same name in different folders read the same in tracebacks, logs, editor tabs
and ``grep`` results, and ``from x import y`` alone no longer says which one is meant.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("recon", "cta", "vl", "vidllm")

LEAF_PACKAGE_NAMES = frozenset({"config", "losses", "model", "processing"})
"""The one deliberate exception, one role per name across the packages: each of ``recon/``, ``cta/``, ``vl/``
and ``vidllm/`` has its own ``config.py`` (its typed config dataclasses), and ``recon/losses.py`` /
``vl/losses.py``, ``recon/model.py`` / ``vidllm/model.py``, ``vl/processing.py`` / ``vidllm/processing.py``
are a branch's part next to the whole (the transformers ``configuration_*`` / ``modeling_*`` /
``processing_*`` roles, one per package). Any other repeated name fails."""

ALLOWED = LEAF_PACKAGE_NAMES


def module_names(root: Path, packages=PACKAGES) -> dict[str, list[str]]:
    """Each module or package name under ``root/<package>`` → the repository paths that carry it."""
    found: dict[str, list[str]] = defaultdict(list)
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root)
            if path.name == "__init__.py":  # a package: its folder name counts
                found[rel.parts[-2]].append(rel.parent.as_posix() + "/")
                continue
            found[path.stem].append(rel.as_posix())
    return dict(found)


def shared_names(names: dict[str, list[str]]) -> dict[str, list[str]]:
    """The names carried by more than one module or package."""
    return {name: paths for name, paths in sorted(names.items()) if len(paths) > 1}


def test_no_two_modules_share_a_name():
    names = module_names(ROOT)
    assert "world" in names and "tiny_teachers" in names  # the walk found the package, subpackages included
    clashes = {name: paths for name, paths in shared_names(names).items() if name not in ALLOWED}
    assert clashes == {}, f"module / package names used more than once (rename one of each): {clashes}"


def test_allowed_clashes_still_exist():
    """An allow-list entry whose clash is gone must leave the list, so the list only ever shrinks."""
    stale = sorted(ALLOWED - set(shared_names(module_names(ROOT))))
    assert stale == [], f"no longer clashing, remove from the allow-list in {Path(__file__).name}: {stale}"


def test_clash_finder_sees_modules_and_packages(tmp_path):
    """A module named like another module, or like a subpackage, is reported; ``__init__.py`` is not."""
    for rel in (
        "vl/__init__.py",
        "vl/a.py",
        "vl/sub/__init__.py",
        "vl/sub/a.py",
        "vidllm/__init__.py",
        "vidllm/sub.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert shared_names(module_names(tmp_path, packages=("vl", "vidllm"))) == {
        "a": ["vl/a.py", "vl/sub/a.py"],
        "sub": ["vl/sub/", "vidllm/sub.py"],
    }
    assert "vl" in module_names(tmp_path, packages=("vl",))  # a top-level package's name counts too
