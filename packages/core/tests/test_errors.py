import io
import subprocess
import sys

import pytest
import typer

from polyfold.core.cli import run_app
from polyfold.core.errors import EXIT_INPUT_ERROR, InputError, PolyfoldError, exit_on_input_error


def test_input_error_is_a_value_error_and_a_polyfold_error():
    err = InputError("--steps: expected a positive integer, got -3")
    assert isinstance(err, ValueError)
    assert isinstance(err, PolyfoldError)


def test_exit_on_input_error_prints_message_and_exits_2():
    stream = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, exit_on_input_error(stream):
        raise InputError("data.csv: column 'age' has missing values")
    assert exit_info.value.code == EXIT_INPUT_ERROR == 2
    assert stream.getvalue() == "error: data.csv: column 'age' has missing values\n"


def test_other_exceptions_pass_through_unchanged():
    with pytest.raises(KeyError), exit_on_input_error(io.StringIO()):
        raise KeyError("a bug, not bad input")


def test_run_app_reports_input_error_without_traceback(tmp_path):
    # A real process: the message reaches stderr, no traceback does, and the status is 2.
    script = tmp_path / "cli.py"
    script.write_text(
        "import typer\n"
        "from polyfold.core.cli import run_app\n"
        "from polyfold.core.errors import InputError\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "def go(n: int) -> None:\n"
        "    if n < 0:\n"
        "        raise InputError(f'N: expected a count >= 0, got {n}')\n"
        "    print('ok', n)\n"
        "run_app(app)\n"
    )
    bad = subprocess.run([sys.executable, str(script), "--", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: N: expected a count >= 0, got -1"
    assert "Traceback" not in bad.stderr + bad.stdout
    good = subprocess.run([sys.executable, str(script), "4"], capture_output=True, text=True)
    assert (good.returncode, good.stdout.strip()) == (0, "ok 4")


def test_run_app_passes_arguments_and_exit_status():
    app = typer.Typer()
    seen = []

    @app.command()
    def go(name: str) -> None:
        seen.append(name)

    with pytest.raises(SystemExit) as exit_info:
        run_app(app, ["qm9"])
    assert exit_info.value.code == 0
    assert seen == ["qm9"]


def test_argument_predicates_reject_bools_and_non_finite_numbers():
    from polyfold.core.errors import is_finite_number, is_int

    assert is_int(3)
    assert not is_int(True)
    assert not is_int(3.0)
    assert is_finite_number(2.5)
    assert is_finite_number(-4)
    assert not is_finite_number(False)
    assert not is_finite_number(float("nan"))
    assert not is_finite_number(float("inf"))
    assert not is_finite_number("1")
