import io
import json
import subprocess
import sys

import numpy as np
import pytest
import typer

from polyfold.core.cli import exit_status, run_app
from polyfold.core.errors import (
    EXIT_INPUT_ERROR,
    EXIT_INTERRUPTED,
    InputError,
    PolyfoldError,
    check_number,
    exit_on_input_error,
    reading,
)


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


def test_exit_status_returns_what_run_app_exits_with(capsys):
    app = typer.Typer()

    @app.command()
    def go(n: int) -> None:
        if n > 9:
            raise InputError(f"n: expected <= 9, got {n}")

    assert exit_status(app, [3]) == 0
    assert exit_status(app, ["10"]) == 2
    assert "error: n: expected <= 9, got 10" in capsys.readouterr().err
    assert exit_status(app, ["x"]) == 2  # click's usage error


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


def test_os_error_names_the_path_and_exits_2():
    stream = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, exit_on_input_error(stream):
        open("/nonexistent-polyfold-dir/out.csv", "w").close()
    assert exit_info.value.code == 2
    assert stream.getvalue().startswith("error: /nonexistent-polyfold-dir/out.csv: ")


def test_keyboard_interrupt_prints_interrupted_and_exits_130():
    stream = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, exit_on_input_error(stream):
        raise KeyboardInterrupt
    assert exit_info.value.code == EXIT_INTERRUPTED == 130
    assert stream.getvalue() == "interrupted\n"


def test_reading_turns_unreadable_files_into_input_errors(tmp_path):
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with (
        pytest.raises(InputError, match=r"data .*b\.csv: not a UTF-8 text file"),
        reading(binary, "data"),
    ):
        binary.read_text(encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.json: not valid JSON"), reading("x.json"):
        json.loads("{")
    empty = tmp_path / "e.npy"
    empty.write_bytes(b"")
    with (
        pytest.raises(InputError, match=r"mel file .*e\.npy: empty or truncated"),
        reading(empty, "mel file"),
    ):
        np.load(empty, allow_pickle=False)
    # an InputError passes through unchanged
    with pytest.raises(InputError, match="--n"), reading("x.json"):
        raise InputError("--n: bad")


def _app_script(tmp_path, body: str):
    script = tmp_path / "cli.py"
    script.write_text(
        "import typer\n"
        "from polyfold.core.cli import run_app\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "def go(n: int) -> None:\n" + body + "\n"
        "run_app(app)\n"
    )
    return script


def test_run_app_os_error_and_interrupt_and_bug(tmp_path):
    script = _app_script(
        tmp_path,
        "    if n == 0:\n"
        "        open('/nonexistent-polyfold-dir/x', 'w')\n"
        "    if n == 1:\n"
        "        raise KeyboardInterrupt\n"
        "    raise KeyError('bug')\n",
    )

    def run(n: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), n], capture_output=True, text=True)

    os_err, interrupted, bug, usage = run("0"), run("1"), run("2"), run("x")
    assert os_err.returncode == 2
    assert os_err.stderr.startswith("error: /nonexistent-polyfold-dir/x: ")
    assert "Traceback" not in os_err.stderr
    assert interrupted.returncode == 130
    assert interrupted.stderr.strip() == "interrupted"
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr
    assert "KeyError" in bug.stderr
    assert usage.returncode == 2  # click's usage error keeps its message and status
    assert "Invalid value" in usage.stderr


def test_check_number_accepts_finite_numbers_in_range_and_names_the_bad_one():
    assert check_number("w", 0) == 0.0
    assert check_number("w", 2.5, 1.0, strict=True) == 2.5
    for bad in (-0.1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(InputError, match=r"^w: expected a finite number >= 0, got"):
            check_number("w", bad)
    with pytest.raises(InputError, match=r"^lr: expected a finite number > 0, got 0"):
        check_number("lr", 0, strict=True)
