"""The ``parabeam`` console script: ``mine``, ``export``, ``score``, ``embed``, ``train`` and
``eval {tatoeba,bucc,xsim}``.

``mine`` takes parabeam's own options (derived from the config tree, ``parabeam.options``) and any Beam pipeline
option (``--runner``, ``--direct_num_workers``, ``--project`` ...), which go to ``PipelineOptions``; a flag that
neither knows is an error that names the closest known one. Errors are one line on stderr (the traceback with
``-v``), and bad input is refused before any work starts.
"""

from __future__ import annotations

import argparse
import codecs
import json
import logging
import re
import sys
import traceback

from parabeam import __version__
from parabeam.progress import PROGRESS, progress

log = logging.getLogger("parabeam")

MINE_EPILOG = """\
Any other --flag is a Beam pipeline option and passes through to the runner: --runner (default: DirectRunner
with --direct_running_mode=multi_processing --direct_num_workers=2), --direct_num_workers, --project, --region,
--temp_location, --sdk_container_image, --environment_type, --environment_config, --s3_endpoint_url,
--hdfs_host, ... (Beam's own documentation lists them). A flag neither parabeam nor Beam knows is an error.
OUTPUT receives bitext/pair=L1-L2/part-NNNNN.parquet and report.json; a rerun replaces them as a whole once it
succeeds (a failed run leaves the previous output as it was); OUTPUT/_work/ caches embeddings and indexes for
reruns and can be deleted."""

BUCC_DESCRIPTION = """\
BUCC 2018 F1 of one mining pass (kNN both ways, margin, retrieval) at the F1-optimal threshold, LASER's BUCC
practice. Files: --src and --tgt hold one sentence per line as ID<TAB>sentence; --gold holds one known pair per
line as SRC_ID<TAB>TGT_ID. Prints one JSON line: f1, precision, recall (%), threshold."""


def _mine_parser(sub) -> None:
    from parabeam.options import add_flags
    from parabeam.pipelines.config import RunConfig

    p = sub.add_parser("mine", help="mine parallel sentences from monolingual text", epilog=MINE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--input", action="append", required=True, metavar="GLOB",
                   help="input files (WET, CCNet JSONL, plain text; .gz ok) on any Beam filesystem; repeatable")
    p.add_argument("--langs", required=True, help="comma-separated codes, e.g. de,en or deu_Latn,eng_Latn")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="output folder (local, gs://, s3://, hdfs://): bitext/ Parquet and report.json")
    p.add_argument("--config", help="YAML preset (conf/NAME.yaml or a bundled name such as 'local')")
    p.add_argument("--pivot", help="mine only pairs with this language")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a bitext/ folder in OUTPUT that no parabeam run wrote")
    p.add_argument("--since", action="append", default=[], metavar="OUT",
                   help="build on an earlier run's output (repeatable): its sentences are not embedded again, the "
                        "new ones are mined against its embeddings too, and only pairs it did not write are written "
                        "(same encoder required; keep its _work/ cache)")
    p.set_defaults(config_flags=add_flags(p, RunConfig))


def _encoder_flags(p) -> None:
    """``--encoder`` and the ``--langs`` that ``--encoder auto`` chooses by (as ``parabeam mine`` does)."""
    from parabeam.options import add_flags
    from parabeam.pipelines.config import EmbedConfig

    add_flags(p, EmbedConfig, only=("encoder",), plain=True)
    p.add_argument("--langs", metavar="L1[,L2]",
                   help="languages of the text (ISO 639-1 or NLLB codes), which --encoder auto chooses the bundled "
                        "encoder by (without them: the widest one, e5-small)")


def _resolved_encoder(args) -> tuple[str, str | None]:
    """The spec ``--encoder`` names after ``auto`` is chosen for ``--langs``, and the reason when it was auto (also
    a progress line)."""
    from parabeam.encoders.registry import AUTO, choose_bundled
    from parabeam.mining.languages import parse_language

    if args.encoder != AUTO:
        return args.encoder, None
    codes = [c.strip() for c in (args.langs or "").split(",") if c.strip()]
    choice = choose_bundled(sorted({parse_language(c).lid_label for c in codes}) or None)
    progress("encoder: %s (auto: %s)", choice.spec, choice.reason)
    return choice.spec, choice.reason


def _eval_parser(sub) -> None:
    from parabeam.mining.config import MiningConfig
    from parabeam.options import add_flags

    p = sub.add_parser("eval", help="evaluate an encoder")
    ev = p.add_subparsers(dest="task", required=True)
    t = ev.add_parser("tatoeba", help="Tatoeba-style similarity search accuracy (%%), mean of both directions",
                      allow_abbrev=False)
    t.add_argument("--src", required=True, help="one sentence per line; line i translates line i of --tgt")
    t.add_argument("--tgt", required=True, help="one sentence per line, as many lines as --src")
    _encoder_flags(t)
    b = ev.add_parser("bucc", help="BUCC 2018 F1 with margin mining at the F1-optimal threshold",
                      description=BUCC_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                      allow_abbrev=False)
    b.add_argument("--src", required=True, help="source sentences, ID<TAB>sentence per line")
    b.add_argument("--tgt", required=True, help="target sentences, ID<TAB>sentence per line")
    b.add_argument("--gold", required=True, help="known pairs, SRC_ID<TAB>TGT_ID per line")
    _encoder_flags(b)
    # LASER's BUCC evaluation scores with the ratio margin (parabeam mine's default is distance)
    add_flags(b, MiningConfig, only=("margin", "retrieval", "k"), plain=True, defaults={"margin": "ratio"})
    x = ev.add_parser("xsim", help="xsim error rate (%%) on line-aligned files, margin-based", allow_abbrev=False)
    x.add_argument("--src", required=True, help="one sentence per line; line i translates line i of --tgt")
    x.add_argument("--tgt", required=True, help="one sentence per line, as many lines as --src")
    _encoder_flags(x)


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="write mined pairs as TSV, Moses line-aligned files or JSON lines",
                       allow_abbrev=False)
    p.add_argument("run", metavar="OUTPUT", help="the --output folder of a parabeam mine run")
    p.add_argument("--format", required=True, choices=["tsv", "moses", "jsonl"],
                   help="tsv (header src, tgt, score, cosine), moses (PATH.L1 and PATH.L2, line-aligned; with "
                        "several pairs PATH.L1-L2.L1 ...), jsonl (one JSON object per pair)")
    p.add_argument("--output", required=True, metavar="PATH", help="file to write (any Beam filesystem)")
    p.add_argument("--pair", metavar="L1-L2", help="only this language pair (default: all)")
    p.add_argument("--min-score", type=float, metavar="X",
                   help="only pairs scoring at least X; reads OUTPUT/candidates/ when the run kept them "
                        "(--keep-candidates), so X may also be below the run's threshold")
    p.add_argument("--allow", metavar="RULE[,RULE]", type=lambda text: tuple(r for r in text.split(",") if r),
                   default=(), help="put back the pairs these pair filters dropped (numbers, urls, copy, "
                   "boilerplate, lid, near_duplicate); needs a run mined with --keep-candidates")


def _score_parser(sub) -> None:
    from parabeam.mining.config import MiningConfig
    from parabeam.options import add_flags

    p = sub.add_parser("score", help="score given pairs with the margin, without mining (filter a bitext)",
                       allow_abbrev=False)
    p.add_argument("--src", help="source sentences, one per line (line-aligned with --tgt)")
    p.add_argument("--tgt", help="target sentences, one per line")
    p.add_argument("--pairs", metavar="FILE", help="instead of --src/--tgt: a TSV with a header (src, tgt columns) "
                                                   "or a Parquet file with src/tgt (or src_text/tgt_text) columns")
    p.add_argument("--output", required=True, metavar="FILE",
                   help="TSV with a header: score, cosine, src, tgt; one line per input pair, in input order")
    _encoder_flags(p)
    add_flags(p, MiningConfig, only=("margin", "k"), plain=True)  # as parabeam mine
    p.add_argument("--reference", nargs=2, metavar=("SRC_SAMPLE", "TGT_SAMPLE"),
                   help="monolingual samples (one sentence per line) to take each side's neighbourhood from, for "
                        "small inputs (default: the given sentences themselves)")


def _embed_parser(sub) -> None:
    from parabeam.options import add_flags
    from parabeam.pipelines.config import EmbedConfig

    p = sub.add_parser("embed", help="embed a text file (one sentence per line) into an .npy of unit vectors",
                       allow_abbrev=False)
    p.add_argument("--input", required=True, metavar="FILE", help="one sentence per line (.gz ok; any Beam filesystem)")
    p.add_argument("--output", required=True, metavar="FILE.npy",
                   help="(lines, dim) float32 L2-normalised vectors, row i for line i")
    _encoder_flags(p)
    p.add_argument("--fp16", action="store_true", help="write float16 (half the size)")
    add_flags(p, EmbedConfig, only=("device", "precision", "max_tokens"), plain=True)


def _train_parser(sub) -> None:
    from parabeam.encoders.train_config import TrainConfig
    from parabeam.options import add_flags

    p = sub.add_parser("train", help="train an encoder on parallel sentences (translation ranking or distillation)",
                       allow_abbrev=False)
    p.add_argument("--config", help="YAML training config (e.g. conf/distill.yaml)")
    p.add_argument("--output", required=True, metavar="DIR", help="encoder directory to write (resumes if present)")
    p.add_argument("--bitext", action="append", metavar="PARQUET_DIR_OR_GLOB", help="pairs from parabeam mine")
    p.add_argument("--min-score", type=float, default=None,
                   help="keep mined pairs scoring at least this (default: all the pairs parabeam mine kept)")
    p.add_argument("--parallel", action="append", nargs=4, metavar=("SRC_FILE", "TGT_FILE", "SRC_LANG", "TGT_LANG"),
                   help="line-aligned parallel files")
    p.add_argument("--data-root", help="directory that relative data paths in --config are under")
    p.add_argument("--no-resume", action="store_true", help="start over even if DIR holds a checkpoint")
    p.set_defaults(config_flags=add_flags(p, TrainConfig))


def _run_train(args) -> int:
    from parabeam.encoders.train import config_from_dict, train
    from parabeam.options import flag_overrides, merge
    from parabeam.pipelines.config import read_preset

    data = merge(read_preset(args.config), flag_overrides(args, args.config_flags))
    extra = [{"bitext": path, "min_score": args.min_score} for path in args.bitext or []]
    extra += [{"src": a, "tgt": b, "src_lang": c, "tgt_lang": d} for a, b, c, d in args.parallel or []]
    if extra:
        data["train"] = list(data.get("train") or []) + extra
    config = config_from_dict(data, data_root=args.data_root)
    card = train(config, args.output, resume=not args.no_resume)
    print(json.dumps({"output": args.output, "steps": card["steps"], "train_minutes": round(card["train_minutes"], 1),
                      "eval_before": card["eval_before"], "eval_after": card["eval_after"]}))
    return 0


def _run_mine(args, beam_args: list[str], verbose: bool) -> int:
    from parabeam.mining.languages import parse_languages
    from parabeam.options import flag_overrides
    from parabeam.pipelines import beam_options
    from parabeam.pipelines.config import beam_args_from_config, load_config
    from parabeam.pipelines.mine import run

    beam_options.check_beam_args(beam_args, [f.name for f in args.config_flags])
    languages = parse_languages(args.langs)
    config = load_config(args.config, flag_overrides(args, args.config_flags))
    preset_beam = beam_args_from_config(args.config)
    given = {a.split("=", 1)[0] for a in beam_args}
    beam_args = [a for a in preset_beam if a.split("=", 1)[0] not in given] + beam_args
    if not any(a.startswith("--runner") for a in beam_args):
        beam_args = beam_options.DEFAULT_LOCAL_BEAM_ARGS + beam_args
    # Beam's own DaskRunner mixes tagged outputs and runs only one sink; parabeam ships a fixed one
    beam_args = [beam_options.DASK_RUNNER if a in ("--runner=DaskRunner", "--runner=dask") else a for a in beam_args]
    beam_options.check_worker_image(beam_args)
    quiet_workers = not verbose and beam_options.local_worker_processes(beam_args)
    with beam_options.worker_logs_to_file(quiet_workers) as worker_log:
        try:
            report = run(inputs=args.input, languages=languages, output=args.output, config=config,
                         pivot=args.pivot, beam_args=beam_args, overwrite=args.overwrite, since=args.since)
        except Exception as err:
            if worker_log and getattr(err, "parabeam_pipeline_ran", False):
                err.add_note(f"worker logs: {worker_log}")
            raise
    _print_summary(report, args.output)
    return 0


def _print_summary(report: dict, output: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    from parabeam.pipelines.mine import timing_order

    docs = report.get("documents", {})
    print(f"parabeam: read {docs.get('out', 0):,} documents, {report.get('sentences', {}).get('in', 0):,} segments "
          f"in {report.get('wall_seconds', 0):.1f} s")
    encoder = report["settings"].get("encoder") or {}
    if encoder.get("resolved"):
        print(f"  encoder: {encoder['resolved']}" + (f" ({encoder['spec']}: {encoder['reason']})"
                                                      if encoder.get("reason") else ""))
    for lang, counts in sorted(report.get("languages", {}).items()):
        print(f"  {lang}: {counts.get('kept', 0):,} unique segments kept")
    for name in report["settings"]["pairs"]:
        n = report.get("pairs", {}).get(name, 0)
        folder = f"{output.rstrip('/')}/bitext/pair={name}"
        found = FileSystems.match([f"{folder}/*.parquet"])[0].metadata_list
        files = ", ".join(sorted(m.path.rsplit("/", 1)[-1] for m in found)) or "no file"
        threshold = (report.get("thresholds") or {}).get(name, {}).get("used")
        at = f" at threshold {threshold:.3f}" if threshold is not None else ""
        print(f"  {name}: {n:,} pairs{at} -> {folder}/ ({files})")
    seconds = report.get("seconds", {})
    if seconds:
        busy = [f"{s} {seconds[s] / 1000:.1f} s" for s in timing_order() if s in seconds]
        print("  busy time per stage: " + ", ".join(busy))
    print(f"report: {output.rstrip('/')}/report.html (and report.json)")


def _run_export(args) -> int:
    from parabeam.pipelines.export import export

    written = export(args.run, args.format, args.output, pair=args.pair, min_score=args.min_score,
                     allow=args.allow)
    print(json.dumps({"output": args.output, "format": args.format, "pairs": written}))
    return 0


def _run_score(args) -> int:
    from parabeam.encoders.registry import load_encoder
    from parabeam.pipelines.score import read_pairs, score_pairs

    src, tgt = read_pairs(args.src, args.tgt, args.pairs)  # before the encoder loads
    spec, _ = _resolved_encoder(args)
    n = score_pairs(src, tgt, args.output, encoder=load_encoder(spec), k=args.k, margin=args.margin,
                    reference=tuple(args.reference) if args.reference else None)
    print(json.dumps({"output": args.output, "pairs": n, "margin": args.margin, "k": args.k, "encoder": spec}))
    return 0


def _run_embed(args) -> int:
    from parabeam.pipelines.config import EmbedConfig
    from parabeam.pipelines.embed_file import embed_file
    from parabeam.pipelines.embed_shards import load_configured_encoder

    spec, _ = _resolved_encoder(args)
    encoder = load_configured_encoder(EmbedConfig(encoder=spec, device=args.device, precision=args.precision,
                                                  max_tokens=args.max_tokens))
    rows, dim = embed_file(encoder, args.input, args.output, fp16=args.fp16)
    print(json.dumps({"output": args.output, "rows": rows, "dim": dim, "dtype": "float16" if args.fp16 else "float32",
                      "encoder": spec}))
    return 0


def _run_eval(args) -> int:
    from parabeam.encoders import evaluate
    from parabeam.encoders.registry import load_encoder
    from parabeam.mining.mine import MiningConfig

    evaluate.check_inputs(args.src, args.tgt, getattr(args, "gold", None))  # before the encoder loads
    spec, _ = _resolved_encoder(args)
    encoder = load_encoder(spec)
    if args.task == "tatoeba":
        result = evaluate.tatoeba_files(encoder, args.src, args.tgt)
    elif args.task == "xsim":
        src, tgt = evaluate.read_parallel_lines(args.src, args.tgt)
        result = {"xsim_error": evaluate.xsim_error(encoder.encode(src), encoder.encode(tgt)), "n": len(src)}
    else:
        config = MiningConfig(k=args.k, margin=args.margin, retrieval=args.retrieval)
        result = vars(evaluate.bucc_files(encoder, args.src, args.tgt, args.gold, config))
    print(json.dumps({"task": args.task, "encoder": spec, **result}))
    return 0


_FORWARDED = re.compile(r'message: "((?:[^"\\]|\\.)*)".*log_location: "([^"]*)"', re.S)


def _forwarded(record: logging.LogRecord) -> tuple[str, str] | None:
    """``(message, location)`` of a worker's log record that a local runner re-logged as the text of its
    LogEntry (the multi-processing DirectRunner's workers send their logs to the launcher that way)."""
    text = record.getMessage()
    if "log_location" not in text:
        return None
    found = _FORWARDED.search(text)
    if found is None:
        return None
    message = codecs.escape_decode(found.group(1).encode("latin-1", "backslashreplace"))[0].decode("utf-8", "replace")
    return message, found.group(2)


class _ConsoleFilter(logging.Filter):
    """Without -v: parabeam's warnings and progress lines only, from this process or forwarded from local
    workers. Beam's start-up notices, faiss's loader and the like stay out, and so do Beam's logs of a failing
    bundle: the failure reaches the user once, as the error the run ends with."""

    def filter(self, record: logging.LogRecord) -> bool:
        forwarded = _forwarded(record)
        if forwarded is not None:
            message, location = forwarded
            ours = "/parabeam/" in location.replace("\\", "/")
            if ours and (PROGRESS in message or record.levelno >= logging.WARNING):
                record.msg, record.args = message, ()
                return self._strip(record)
            return False
        if record.name == "parabeam.progress" or record.name.startswith("parabeam.progress."):
            return self._strip(record)
        if record.name == "parabeam" or record.name.startswith("parabeam."):
            return record.levelno >= logging.WARNING
        return record.levelno >= logging.CRITICAL

    @staticmethod
    def _strip(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if PROGRESS in message:
            record.msg, record.args = message.replace(PROGRESS + " ", "").replace(PROGRESS, ""), ()
        return True


def _configure_logging(verbose: bool, stream) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose
                                           else "parabeam: %(message)s"))
    if not verbose:
        handler.addFilter(_ConsoleFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_parabeam", False):
            root.removeHandler(old)
    handler._parabeam = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _one_line(err: BaseException) -> str:
    """The message of an error, cut to its last meaningful line (a failed pipeline's message is a worker's whole
    traceback), with its notes."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[-1] if lines else type(err).__name__
    if not isinstance(err, (ValueError, FileNotFoundError)) and not text.startswith(type(err).__name__):
        text = f"{type(err).__name__}: {text}"
    notes = "; ".join(getattr(err, "__notes__", []))
    return text + (f" ({notes})" if notes else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parabeam", description="Bitext mining with Apache Beam",
                                     allow_abbrev=False)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every log line (Beam's and the workers') and full tracebacks")
    parser.add_argument("--version", action="version", version=f"parabeam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _mine_parser(sub)
    _export_parser(sub)
    _score_parser(sub)
    _embed_parser(sub)
    _eval_parser(sub)
    _train_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from parabeam.pipelines.beam_options import console_stream

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    console = console_stream()
    _configure_logging(args.verbose, console)
    if args.command != "mine" and extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        if args.command == "mine":
            return _run_mine(args, extra, args.verbose)
        if args.command == "train":
            return _run_train(args)
        if args.command == "export":
            return _run_export(args)
        if args.command == "score":
            return _run_score(args)
        if args.command == "embed":
            return _run_embed(args)
        return _run_eval(args)
    except KeyboardInterrupt:
        print("parabeam: interrupted", file=console)
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): nothing left to tell anyone
        return 141
    except Exception as err:
        if args.verbose:
            traceback.print_exc(file=console)
        usage = isinstance(err, (ValueError, FileNotFoundError))
        hint = "" if args.verbose or usage else " (run with -v for the traceback)"
        print(f"parabeam: error: {_one_line(err)}{hint}", file=console)
        return 2 if usage else 1
    finally:
        console.flush()


if __name__ == "__main__":
    sys.exit(main())
