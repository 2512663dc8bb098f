"""The rules of the house (docs/architecture.md), checked on the source itself: SQL lives in
geo/db only, settings are read in geo/settings.py only, no module under geo/ grows past 600
lines, README stays a tour, and every link in the docs leads somewhere. (The import rules are
import-linter's, run by `make lint`.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = [p for pkg in ("geo", "api", "maps", "cli") for p in sorted((ROOT / pkg).rglob("*.py"))]
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|DATABASE)"
                 r"|ALTER\s+(TABLE|DATABASE)|DROP\s+(TABLE|DATABASE)|COPY\s+\w+\s*\()", re.IGNORECASE | re.DOTALL)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module that are not docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_sql_lives_in_geo_db_only():
    found = [f"{_relative(p)}:{line}: {text.strip()[:60]!r}" for p in CODE
             if not _relative(p).startswith("geo/db/") for line, text in _strings(p) if SQL.search(text)]
    assert not found, "SQL outside geo/db:\n" + "\n".join(found)


def test_the_environment_is_read_in_geo_settings_only():
    reads = re.compile(r"(os\.environ(\.get)?|os\.getenv)\s*[\[(]\s*[\"'](GRIDMAP_|DATABASE_URL)")
    found = [f"{_relative(p)}:{n}" for p in CODE if _relative(p) != "geo/settings.py"
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if reads.search(line)]
    assert not found, "settings read outside geo/settings.py: " + ", ".join(found)


def test_no_module_under_geo_is_over_600_lines():
    long = {_relative(p): n for p in CODE if _relative(p).startswith("geo/")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, f"split these: {long}"


def test_geo_knows_no_status_codes():
    found = [f"{_relative(p)}:{n}" for p in CODE if _relative(p).startswith("geo/")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\bstatus(_code)?\s*=\s*[1-5]\d\d\b", line)]
    assert not found, "HTTP statuses in geo: " + ", ".join(found)


def test_readme_is_a_tour():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: _relative(p))
def test_every_link_in_the_docs_leads_somewhere(page):
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{_relative(page)} links to what is not there: {broken}"


def test_the_architecture_page_names_every_package_and_route_module():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = sorted({_relative(p.parent) + "/" for p in CODE if p.name == "__init__.py"})
    routes = sorted(_relative(p) for p in (ROOT / "api" / "routes").glob("*.py") if p.name != "__init__.py")
    missing = [name for name in packages + routes if name not in page]
    assert not missing, f"docs/architecture.md does not mention: {missing}"
