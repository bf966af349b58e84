"""Every command that README.md and docs/*.md show for this package can run as written.

For each shell command that invokes the package (a console script declared in
setup.cfg, ``python scripts/X.py`` or ``python -m keras_notes...``) the checker makes sure:

- the entry point, script or module exists;
- every ``-x`` / ``--flag`` (also ``--flag=value`` and a ``--no-x`` switch) is accepted by the
  argparse parser of that command. The parser is obtained from the module's
  ``parse_args(argv)`` itself, by making ``ArgumentParser.parse_args`` hand it over
  instead of parsing, so a new command or flag is picked up with nothing added here;
- file paths inside the repository exist (see ``repo_paths``);
- for commands in fenced blocks: ``parse_args(argv)`` accepts the command line as it is
  (positionals and flags in a shape argparse takes, values the config accepts). A command
  shown on purpose to fail ends with the shell comment ``# usage error`` and is exempt
  from this one check.

``pytest`` commands are checked for their test paths only. Commands in inline code spans
are checked like fenced ones, except for the whole-line parse (a span often shows a
fragment, such as ``keras-notes-finetune --strategy mirrored`` without the image folder).
An inline span that starts with a flag (``--cache-budget MIB``) names flags that at least
one of the package's commands must accept.

No TensorFlow is imported: the command-line modules import it inside ``main``.
"""

import argparse
import configparser
import contextlib
import glob
import importlib
import importlib.util
import io
import os
import re
import shlex
from unittest import mock

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "docs", "*.md")))

# Top-level folders that commands write into, not read from: their paths need not exist.
OUTPUT_DIRS = {"runs"}
# A command shown on purpose to fail carries this shell comment.
USAGE_ERROR_MARK = "# usage error"
# Fenced blocks in these languages hold code, not shell commands.
CODE_LANGUAGES = {"python", "py", "json", "yaml", "yml", "toml", "ini", "cfg"}

# The start of an invocation: optional "$ " prompt and VAR=value assignments, then a
# keras-notes-* name, python scripts/..., python -m keras_notes... or pytest, then a space or
# the end (so that an error message such as "keras-notes-predict: error: ..." is not one).
_INVOCATION = r"(?:keras-notes-[\w-]+(?=\s|$)|python3?\s+(?:scripts/|-m\s+keras_notes)|pytest(?=\s|$))"
_CANDIDATE = re.compile(r"(?:^|&&|\|\||;|\|)\s*(?:\$\s+)?(?:\w+=\S*\s+)*" + _INVOCATION)
_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_NEGATIVE_NUMBER = re.compile(r"^-\d+(\.\d*)?([eE][-+]?\d+)?$|^-\.\d+$")


class _ParserHandedOver(Exception):
    """Raised by the patched ``parse_args`` with the parser and the arguments it was given."""

    def __init__(self, parser, args):
        super().__init__("parser handed over")
        self.parser = parser
        self.args = args


def console_scripts(setup_cfg=os.path.join(REPO, "setup.cfg")):
    """``{name: module}`` from setup.cfg's ``[options.entry_points] console_scripts``."""
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    scripts = {}
    for line in config.get("options.entry_points", "console_scripts", fallback="").splitlines():
        if "=" in line:
            name, target = (part.strip() for part in line.split("=", 1))
            scripts[name] = target.split(":")[0]
    return scripts


def script_module(path):
    """The module a ``scripts/X.py`` wrapper calls: the one it imports ``main`` from,
    else ``keras_notes.cli.X`` by name."""
    with open(os.path.join(REPO, path)) as file:
        found = re.search(r"^from\s+(keras_notes[\w.]*)\s+import\s+main\b", file.read(), re.MULTILINE)
    return found.group(1) if found else "keras_notes.cli." + os.path.splitext(os.path.basename(path))[0]


def commands_in_markdown(text):
    """``(line number, command text, fenced)`` for every line that invokes something
    this checker knows; continuation lines (trailing backslash, open quote) are joined."""
    lines = text.splitlines()
    found = []
    fence, language, index = None, "", 0
    while index < len(lines):
        line = lines[index]
        opened = _FENCE.match(line)
        if opened and (fence is None or opened.group(1) == fence):
            if fence is None:
                fence, language = opened.group(1), opened.group(2).lower()
            else:
                fence, language = None, ""
            index += 1
            continue
        if fence is None:
            for span in _INLINE_CODE.findall(line):
                if _CANDIDATE.match(span.strip()):
                    found.append((index + 1, span.strip(), False))
            index += 1
            continue
        if language in CODE_LANGUAGES or not _CANDIDATE.search(line):
            index += 1
            continue
        start, command = index, line
        while (index + 1 < len(lines) and not _FENCE.match(lines[index + 1])
               and (command.rstrip().endswith("\\") or _open_quote(command))):
            index += 1
            command = command.rstrip()[:-1] if command.rstrip().endswith("\\") else command + "\n"
            command += lines[index]
        found.append((start + 1, command.strip(), True))
        index += 1
    return found


def flag_mentions(text):
    """``(line number, span)`` for every inline code span outside fences that starts with a long
    flag (a short one such as ``-s`` in prose is as often pytest's as the package's)."""
    found, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        opened = _FENCE.match(line)
        if opened and (fence is None or opened.group(1) == fence):
            fence = opened.group(1) if fence is None else None
        elif fence is None:
            found += [(number, span) for span in _INLINE_CODE.findall(line)
                      if re.match(r"^--[a-zA-Z]", span.strip())]
    return found


def all_cli_flags(scripts):
    """Every option string that some console script's parser accepts."""
    flags = set()
    for module_name in sorted(set(scripts.values())):
        module = importlib.import_module(module_name)
        if hasattr(module, "parse_args"):
            flags |= set(capture_parser(module, [])[0]._option_string_actions)
    return flags


def _open_quote(command):
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation"
        return True
    return False


def split_commands(command):
    """Shell words of each simple command in ``command`` (split at ``&&``, ``||``, ``;``, ``|``),
    with a leading ``$`` prompt and ``VAR=value`` assignments removed."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    parts, current = [], []
    for word in lexer:
        if word in {"&&", "||", ";", "|", "&"}:
            parts.append(current)
            current = []
        else:
            current.append(word)
    parts.append(current)
    cleaned = []
    for words in parts:
        if words[:1] == ["$"]:
            words = words[1:]
        while words and re.match(r"^\w+=", words[0]):
            words = words[1:]
        if words:
            cleaned.append(words)
    return cleaned


def resolve(words, scripts):
    """``(label, module name or None, argv, problems)`` for one simple command, or None
    when it does not invoke the package."""
    name = os.path.basename(words[0])
    if name.startswith("keras-notes-"):
        if name not in scripts:
            return name, None, [], [f"{name}: no such console script in setup.cfg (known: {sorted(scripts)})"]
        return name, scripts[name], words[1:], []
    if name == "pytest":
        return name, None, words[1:], []
    if re.match(r"^python[\d.]*$", name) and len(words) > 1:
        if words[1] == "-m" and len(words) > 2 and words[2].startswith("keras_notes"):
            module = words[2]
            if importlib.util.find_spec(module) is None:
                return f"python -m {module}", None, [], [f"python -m {module}: no such module"]
            return f"python -m {module}", module, words[3:], []
        if words[1].startswith("scripts/"):
            if not os.path.isfile(os.path.join(REPO, words[1])):
                return words[1], None, [], [f"{words[1]}: no such script"]
            return words[1], script_module(words[1]), words[2:], []
    return None


def capture_parser(module, argv):
    """``(parser, the arguments module.parse_args handed to it)`` without parsing anything."""
    with mock.patch.object(argparse.ArgumentParser, "parse_args", _hand_over), \
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", _hand_over):
        try:
            module.parse_args(list(argv))
        except _ParserHandedOver as handed:
            return handed.parser, list(argv) if handed.args is None else list(handed.args)
    raise AssertionError(f"{module.__name__}.parse_args never called ArgumentParser.parse_args")


def _hand_over(self, args=None, namespace=None):
    raise _ParserHandedOver(self, args)


def unknown_flags(parser, args):
    """The option words in ``args`` (up to a bare ``--``) that ``parser`` does not define."""
    known = parser._option_string_actions  # includes --no-x of a BooleanOptionalAction
    unknown = []
    for word in args:
        if word == "--":
            break
        if not word.startswith("-") or word == "-" or _NEGATIVE_NUMBER.match(word):
            continue
        flag = word.split("=", 1)[0] if word.startswith("--") else word[:2]
        if flag not in known:
            unknown.append(word)
    return unknown


def repo_paths(words):
    """Words that name a path inside the repository and must therefore exist.

    A word (or the value of ``--flag=value``) is such a path when it holds a ``/`` and its
    first component is an existing top-level entry of the repository (``data/``,
    ``scripts/``, ``docs/``, ``tests/``, ...), other than the output folders in
    ``OUTPUT_DIRS``. The value of an option whose name contains ``output`` is written, not
    read, and is exempt. A pytest node id (``tests/test_x.py::test_y``) counts as its file.
    """
    top_level = set(os.listdir(REPO)) - OUTPUT_DIRS - {".git"}
    paths, previous = [], ""
    for word in words:
        value = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
        is_output = "output" in (word.split("=", 1)[0] if word.startswith("--") and "=" in word else previous)
        previous = word if word.startswith("-") else ""
        value = value.split("::", 1)[0]
        if "/" in value and value.split("/", 1)[0] in top_level and not is_output:
            paths.append(value)
    return paths


def _path_exists(path):
    if any(char in path for char in "*?["):
        return bool(glob.glob(os.path.join(REPO, path)))
    return os.path.exists(os.path.join(REPO, path))


def check_command(command, fenced, scripts=None):
    """The problems with one command line: missing entry points, scripts or files, unknown
    flags, and (``fenced``) a command line its parser refuses."""
    scripts = console_scripts() if scripts is None else scripts
    problems = []
    expect_error = USAGE_ERROR_MARK in command
    try:
        simple_commands = split_commands(command)
    except ValueError as error:
        return [f"cannot split into shell words: {error}"]
    for words in simple_commands:
        resolved = resolve(words, scripts)
        if resolved is None:
            continue
        label, module_name, argv, found = resolved
        problems += found
        problems += [f"{label}: {path} does not exist" for path in repo_paths(argv) if not _path_exists(path)]
        if module_name is None:
            continue
        module = importlib.import_module(module_name)
        if not hasattr(module, "parse_args"):
            problems.append(f"{label}: {module_name} has no parse_args(argv)")
            continue
        parser, given = capture_parser(module, argv)
        unknown = unknown_flags(parser, given)
        problems += [f"{label}: {parser.prog} does not accept {flag}" for flag in unknown]
        if fenced and not expect_error and not unknown:  # an unknown flag would only be reported twice
            problems += _parse_problems(label, module, argv)
        problems += _forwarded_problems(module, argv, given, scripts)
    return problems


def _parse_problems(label, module, argv):
    output = io.StringIO()
    try:
        with contextlib.redirect_stderr(output), contextlib.redirect_stdout(io.StringIO()):
            module.parse_args(list(argv))
    except SystemExit as stop:
        if stop.code not in (0, None):
            message = output.getvalue().strip().splitlines()
            return [f"{label}: the command line exits with status {stop.code}: {message[-1] if message else ''}"]
    except ValueError as error:  # a config refusing a value; the command exits 2 on it
        return [f"{label}: the command line is refused: {error}"]
    return []


def _forwarded_problems(module, argv, given, scripts):
    """A launcher hands the arguments after ``--`` to another command, which its module
    builds with ``worker_command``; that command is checked in turn."""
    if len(given) == len(argv) or not hasattr(module, "worker_command"):
        return []
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = module.parse_args(list(argv))
        except (SystemExit, ValueError):
            return []  # reported by the parse check
    worker = module.worker_command(args.worker_args, getattr(args, "command", False))
    if os.path.basename(worker[0]).startswith("python"):
        worker = ["python"] + worker[1:]
    return [f"after '--': {problem}" for problem in check_command(shlex.join(worker), True, scripts)]


def check_markdown(text, scripts=None):
    """``[(line number, command, problem)]`` for a markdown text."""
    scripts = console_scripts() if scripts is None else scripts
    problems = [(line, command, problem) for line, command, fenced in commands_in_markdown(text)
                for problem in check_command(command, fenced, scripts)]
    mentions = flag_mentions(text)
    if mentions:
        known = all_cli_flags(scripts)
        for line, span in mentions:
            for word in span.replace("|", " ").replace("/", " ").split():
                flag = word.split("=", 1)[0]
                if flag.startswith("-") and flag != "--" and flag not in known:
                    problems.append((line, span, f"no command accepts {flag}"))
    return problems


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_in_the_docs_runs_as_written(doc):
    with open(os.path.join(REPO, doc)) as file:
        problems = check_markdown(file.read())
    assert not problems, "\n".join(f"{doc}:{line}: {problem}\n    {command}" for line, command, problem in problems)


def test_the_readme_commands_are_found():
    # Guards the extractor: if it stopped finding commands, the test above would pass on nothing.
    with open(os.path.join(REPO, "README.md")) as file:
        commands = [command for _, command, fenced in commands_in_markdown(file.read()) if fenced]
    assert any(command.startswith("keras-notes-finetune data/digits") for command in commands), commands
    assert 'pip install -e ".[test]" && pytest' in commands


def test_the_readme_test_command_is_what_ci_runs():
    with open(os.path.join(REPO, ".ci", "run")) as file:
        ci_lines = [line.strip() for line in file if line.strip() and not line.lstrip().startswith("#")]
    assert ci_lines[-1] == 'pip install -e ".[test]" && pytest'
    with open(os.path.join(REPO, "README.md")) as file:
        assert "```bash\n" + ci_lines[-1] + "\n```" in file.read()


FAKE_MARKDOWN = """\
Good commands, which must raise nothing:

```bash
pip install -e . && keras-notes-finetune data/digits --epochs 2 --no-cache --output runs/x
python scripts/batch_size.py --batch-sizes=4,64 --learning-rate 0.8
python scripts/launch_local_workers.py -n 2 -- data/digits --output runs/two --epochs 1
keras-notes-predict runs/digits data/digits/3/3_0003.png --top-k 3
keras-notes-explain in17 --image-size 32 \\
    --totals-only
pytest tests/test_docs.py tests/test_experiments_*.py
keras-notes-predict runs/digits   # usage error: only a run folder, no image
```

Bad ones:

```
$ keras-notes-finetune data/digits --no-such-flag 3 --output runs/y
$ keras-notes-predict runs/digits data/no_such_folder/x.png
$ python scripts/no_such_script.py --help
$ keras-notes-no-such-command --help
$ keras-notes-predict --top-k 3
$ python scripts/launch_local_workers.py -n 2 -- data/digits --output runs/z --no-such-worker-flag
$ pytest tests/test_no_such_file.py
```

Inline: `keras-notes-finetune --not-a-flag-either`; the flags `--cache / --no-cache`,
`--batch-sizes 256 --epochs 160` and `--totals-only` are real, `--no-such-option` is not.
"""


def test_the_checker_reports_missing_flags_files_scripts_and_bad_shapes():
    problems = check_markdown(FAKE_MARKDOWN)
    by_line = {}
    for line, _, problem in problems:
        by_line.setdefault(line, []).append(problem)
    good_lines = range(1, 13)
    assert not [line for line in by_line if line in good_lines], problems
    report = "\n".join(problem for _, _, problem in problems)
    assert "keras-notes-finetune does not accept --no-such-flag" in report
    assert "data/no_such_folder/x.png does not exist" in report
    assert "scripts/no_such_script.py: no such script" in report
    assert "keras-notes-no-such-command: no such console script" in report
    assert "keras-notes-predict: the command line exits with status 2" in report  # no run folder given
    assert "after '--': keras-notes-finetune: keras-notes-finetune does not accept --no-such-worker-flag" in report
    assert "tests/test_no_such_file.py does not exist" in report
    assert "does not accept --not-a-flag-either" in report
    assert "no command accepts --no-such-option" in report
    assert len(problems) == 9, report
