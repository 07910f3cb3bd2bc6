"""The `fakelens` command's app, the options and output helpers its commands share.

Exit codes: 0 all good; 1 finished, but some inputs failed (they are listed); 2 usage error.
Names are printed as result files hold them: bytes of a file name that are not UTF-8 as `\\xNN`
(`data.layout.printable_name`), so the output is UTF-8 text whatever the name.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from fakelens.cli.quiet import quiet_tensorflow
from fakelens.errors import FakelensError
from fakelens.fsutil import next_run_dir

#: The order `fakelens --help` lists the commands in: the way a user meets them.
COMMAND_ORDER = (
    "predict",
    "scan",
    "explain",
    "report",
    "evaluate",
    "train",
    "calibrate",
    "export",
    "models",
    "fetch",
    "serve",
    "data",
)


def reflow(text: str | None) -> str | None:
    """Each paragraph of `text` on one line, for the terminal to wrap: Rich keeps a docstring's
    hard line breaks, which then break sentences mid-line. Paragraphs starting with \\b keep theirs."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def _untyped_flags(params: Iterable[Any]) -> None:
    """On/off flags (--json, --help, ...) take no value: their help shows no `<bool>` type."""
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""


class _Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        _untyped_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _Group(TyperGroup):
    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        _untyped_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _Ordered(_Group):
    def list_commands(self, ctx: typer.Context) -> list[str]:
        return sorted(super().list_commands(ctx), key=COMMAND_ORDER.index)


class _Typer(typer.Typer):
    """Commands with help that reads well (`_Command`)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


F = TypeVar("F", bound=Callable[..., Any])
app = _Typer(
    cls=_Ordered,
    help="Tell AI-generated images from real photographs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = _Typer(cls=_Group, help="Inspect, download and preview data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.callback()
def _global_options(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="Also show TensorFlow's own log lines (oneDNN, CPU features, absl)."),
    ] = False,
) -> None:
    quiet_tensorflow(verbose)


out = Console(soft_wrap=True)  # never break paths across lines
err = Console(stderr=True, soft_wrap=True)
# matplotlib logs to stderr as it is imported (a config folder it cannot write, a font cache it
# builds): nothing a user of these commands acts on. Set before any command imports it.
logging.getLogger("matplotlib").setLevel(logging.ERROR)
#: Installed with the `tf` extra; the light runtime (`--backend onnx`) needs neither.
TF_MODULES = ("tensorflow", "keras", "tensorboard")
#: Commands that write files put them under runs/<command>/ (see `run_dir`).
RUNS = Path("runs")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A .keras or .onnx file saved by fakelens, or a shipped model's name "
        "(default: the shipped default model).",
    ),
]
TrustModel = Annotated[
    bool,
    typer.Option(
        "--trust-model",
        help="Allow code inside the model file (Keras safe mode off). "
        "Only for files from a source you trust.",
    ),
]
BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="keras, or onnx: onnxruntime alone, no TensorFlow (see `fakelens export`). "
        "Default: the model file's ending; for a shipped name its ONNX export when it has one.",
    ),
]
PrecisionOption = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="Compute precision of Keras models: fp32, bf16 (weights, losses and scores stay float32), "
        "or auto: bf16 where the CPU has AMX for it, else fp32 (default: auto).",
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        "-d",
        help="Folder or zip laid out as train|test/REAL|FAKE, or <source>/REAL|FAKE for several sources "
        "(default: $FAKELENS_DATA, else ../shared/data/cifake/cifake.zip).",
    ),
]

EvidenceOption = Annotated[
    bool,
    typer.Option(
        "--evidence",
        help="Add each file's metadata findings (EXIF, PNG text, XMP, C2PA) to its record, and "
        "`declared`: what the file states about how it was made (C2PA, IPTC source type, generator "
        "parameters). Beside the score, never merged into it (CSV: columns declared, evidence as JSON).",
    ),
]


#: C0 and C1 control characters and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(value: object) -> str:
    """`value` for a terminal: bytes of names that are not UTF-8 as in result files (`\\xNN`),
    and control characters (line breaks, tabs, escape sequences) as `\\xNN` too, so that a file
    name can neither forge a line of output nor drive the terminal."""
    from fakelens.data.layout import printable_name

    return _CONTROL.sub(lambda found: f"\\x{ord(found[0]):02x}", printable_name(str(value)))


def shown(value: object) -> str:
    """`value` for Rich: `plain`, with markup escaped."""
    return escape(plain(value))


def usage_errors(command: F) -> F:
    """Turn fakelens' own errors into a one-line message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FakelensError as exc:
            err.print(f"[bold red]error:[/] {shown(exc)}", highlight=False)
            raise typer.Exit(2) from None
        except ModuleNotFoundError as exc:
            if exc.name not in TF_MODULES:
                raise
            err.print(
                f"[bold red]error:[/] this command needs TensorFlow ({exc.name} is not installed): "
                "pip install 'fakelens\\[tf]'",
                highlight=False,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def open_detector(
    model: str | None,
    trust: bool,
    batch_size: int | None = None,
    backend: str | None = None,
    precision: str | None = None,
):
    from fakelens.inference.detector import load_detector
    from fakelens.weights import DEFAULT_MODEL

    return load_detector(
        model or DEFAULT_MODEL,
        trust=trust,
        batch_size=batch_size,
        backend=backend,
        precision=precision or "auto",
    )


ThresholdOption = Annotated[
    float | None, typer.Option(help="Fixed operating point: label ai when ai_probability >= this.")
]
MaxFprOption = Annotated[
    float | None,
    typer.Option(
        "--max-false-positive-rate",
        help="Choose the lowest threshold that flags at most this share of the validation's real photos.",
    ),
]


def list_failures(failures: Iterable[tuple[str, str]], verb: str, limit: int = 20) -> bool:
    """List bad inputs on stderr (the first `limit`); True if there were any."""
    failures = list(failures)
    for path, reason in failures[:limit]:
        err.print(f"[red]{verb}:[/] {shown(path)}: {shown(reason)}", highlight=False)
    if len(failures) > limit:
        err.print(f"... and {len(failures) - limit:,} more.")
    return bool(failures)


def finish(saved: object | None, *failures: tuple[Iterable[tuple[str, str]], str]) -> None:
    """End a command that writes files: list its bad inputs, each group (pairs of input and
    reason) with its verb, then print "Results saved to <saved>" as the last line (none when
    `saved` is None: nothing was written), then exit 1 if any input failed."""
    failed = [list_failures(items, verb) for items, verb in failures]
    if saved is not None:
        out.print(f"Results saved to {shown(saved)}", highlight=False)
    if any(failed):
        raise typer.Exit(1)


def run_dir(command: str, name: str) -> Path:
    """Where `command` writes unless `--out` says otherwise: runs/<command>/<name>, or <name>-2,
    -3... when taken, so that a run never writes over an earlier one's files."""
    return next_run_dir(RUNS / command, name)


def name_of(path: Path) -> str:
    """What a run about `path` is called: a file's stem, a folder's name."""
    return path.stem if path.is_file() else path.resolve().name


def evidence_text(item: dict[str, str]) -> str:
    return f"{item['kind']} {item['key']} -> {item['points_to']} ({item['strength']})"
