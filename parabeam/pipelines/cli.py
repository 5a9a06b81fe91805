"""The ``parabeam`` console script: ``mine``, ``train`` and ``eval {tatoeba,bucc,xsim}``.

Flags not listed here are Beam pipeline options (``--runner``, ``--direct_num_workers``, ``--project`` ...)
and go to ``PipelineOptions`` untouched.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

# Without --runner, run in-process on this machine's cores (Beam's DirectRunner would otherwise try to fetch
# the Prism runner, which needs network access).
DEFAULT_LOCAL_BEAM_ARGS = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                           "--direct_num_workers=2"]
DASK_RUNNER = "--runner=parabeam.pipelines.dask_runner.DaskRunner"


def _mine_parser(sub) -> None:
    from parabeam.options import add_flags
    from parabeam.pipelines.config import RunConfig

    p = sub.add_parser("mine", help="mine parallel sentences from monolingual text")
    p.add_argument("--input", action="append", required=True, metavar="GLOB",
                   help="input files (WET, CCNet JSONL, plain text; .gz ok) on any Beam filesystem; repeatable")
    p.add_argument("--langs", required=True, help="comma-separated codes, e.g. de,en or deu_Latn,eng_Latn")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--config", help="YAML preset (conf/NAME.yaml or a bundled name such as 'local')")
    p.add_argument("--pivot", help="mine only pairs with this language")
    p.set_defaults(config_flags=add_flags(p, RunConfig))


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate an encoder")
    ev = p.add_subparsers(dest="task", required=True)
    t = ev.add_parser("tatoeba", help="Tatoeba-style similarity search accuracy (%%), mean of both directions")
    t.add_argument("--src", required=True)
    t.add_argument("--tgt", required=True)
    t.add_argument("--encoder", default="default")
    b = ev.add_parser("bucc", help="BUCC 2018 F1 with margin mining at the F1-optimal threshold")
    b.add_argument("--src", required=True)
    b.add_argument("--tgt", required=True)
    b.add_argument("--gold", required=True)
    b.add_argument("--encoder", default="default")
    b.add_argument("--margin", choices=["ratio", "distance", "absolute"], default="ratio")
    b.add_argument("--retrieval", choices=["forward", "backward", "intersection", "max"], default="max")
    b.add_argument("--k", type=int, default=4)
    x = ev.add_parser("xsim", help="xsim error rate (%%) on line-aligned files, margin-based")
    x.add_argument("--src", required=True)
    x.add_argument("--tgt", required=True)
    x.add_argument("--encoder", default="default")


def _train_parser(sub) -> None:
    from parabeam.encoders.train_config import TrainConfig
    from parabeam.options import add_flags

    p = sub.add_parser("train", help="train an encoder on parallel sentences (translation ranking or distillation)")
    p.add_argument("--config", help="YAML training config (e.g. conf/distill.yaml)")
    p.add_argument("--output", required=True, metavar="DIR", help="encoder directory to write (resumes if present)")
    p.add_argument("--bitext", action="append", metavar="PARQUET_DIR_OR_GLOB", help="pairs from parabeam mine")
    p.add_argument("--min-score", type=float, default=1.2, help="keep mined pairs scoring at least this")
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


def _run_mine(args, beam_args: list[str]) -> int:
    from parabeam.mining.languages import parse_languages
    from parabeam.options import flag_overrides
    from parabeam.pipelines.config import beam_args_from_config, load_config
    from parabeam.pipelines.mine import run

    languages = parse_languages(args.langs)
    overrides = flag_overrides(args, args.config_flags)
    config = load_config(args.config, overrides)
    preset_beam = beam_args_from_config(args.config)
    given = {a.split("=", 1)[0] for a in beam_args}
    beam_args = [a for a in preset_beam if a.split("=", 1)[0] not in given] + beam_args
    if not any(a.startswith("--runner") for a in beam_args):
        beam_args = DEFAULT_LOCAL_BEAM_ARGS + beam_args
    # Beam's own DaskRunner mixes tagged outputs and runs only one sink; parabeam ships a fixed one
    beam_args = [DASK_RUNNER if a in ("--runner=DaskRunner", "--runner=dask") else a for a in beam_args]
    _check_worker_image(beam_args)
    report = run(inputs=args.input, languages=languages, output=args.output, config=config, pivot=args.pivot,
                 beam_args=beam_args)
    _print_summary(report, args.output)
    return 0


def _check_worker_image(beam_args: list[str]) -> None:
    """Cluster runners start workers from a container image; Beam's stock image lacks parabeam and fails only
    once workers run, so a missing image is an error before launch."""
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(beam_args).get_all_options(retain_unknown_options=True)
    runner = str(options.get("runner") or "")
    if runner.endswith("DataflowRunner") and not options.get("sdk_container_image"):
        raise ValueError("DataflowRunner needs parabeam's worker image: --sdk_container_image=IMAGE "
                         "(build it from the Dockerfile)")
    if str(options.get("environment_type") or "").upper() == "DOCKER" and not options.get("environment_config"):
        raise ValueError("--environment_type=DOCKER needs --environment_config=IMAGE, parabeam's worker image "
                         "(build it from the Dockerfile)")


def _print_summary(report: dict, output: str) -> None:
    docs = report.get("documents", {})
    print(f"parabeam: read {docs.get('in', 0)} documents, {report.get('sentences', {}).get('in', 0)} sentences")
    for lang, counts in sorted(report.get("languages", {}).items()):
        print(f"  {lang}: {counts.get('kept', 0)} unique segments kept")
    for name in report["settings"]["pairs"]:
        n = report.get("pairs", {}).get(name, 0)
        print(f"  {name}: {n} pairs -> {output}/bitext/pair={name}/")
    print(f"report: {output}/report.json")


def _run_eval(args) -> int:
    from parabeam.encoders import evaluate
    from parabeam.encoders.registry import load_encoder
    from parabeam.mining.mine import MiningConfig

    encoder = load_encoder(args.encoder)
    if args.task == "tatoeba":
        result = evaluate.tatoeba_files(encoder, args.src, args.tgt)
    elif args.task == "xsim":
        src, tgt = evaluate.read_lines(args.src), evaluate.read_lines(args.tgt)
        if len(src) != len(tgt):
            raise ValueError(f"{args.src} has {len(src)} lines but {args.tgt} has {len(tgt)}")
        result = {"xsim_error": evaluate.xsim_error(encoder.encode(src), encoder.encode(tgt)), "n": len(src)}
    else:
        config = MiningConfig(k=args.k, margin=args.margin, retrieval=args.retrieval)
        result = vars(evaluate.bucc_files(encoder, args.src, args.tgt, args.gold, config))
    print(json.dumps({"task": args.task, "encoder": args.encoder, **result}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parabeam", description="Bitext mining with Apache Beam")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _mine_parser(sub)
    _eval_parser(sub)
    _train_parser(sub)
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("parabeam.progress").setLevel(logging.INFO)  # progress lines show without --verbose
    if args.command != "mine" and extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        if args.command == "mine":
            return _run_mine(args, extra)
        if args.command == "train":
            return _run_train(args)
        return _run_eval(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"parabeam: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
