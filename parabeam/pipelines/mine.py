"""``parabeam mine``: the end-to-end Beam pipeline, one stage per module in the order of the README's stage picture, and
its entry point."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import time
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from parabeam.mining.languages import Language, language_pairs
from parabeam.pipelines import html_report, storage
from parabeam.pipelines.build_indexes import BuildIndexes
from parabeam.pipelines.config import RunConfig, cpu_threads_for_runner
from parabeam.pipelines.counting import STATS
from parabeam.pipelines.deduplicate import Deduplicate
from parabeam.pipelines.earlier import Earlier, load_earlier
from parabeam.pipelines.embed_shards import EmbedShards
from parabeam.pipelines.filter_pairs import FilterPairs
from parabeam.pipelines.identify_language import IdentifyLanguage
from parabeam.pipelines.output import OutputDir
from parabeam.pipelines.read_documents import ReadDocuments, expand_inputs
from parabeam.pipelines.records import pair_name
from parabeam.pipelines.score_margins import ScoreMargins
from parabeam.pipelines.search_neighbours import SearchNeighbours
from parabeam.pipelines.second_pass import SecondPass
from parabeam.pipelines.select_pairs import THRESHOLDS, SelectPairs
from parabeam.pipelines.shard import Shard
from parabeam.pipelines.split_sentences import SplitSentences
from parabeam.pipelines.stage import Run, Stage, check_outputs
from parabeam.pipelines.write_bitext import WriteBitext, WriteCandidates
from parabeam.pipelines.write_report import WriteReport
from parabeam.progress import progress

log = logging.getLogger("parabeam")


# The pipeline, in order: each stage reads the named outputs of stages above it (``Stage.inputs``), and its busy
# time appears in report.html in this order. Adding a stage is its module plus one line here.
STAGES: tuple[type[Stage], ...] = (
    ReadDocuments,
    SplitSentences,
    IdentifyLanguage,
    Deduplicate,
    Shard,
    EmbedShards,
    BuildIndexes,
    SearchNeighbours,
    ScoreMargins,
    SelectPairs,
    SecondPass,
    FilterPairs,
    WriteBitext,
    WriteCandidates,
)


def timing_order() -> list[str]:
    """The stages' timing names in pipeline order (report.html's timing table)."""
    return list(dict.fromkeys(stage.timing for stage in STAGES if stage.timing))


def build_pipeline(
    p: beam.Pipeline,
    *,
    paths: list[str],
    languages: list[Language],
    pairs: list[tuple[Language, Language]],
    output: str,
    work: str,
    config: RunConfig,
    run_id: str,
    settings: dict | None = None,
    earlier: Earlier = Earlier(),
) -> None:
    """Adds every stage to ``p``: results (bitext, report.json) go to ``output``, embedding shards and indexes to
    ``work``. ``paths`` are already expanded (see ``expand_inputs``); ``settings`` adds to report.json's;
    ``earlier``: the runs it builds on (``--since``, ``parabeam.pipelines.earlier``)."""
    settings = {
        "run_id": run_id,
        "inputs": paths,
        "languages": [lang.code for lang in languages],
        "pairs": [pair_name(a.code, b.code) for a, b in pairs],
        "config": config.to_dict(),
        **(settings or {}),
    }
    run = Run(paths=paths, languages=languages, pairs=[(a.code, b.code) for a, b in pairs], output=output,
              work=work, config=config, run_id=run_id, earlier=earlier)
    produced: dict[str, beam.PCollection] = {}
    stats = []
    for stage_cls in STAGES:
        if not stage_cls.enabled(run):
            continue
        stage = stage_cls.for_run(run)
        inputs = tuple(produced[name] for name in stage.inputs)
        source = p if not inputs else inputs[0] if len(inputs) == 1 else inputs
        outputs = check_outputs(stage, source | stage_cls.__name__ >> stage)
        stats.extend(pcoll for name, pcoll in outputs.items() if name == STATS)
        produced.update({name: pcoll for name, pcoll in outputs.items() if name != STATS})
    all_stats = tuple(stats) | "AllCounts" >> beam.Flatten()
    _ = (all_stats, produced[THRESHOLDS], produced["embedded"]) | "WriteReport" >> WriteReport(output, settings)


def resolve_encoder(config: RunConfig, pairs: list[tuple[Language, Language]]) -> tuple[RunConfig, dict]:
    """The config with ``--encoder auto`` replaced by the bundled encoder chosen for the mined languages (and,
    for ``threshold: auto``, the encoder's own calibration where the user gave none), and the
    choice as report.json records it. The spec is checked here, before any work: an unknown spec, a missing
    package or file is refused in one line."""
    from parabeam.encoders.registry import AUTO, calibration, choose_bundled, encoder_fingerprint

    spec = config.embed.encoder
    settings = {"spec": spec, "resolved": spec}
    if spec == AUTO:
        choice = choose_bundled(sorted({lang.lid_label for pair in pairs for lang in pair}))
        settings.update(resolved=choice.spec, reason=choice.reason)
        config = dataclasses.replace(config, embed=dataclasses.replace(config.embed, encoder=choice.spec))
    encoder_fingerprint(config.embed.encoder)  # raises for an unknown spec, a missing package or file
    mining = config.mining
    if mining.auto_threshold:  # the encoder's own calibration, where the user set none
        own = {key: value for key, value in calibration(config.embed.encoder, mining.margin).items()
               if getattr(mining, key) is None}
        config = dataclasses.replace(config, mining=dataclasses.replace(mining, **own))
    return config, settings


def run(
    *,
    inputs: list[str],
    languages: list[Language],
    output: str,
    config: RunConfig = RunConfig(),
    pivot: str | None = None,
    beam_args: list[str] | None = None,
    test_pipeline: beam.Pipeline | None = None,
    overwrite: bool = False,
    since: list[str] | None = None,
) -> dict:
    """Mine ``languages`` from ``inputs`` into ``output``; returns the report (report.json's content).

    The results are staged and swapped in only when the pipeline succeeds (``parabeam.pipelines.output``): the
    output then holds this run and nothing of an earlier one; a failed run leaves the earlier output intact."""
    options = test_pipeline.options if test_pipeline is not None else PipelineOptions(beam_args or [])
    # paths are expanded and the output checked here, before the pipeline exists: remote filesystems (s3://
    # endpoint and keys, gs:// project) take their settings from the pipeline options
    FileSystems.set_options(options)
    paths = expand_inputs(inputs)
    pairs = language_pairs(languages, pivot)
    if not pairs:
        raise ValueError("no language pair to mine (check --langs and --pivot)")
    config, encoder_settings = resolve_encoder(config, pairs)
    from parabeam.encoders.registry import encoder_fingerprint

    fingerprint = encoder_fingerprint(config.embed.encoder)
    earlier = load_earlier(list(since or []), fingerprint, sorted({lang.code for pair in pairs for lang in pair}),
                           output)
    out = OutputDir(output)
    out.check(overwrite)
    out.prepare()
    progress("encoder: %s%s", encoder_settings["resolved"],
             f" (auto: {encoder_settings['reason']})" if "reason" in encoder_settings else "")
    if config.cpu_threads == 0:
        config = dataclasses.replace(config, cpu_threads=cpu_threads_for_runner(options))
    run_id = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    previous = out.previous_run()
    log.info("mining %s from %d file(s) into %s", ", ".join(pair_name(a.code, b.code) for a, b in pairs),
             len(paths), output)
    if earlier:
        progress("building on %s: %d embedding shard(s) of theirs searched, not embedded again",
                 ", ".join(earlier.outputs), len(earlier.shards))
    pipeline = test_pipeline or beam.Pipeline(options=options)
    staging = out.staging(run_id)
    build_pipeline(pipeline, paths=paths, languages=languages, pairs=pairs, output=staging, work=out.work,
                   config=config, run_id=run_id, earlier=earlier,
                   settings={"replaces": previous, "encoder": encoder_settings, "encoder_fingerprint": fingerprint,
                             "since": list(earlier.runs)})
    started = time.perf_counter()
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as err:
        err.parabeam_pipeline_ran = True  # the CLI points at worker logs only for errors of the running pipeline
        raise
    report_path = storage.join(staging, "report.json")
    report = json.loads(storage.read_bytes(report_path))
    if report.get("settings", {}).get("run_id") != run_id:
        raise RuntimeError(f"{staging}/report.json was not written by this run ({run_id})")
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    storage.write_bytes_atomic(report_path, json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))
    page = html_report.render(report, timing_order())
    storage.write_bytes_atomic(storage.join(staging, "report.html"), page.encode("utf-8"))
    out.commit(run_id)
    return report
