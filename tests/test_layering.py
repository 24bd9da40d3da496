"""The layering written down in docs/architecture.md: every import made inside a function
in the application's code says why, with a reason from the closed list there."""

import ast
import re
from pathlib import Path

from django.apps import apps

from worker.celery import app

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("portal", "governance", "monitoring", "datasubjects", "worker")
REASONS = {"task", "slow", "ready", "setup"}
REASON = re.compile(r"#.*--\s*(\w+)")


def _sources() -> list[Path]:
    files = [ROOT / "manage.py"]
    for package in PACKAGES:
        files += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def _inline_imports(path: Path) -> list[tuple[int, str]]:
    """(line, text of the import's first line) of every import inside a function."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import | ast.ImportFrom):
                found.append((inner.lineno, lines[inner.lineno - 1]))
    return found


def test_inline_imports_carry_a_reason_from_the_closed_list():
    """An import inside a function ends its first line with `-- <reason>` (task, slow,
    ready, setup); one without, or with another reason, fails here with its place."""
    unexplained = []
    for path in _sources():
        for line, text in _inline_imports(path):
            match = REASON.search(text)
            if match is None or match.group(1) not in REASONS:
                unexplained.append(f"{path.relative_to(ROOT)}:{line}: {text.strip()}")
    assert unexplained == []


def test_inline_import_check_finds_an_import_without_a_reason(tmp_path):
    """The check above sees imports nested in methods and reads the reason's word."""
    module = tmp_path / "example.py"
    module.write_text(
        "class A:\n"
        "    def f(self):\n"
        "        import json\n"
        "        from os import path  # noqa: PLC0415 -- task\n"
        "        import re  # noqa: PLC0415 -- because\n"
    )
    found = _inline_imports(module)
    assert [line for line, _ in found] == [3, 4, 5]
    reasons = [REASON.search(text) for _, text in found]
    assert reasons[0] is None
    assert reasons[1].group(1) == "task"
    assert reasons[2].group(1) not in REASONS


def test_celery_task_names_start_with_their_app_label():
    """Task names are `<app>.<verb>`: the part before the dot is a Django app's label,
    and the task is defined in that app's package."""
    app.loader.import_default_modules()
    labels = {config.label: config.name for config in apps.get_app_configs()}
    wrong = []
    for name, task in sorted(app.tasks.items()):
        if name.startswith("celery."):
            continue
        label = name.split(".")[0]
        module = task.run.__module__
        if label not in labels or not module.startswith(labels[label] + "."):
            wrong.append(f"{name} ({module})")
    assert wrong == []
