"""The docs cannot drift from the code (issue 34): the site (mkdocs.yml, `mkdocs build --strict` in
.ci/run) generates the command reference from the click commands and the API reference from the
docstrings, so what it shows is what the code says; these tests fail when what it would show is
empty (an option without help, a public function without a docstring), when a page's command names
an option that is gone, or when the README links to a file that is not there."""

from __future__ import annotations

import importlib
import inspect
import re
import shlex

import click
import pytest

from ddpm_deploy.cli import main
from tests.helpers import REPO

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.M)


def commands(group: click.Group = main, prefix: str = "ddpm-deploy"):
    """(name, command) for every command under ``group``, nested groups included."""
    for name, command in sorted(group.commands.items()):
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


COMMANDS = dict(commands())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_option_has_help(name):
    command = COMMANDS[name]
    assert (command.help or "").strip(), (
        f"{name} has no docstring (its --help and the docs are empty)"
    )
    missing = [
        "/".join(p.opts)
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
    ]
    assert not missing, f"{name}: options without help text: {', '.join(missing)}"


def test_the_command_reference_is_generated_from_the_cli():
    page = (DOCS / "cli.md").read_text()
    assert re.search(r"^::: mkdocs-click$", page, re.M)
    assert ":module: ddpm_deploy.cli" in page and ":command: main" in page
    assert ":list_subcommands: true" in page
    nav = (REPO / "mkdocs.yml").read_text()
    assert "cli.md" in nav and "api.md" in nav and "strict: true" in nav


# -- the API reference: every public name documented, every documented name with a docstring -----


def documented() -> list[str]:
    """The objects the pages render from docstrings (mkdocstrings' `::: path` directives)."""
    return sorted(
        {name for page in PAGES for name in DIRECTIVE.findall(page.read_text())} - {"mkdocs-click"}
    )


def resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def undocumented(path: str, obj) -> list[str]:
    """``path`` and its public members (a class's own methods and properties) without a docstring."""
    missing = [] if (obj.__doc__ or "").strip() else [path]
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            if name.startswith("_") or name in getattr(obj, "__dataclass_fields__", {}):
                continue
            function = member.fget if isinstance(member, property) else member
            function = getattr(function, "__func__", function)  # classmethod, staticmethod
            if callable(function) and not (function.__doc__ or "").strip():
                missing.append(f"{path}.{name}")
    elif inspect.ismodule(obj):
        for name in getattr(obj, "__all__", []):
            if not name.startswith("_"):
                missing += undocumented(f"{path}.{name}", getattr(obj, name))
    return missing


def test_the_api_pages_document_the_public_api():
    public = {f"ddpm_deploy.{name}" for name in __import__("ddpm_deploy").__all__}
    public -= {"ddpm_deploy.__version__"}
    assert public <= set(documented()), (
        f"public but on no page: {sorted(public - set(documented()))}"
    )


@pytest.mark.parametrize("path", documented())
def test_every_documented_object_has_docstrings(path):
    missing = undocumented(path, resolve(path))
    assert not missing, f"no docstring (the API reference would be empty): {', '.join(missing)}"


def test_undocumented_finds_what_it_looks_for():
    class Thing:
        """Documented."""

        def documented(self):
            """Yes."""

        def bare(self):
            pass

        @property
        def bare_property(self):
            return 1

    assert undocumented("Thing", Thing) == ["Thing.bare", "Thing.bare_property"]


# -- commands written in the README and the pages: every option still exists --------------------


def written_commands(text: str) -> list[str]:
    """Every `ddpm-deploy ...` command in fenced code blocks (continuation lines joined, comments
    dropped) and in inline code."""
    found = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            found += [m.split(" #")[0] for m in re.findall(r"ddpm-deploy [^|;&]*", line)]
    for span in re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)):
        found += re.findall(r"ddpm-deploy [^|;&]*", span)
    return found


# Commands that records of measurements ran at an earlier release, kept as they were run: (page,
# command, option). A new entry needs the same reason.
HISTORICAL = {
    # the 4-call student of QUALITY.md, distilled before distill became SFD (b8b94e1)
    ("docs/README.md", "ddpm-deploy distill", "--trajectories"),
    ("docs/README.md", "ddpm-deploy distill", "--epochs"),
    # the int8 file of BENCHMARKS.md's precision run, made before the --int8 flag went (6c36a29)
    ("docs/BENCHMARKS.md", "ddpm-deploy quantize", "--int8"),
}


def options_gone(line: str) -> list[str]:
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    words = words[1:]
    if not words or words[0].startswith("-"):
        return [w for w in words if w.startswith("--") and w not in ("--help", "--version")]
    name = f"ddpm-deploy {words[0]}"
    if name not in COMMANDS:
        return [f"no command {words[0]!r}"] if re.fullmatch(r"[a-z][a-z-]*", words[0]) else []
    known = {o for p in COMMANDS[name].params for o in (*p.opts, *p.secondary_opts)}
    known |= {"--help", "-h"}
    flags = (w.split("=")[0] for w in words[1:] if w.startswith("--"))
    return [f for f in flags if f not in known and re.fullmatch(r"--[a-z0-9-]+", f)]


@pytest.mark.parametrize(
    "page", [REPO / "README.md", *PAGES], ids=lambda p: str(p.relative_to(REPO))
)
def test_written_commands_name_options_that_exist(page):
    stale = {}
    where = str(page.relative_to(REPO))
    for line in written_commands(page.read_text()):
        command = " ".join(line.split()[:2])
        if gone := [o for o in options_gone(line) if (where, command, o) not in HISTORICAL]:
            stale[line.strip()] = gone
    assert not stale, f"{page.name}: commands with options their command no longer has: {stale}"


def test_options_gone_sees_a_removed_option():
    assert options_gone("ddpm-deploy sample --class sneaker -n 8") == []
    assert options_gone("ddpm-deploy sample --no-such-option 3") == ["--no-such-option"]
    assert options_gone("ddpm-deploy no-such-command") == ["no command 'no-such-command'"]


def test_the_readme_links_to_files_that_exist():
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local and not [t for t in local if not (REPO / t).exists()]
    assert len(readme.splitlines()) <= 200, "the README is read in five minutes: 200 lines at most"


def test_the_readme_python_snippet_runs():
    readme = (REPO / "README.md").read_text()
    (snippet,) = re.findall(r"^```python\n(.*?)^```", readme, re.M | re.S)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["images"].shape == (16, 28, 28) and set(scope["labels"]) == {7}  # sneaker
