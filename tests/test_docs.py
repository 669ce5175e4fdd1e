"""The documentation site: every public name has a place in the API reference."""

from __future__ import annotations

import doctest
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import metalab

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
# The modules whose public names (their __all__) the API reference must cover, besides
# metalab.__all__ itself.
MODULES = [
    "metalab.seeds",
    "metalab.params",
    "metalab.store",
    "metalab.executors",
    "metalab.cluster",
    "metalab.results",
    "metalab.errors",
]
DIRECTIVE = re.compile(r"^::: *([\w.]+)[ \t]*\n((?:[ \t]+.*\n|[ \t]*\n)*)", re.MULTILINE)


def _module(name: str):
    # metalab.seeds is also a function on the package: go through sys.modules
    importlib.import_module(name)
    return sys.modules[name]


def documented() -> dict[str, object]:
    """Map each documented dotted path (module.name) to its object, from the ::: lines."""
    paths: dict[str, object] = {}
    for page in sorted(API.glob("*.md")):
        for target, options in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            members = re.findall(r"^\s+- (\w+)\s*$", options, re.MULTILINE)
            module = _module(target)
            names = members or list(getattr(module, "__all__", []))
            for name in names:
                paths[f"{target}.{name}"] = getattr(module, name)
    return paths


def test_api_pages_have_directives():
    assert documented(), "docs/api/*.md hold no '::: module' directive"


@pytest.mark.parametrize("name", metalab.__all__)
def test_every_public_name_has_a_page(name):
    obj = getattr(metalab, name)
    places = [path for path, value in documented().items() if value is obj]
    assert any(path.rsplit(".", 1)[1] == name for path in places), (
        f"metalab.{name} is in metalab.__all__ but no page of docs/api/ documents it: add "
        f"its module to a '::: metalab.<module>' directive (its __all__ must list it)"
    )


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_of_the_main_modules_has_a_page(module):
    paths = documented()
    missing = [n for n in _module(module).__all__ if f"{module}.{n}" not in paths]
    assert not missing, f"{module}: not in the API reference: {missing}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    # not --quiet: in mkdocs 1.6 it also silences --strict (warnings no longer fail)
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}"
    return out


def test_built_site_has_an_anchor_for_every_public_name(site):
    html = "\n".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("*.html"))
    anchors = set(re.findall(r'id="(metalab[\w.]*)"', html))
    missing = [p for p in documented() if p not in anchors]
    assert not missing, f"documented in docs/api/ but not rendered: {missing}"


def test_doctest_blocks_render_as_code():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from griffe_doctest import fence_doctests
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    text = "Intro.\n\n>>> x = {'a': [1]}\n>>> x['a'][0]\n1\n\nEnd.\n\n```python\n>>> 2\n```"
    assert fence_doctests(text) == (
        "Intro.\n\n```pycon\n>>> x = {'a': [1]}\n>>> x['a'][0]\n1\n```\n\nEnd.\n\n"
        "```python\n>>> 2\n```"
    )


# Guide pages whose ``>>>`` examples run as doctests, so the outputs they show cannot rot.
GUIDE_DOCTESTS = [
    "seeds.md",
    "params.md",
    "capture.md",
    "contexts.md",
    "executors.md",
    "store.md",
    "coming-from/original-metalab.md",
    "coming-from/optuna.md",
]


@pytest.mark.parametrize("page", GUIDE_DOCTESTS)
def test_guide_page_examples_run(page, tmp_path, monkeypatch):
    pytest.importorskip("numpy", reason="the examples use numpy (pip install -e '.[dev]')")
    # In an empty folder, as a reader would start: the examples write ./runs/<name>.
    monkeypatch.chdir(tmp_path)
    # seeded() restores random, NumPy, torch and CUBLAS_WORKSPACE_CONFIG afterwards: the
    # examples call seed_everything, which would otherwise leak into later tests.
    with metalab.seeded(0):
        failed, attempted = doctest.testfile(
            str(ROOT / "docs" / page),
            module_relative=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            encoding="utf-8",
        )
    assert attempted > 0, f"docs/{page} has no >>> examples"
    assert failed == 0, f"docs/{page}: {failed} of {attempted} examples failed (output above)"
