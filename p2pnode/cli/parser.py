"""The argument parser every `p2pnode` command uses: one-line usage errors that say what to type
instead ("did you mean …"), options that may come before or after the command, and help that
marks the options a command cannot do without."""

from __future__ import annotations

import argparse
import ast
import difflib
import re
from collections.abc import Iterator
from typing import Any, NoReturn

from p2pnode.cli.common import EXIT_USAGE

_INVALID_CHOICE = re.compile(r"argument (?P<arg>.+?): invalid choice: (?P<value>.+?) \(choose from")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (?P<args>.+)")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit 2."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # blame the command they were given to, so its --help is the one offered
            self._chosen(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> CliParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(sub, CliParser):
                    return sub._chosen(parsed)
        return self

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"p2pnode: error: {self._explain(message)}"
                              f" (see: {self.prog} --help)\n")

    def _explain(self, message: str) -> str:
        found = _INVALID_CHOICE.match(message)
        if found:
            try:
                value = str(ast.literal_eval(found["value"]))
            except (ValueError, SyntaxError):
                value = found["value"]
            action = next((a for a in self._actions
                           if argparse._get_action_name(a) == found["arg"]), None)
            choices = [str(c) for c in (action.choices or [])] if action else []
            if isinstance(action, argparse._SubParsersAction):
                what = "command" if self.prog == "p2pnode" else "action"
                return f"unknown {what} {value!r}" + (
                    _suggest(value, choices) or f"; one of: {', '.join(choices)}")
            return f"{found['arg']} must be one of {', '.join(choices)}, not {value!r}" + \
                _suggest(value, choices)
        found = _UNRECOGNIZED.match(message)
        if found:
            first = found["args"].split()[0]
            options = sorted(self._option_string_actions)
            hint = _suggest(first.split("=", 1)[0], options) if first.startswith("-") else ""
            return f"{message}{hint}"
        return message

    def all_parsers(self) -> Iterator[argparse.ArgumentParser]:
        """This parser and every sub-command parser below it."""
        yield self
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for parser in dict.fromkeys(action.choices.values()):
                    if isinstance(parser, CliParser):
                        yield from parser.all_parsers()


def mark_required(parser: argparse.ArgumentParser, *options: str) -> None:
    """Say "(required)" in the help of options the command checks for itself (argparse marks
    nothing, and some requirements are "one of these")."""
    for action in parser._actions:
        named = any(o in action.option_strings for o in options)
        if (named or (action.required and action.option_strings)) and \
                not (action.help or "").endswith("(required)"):
            action.help = f"{action.help} (required)" if action.help else "(required)"


def add_everywhere(parser: CliParser, *args: Any, **kwargs: Any) -> None:
    """Accept an option of the main parser after any command too (`p2pnode circles --home D`).

    Below the main parser the option defaults to "not given", so it never hides a value given
    before the command.
    """
    for sub in parser.all_parsers():
        if sub is not parser:
            sub.add_argument(*args, **{**kwargs, "default": argparse.SUPPRESS})
