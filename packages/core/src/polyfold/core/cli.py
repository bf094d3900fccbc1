"""The umbrella ``polyfold`` command, and :func:`run_app`, the entry of every polyfold CLI.

``polyfold info`` describes the environment; ``polyfold quickstart`` runs the quickstart of every
installed package; ``polyfold <domain> ...`` forwards to that package's own CLI, found through
the entry-point group ``polyfold.domains`` (name -> a :class:`typer.Typer` app), which is loaded
only when it is called.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from polyfold.core import quickstart as qs
from polyfold.core.errors import EXIT_INTERRUPTED, InputError, exit_on_input_error
from polyfold.core.progress import Quiet
from polyfold.core.system import system_info

__all__ = ["DOMAINS_GROUP", "app", "domain_app", "exit_status", "main", "run_app"]

DOMAINS_GROUP = "polyfold.domains"

# click's usage-error base class, whether typer uses click or its own vendored copy of it
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def domain_app(name: str, help: str) -> typer.Typer:
    """A typer app with polyfold's CLI defaults; ``name`` is the command (``polyfold-text``)."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


app = domain_app("polyfold", "polyfold: generative models for data that is not images.")


def run_app(
    cli: typer.Typer, args: Sequence[str] | None = None, prog_name: str | None = None
) -> None:
    """Run a typer app the polyfold way (see :func:`~polyfold.core.errors.exit_on_input_error`):
    bad input and OS errors print ``error: ...`` and exit 2, Ctrl-C prints ``interrupted`` and
    exits 130, usage errors keep click's message and status; bugs keep their traceback. Ends
    with ``SystemExit`` carrying the exit status, like a standalone click program."""
    with exit_on_input_error():
        try:
            code = cli(
                args=list(args) if args is not None else None,
                prog_name=prog_name,
                standalone_mode=False,
            )
        except typer.Abort:  # older typers' wrapping of Ctrl-C (and of EOF at a prompt)
            raise KeyboardInterrupt from None
        except _CLICK_ERROR as err:
            err.show()  # type: ignore[attr-defined]
            raise SystemExit(err.exit_code) from None  # type: ignore[attr-defined]
    if code == EXIT_INTERRUPTED:  # newer typers turn Ctrl-C into a silent exit 130
        print("interrupted", file=sys.stderr)
    raise SystemExit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


def exit_status(
    cli: typer.Typer, args: Sequence[str] | None = None, prog_name: str | None = None
) -> int:
    """:func:`run_app`, returning the exit status instead of raising ``SystemExit`` (tests and
    scripts that drive a CLI in-process)."""
    try:
        run_app(cli, [str(a) for a in args] if args is not None else None, prog_name)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return 0  # pragma: no cover - run_app always raises SystemExit


@app.command()
def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Versions, installed polyfold packages, devices and whether Triton is usable."""
    sysinfo = system_info()
    if as_json:
        typer.echo(json.dumps(sysinfo.as_dict(), indent=2))
        return
    triton_note = "usable" if sysinfo.triton_usable else "not usable (no CUDA device)"
    if sysinfo.triton == "not installed":
        triton_note = "kernels fall back to PyTorch references"
    lines = [
        f"polyfold  {sysinfo.polyfold_version}",
        f"python    {sysinfo.python} ({sysinfo.platform})",
        f"torch     {sysinfo.torch}",
        f"triton    {sysinfo.triton}: {triton_note}",
        "devices   " + "\n          ".join(sysinfo.devices),
        "packages",
    ]
    for pkg in sysinfo.packages:
        groups = ", ".join(f"{g}: {' '.join(n)}" for g, n in sorted(pkg.entry_points.items()))
        lines.append(f"  {pkg.name:<24}{pkg.version:<10}{groups}")
    typer.echo("\n".join(lines))


@app.command()
def quickstart(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for every package's outputs and index.html.")
    ] = Path("runs/quickstart"),
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this package (repeatable).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run the quickstart of every installed polyfold package on its embedded data."""
    loaders = qs.discover()
    if only:
        unknown = sorted(set(only) - set(loaders))
        if unknown:
            raise InputError(
                f"--only {', '.join(unknown)}: no such quickstart; installed: "
                f"{', '.join(loaders) or 'none'}"
            )
        loaders = {k: v for k, v in loaders.items() if k in only}
    echo = (lambda _msg: None) if quiet else typer.echo
    outcomes = qs.run_quickstarts(out, loaders, quiet=quiet, echo=echo)
    failed = [o.name for o in outcomes if not o.ok]
    typer.echo(f"index: {out / 'index.html'}")
    if failed:
        typer.echo(f"failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


def _add_domain_commands() -> None:
    """Mount each installed domain CLI as ``polyfold <name>``, loaded only when called."""
    for ep in metadata.entry_points(group=DOMAINS_GROUP):
        app.command(
            name=ep.name,
            help=f"The {ep.name} package's CLI (same as polyfold-{ep.name}).",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            add_help_option=False,
        )(_forwarder(ep))


def _forwarder(ep: metadata.EntryPoint) -> Callable[[typer.Context], None]:
    def forward(ctx: typer.Context) -> None:
        run_app(ep.load(), ctx.args, prog_name=f"polyfold {ep.name}")

    return forward


_add_domain_commands()


def main() -> None:
    """Console entry point of ``polyfold``."""
    run_app(app)
