"""What the command line prints: verdicts, results, warnings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)
STYLE = {"valid": "bold green", "invalid": "bold red"}


def verdict_text(valid) -> str:
    """A verdict in colour: the checkers' words (VALID, INVALID; anything else UNKNOWN)."""
    from checkers import verdict_word

    word = verdict_word(valid)
    word = word if word in STYLE else "unknown"
    return f"[{STYLE.get(word, 'bold yellow')}]{word.upper()}[/]"


def print_non_durable(config: dict) -> None:
    from reports.view import non_durable

    for line in non_durable(config):
        # Unwrapped: the line is meant to be found (grep) as one line.
        out.print(f"[yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)


def print_verdict(results: dict) -> None:
    v = results.get("valid")
    out.print(f"verdict: {verdict_text(v)}  {results.get('summary', '')}", highlight=False)
    for name, r in results.get("checkers", {}).items():
        out.print(f"  {name:8} {r.get('summary', '')}", highlight=False)
    if results.get("faults"):
        from checkers.faults import text

        out.print(f"  {'faults':8} {text(results['faults'])}", highlight=False)
    if v is False:  # the violation stands; the summary then leaves out what else was wrong
        for why in results.get("unknown_because", []):
            out.print(f"[yellow]also: {why}[/]", highlight=False)
    if results.get("partial"):
        out.print(
            f"[yellow]partial: {results['problem_count']} line(s) could not be read; "
            f"first: {results['problems'][0]}[/]",
            highlight=False,
        )
    for dup in results.get("duplicate_indexes", [])[:3]:
        out.print(f"[yellow]duplicate: {dup}[/]", highlight=False)
