"""The ``bwc`` command line.

Exit status of ``bwc run``: 0 every file processed; 3 the run completed but some files failed (see
``STORE/failures``); 1 the run itself failed (missing models, bad configuration, a crash); 2 usage error.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# Before any model library is imported: no telemetry, no hub look-ups at run time.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_SOME_FILES_FAILED = 3

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Analyse body-worn-camera audio.")
models_app = typer.Typer(no_args_is_help=True, help="Model weights: check, fetch, make tiny test checkpoints.")
app.add_typer(models_app, name="models")
console = Console(stderr=True)

ModelsOption = Annotated[
    Path | None,
    typer.Option("--models", help="Models directory (default: $BWC_MODELS or ~/.cache/bwc/models)."),
]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML configuration file.", exists=True)]


@app.command()
def run(
    inputs: Annotated[list[Path], typer.Argument(help="Media files and/or folders (searched recursively).")],
    store: Annotated[Path, typer.Option("--store", help="Output store directory.")],
    models: ModelsOption = None,
    config: ConfigOption = None,
    metadata: Annotated[
        Path | None, typer.Option("--metadata", help="Evidence-system metadata export (CSV).", exists=True)
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Join a Ray cluster: 'auto' or HOST:PORT. Default: local Ray."),
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Speech actors (overrides config).")] = None,
    language: Annotated[str | None, typer.Option("--language", help="Transcription language (default en).")] = None,
) -> None:
    """Transcribe and diarize footage into STORE (Parquet tables, WebVTT transcripts, RTTM)."""
    from bwc.config import load_config
    from models.locate import ModelNotFoundError

    overrides: dict[str, Any] = {}
    if workers:
        overrides["run"] = {"speech_workers": workers}
    if language:
        overrides["whisper"] = {"language": language}
    try:
        effective = load_config(models, config, overrides)
        if effective.tiny_models:
            console.print(
                "[yellow]Using tiny random-weight test models: transcripts and speaker labels will be meaningless.[/]"
            )
        from pipelines.run import run_batch

        summary = run_batch(inputs, store, effective, metadata_csv=metadata, address=address, console=console)
    except (ModelNotFoundError, FileNotFoundError, ValueError, RuntimeError) as error:
        # Unwrapped and unstyled: paths in the message must stay copyable.
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    _print_summary(summary, store)
    raise typer.Exit(EXIT_SOME_FILES_FAILED if summary.failures else EXIT_OK)


@models_app.command("make-tiny")
def models_make_tiny(
    directory: Annotated[Path, typer.Argument(help="Where to write the checkpoints.")],
) -> None:
    """Write tiny random-weight whisper and pyannote checkpoints (offline tests and demos)."""
    from models.tiny import make_tiny_models

    path = make_tiny_models(directory)
    console.print(f"tiny models written; use them with --models {directory} ({path})")


@models_app.command("fetch")
def models_fetch(
    directory: Annotated[Path, typer.Argument(help="Models directory to fill.")],
    whisper: Annotated[str | None, typer.Option("--whisper", help="Whisper model name, e.g. small.")] = "small",
    pyannote: Annotated[
        str | None, typer.Option("--pyannote", help="pyannote pipeline hub id.")
    ] = "pyannote/speaker-diarization-community-1",
    token: Annotated[
        str | None, typer.Option("--token", envvar="HF_TOKEN", help="Hugging Face token for gated models.")
    ] = None,
) -> None:
    """Download real weights into DIRECTORY on a connected machine, for use offline with --models."""
    os.environ["HF_HUB_OFFLINE"] = "0"
    from models.fetch import fetch_models

    path = fetch_models(directory, whisper or None, pyannote or None, token)
    console.print(f"models written; use them with --models {directory} ({path})")


@models_app.command("check")
def models_check(models: ModelsOption = None, config: ConfigOption = None) -> None:
    """Say which weights a run would use, or what is missing. Exit 1 when something is missing."""
    from bwc.config import load_config
    from models.locate import ModelNotFoundError, resolve_pyannote, resolve_whisper

    effective = load_config(models, config)
    models_dir = Path(effective.models_dir) if effective.models_dir else None
    missing = False
    for label, resolve, spec in (
        ("whisper", resolve_whisper, effective.whisper.model),
        ("diarization", resolve_pyannote, effective.diarization.pipeline),
    ):
        try:
            typer.echo(f"{label}: {resolve(spec, models_dir)}")
        except ModelNotFoundError as error:
            missing = True
            typer.echo(f"{label}: MISSING — {error}")
    typer.echo(f"tiny test models: {'yes' if effective.tiny_models else 'no'}")
    raise typer.Exit(1 if missing else 0)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Demo folder (footage and store).")] = Path("demo"),
    models: ModelsOption = None,
) -> None:
    """Generate synthetic traffic-stop footage and run the pipeline on it, with real models if present."""
    from bwc.config import default_models_dir, load_config
    from bwc.demo import make_demo_footage
    from models.locate import ModelNotFoundError
    from pipelines.speech import ResolvedModels

    models_dir = models or default_models_dir()
    try:
        ResolvedModels.resolve(load_config(models_dir))
    except ModelNotFoundError:
        models_dir = out / "tiny-models"
        console.print(
            "[yellow]No real whisper/pyannote weights found (see `bwc models fetch`): using tiny random-weight "
            "models, so transcripts and speaker labels will be meaningless. The pipeline, tables and files are real.[/]"
        )
        from models.tiny import make_tiny_models

        if not (models_dir / "models.yaml").is_file():
            make_tiny_models(models_dir)
    started = time.perf_counter()
    footage = make_demo_footage(out / "footage")
    console.print(
        f"synthetic footage: {len(footage.files)} files in {out / 'footage'} ({time.perf_counter() - started:.0f} s)"
    )
    run(
        inputs=[out / "footage"],
        store=out / "store",
        models=models_dir,
        config=None,
        metadata=footage.metadata_csv,
        address=None,
        workers=None,
        language=None,
    )


def _print_summary(summary: Any, store: Path) -> None:
    table = Table(title=f"bwc run {summary.run_id}", show_header=False)
    rows = [
        ("files seen", str(summary.files_seen)),
        ("processed", str(len(summary.processed))),
        ("duplicates", str(len(summary.duplicates))),
        ("failed", str(len(summary.failures))),
        ("audio hours", f"{summary.audio_s / 3600:.3f}"),
        ("speech hours", f"{summary.speech_s / 3600:.3f}"),
        ("wall time", f"{summary.wall_s:.1f} s"),
        ("x realtime", f"{summary.realtime_factor:.2f}"),
    ]
    rows += [(f"  {name}", f"{seconds:.1f} s") for name, seconds in summary.stage_s.items()]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for failure in summary.failures:
        console.print(f"[red]failed[/] [{failure.stage}] {failure.path}: {failure.reason}")
    root = store.absolute()
    console.print(
        "outputs:\n"
        f"  {root / 'recordings'}   one row per original\n"
        f"  {root / 'utterances'}   one row per utterance\n"
        f"  {root / 'words'}        one row per word\n"
        f"  {root / 'transcripts'}  <recording_id>.vtt\n"
        f"  {root / 'diarization'}  <recording_id>.rttm\n"
        + (f"  {root / 'failures'}     failed files and reasons\n" if summary.failures else "")
        + f"  {summary.report_path}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
