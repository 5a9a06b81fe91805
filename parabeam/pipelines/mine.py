"""``parabeam mine``: the end-to-end Beam pipeline (DESIGN.md data flow) and its entry point."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from parabeam.mining.languages import Language, language_pairs
from parabeam.pipelines import storage
from parabeam.pipelines.config import RunConfig, cpu_threads_for_runner
from parabeam.pipelines.mining_stages import (
    BuildIndexes,
    EmbedShards,
    SearchNeighbours,
    SelectPairs,
    WriteBitext,
    WriteReport,
    pair_name,
)
from parabeam.pipelines.text_stages import (
    Deduplicate,
    IdentifyLanguage,
    ReadDocuments,
    Shard,
    SplitSentences,
    expand_inputs,
)

log = logging.getLogger("parabeam")


def build_pipeline(
    p: beam.Pipeline,
    *,
    paths: list[str],
    languages: list[Language],
    pairs: list[tuple[Language, Language]],
    output: str,
    config: RunConfig,
    run_id: str,
) -> None:
    """Adds every stage to ``p``. ``paths`` are already expanded (see ``expand_inputs``)."""
    settings = {
        "run_id": run_id,
        "inputs": paths,
        "languages": [lang.code for lang in languages],
        "pairs": [pair_name(a.code, b.code) for a, b in pairs],
        "config": config.to_dict(),
    }
    docs = p | "ReadDocuments" >> ReadDocuments(paths)
    sentences = docs.documents | "SplitSentences" >> SplitSentences(config.text)
    identified = sentences.sentences | "IdentifyLanguage" >> IdentifyLanguage(config.text, languages)
    unique = identified.identified | "Deduplicate" >> Deduplicate()
    shards = unique.unique | "Shard" >> Shard(config.shard_size)
    work = storage.join(output, "_work")
    code_pairs = [(a.code, b.code) for a, b in pairs]
    embedded = shards | "EmbedShards" >> EmbedShards(config.embed, work, config.resources.embed, config.cpu_threads)
    indexes = embedded.shards | "BuildIndexes" >> BuildIndexes(
        config.index, work, sorted({code for pair in code_pairs for code in pair}), config.resources.index,
        config.cpu_threads,
    )
    neighbours = (embedded.shards, indexes.indexes) | "SearchNeighbours" >> SearchNeighbours(
        code_pairs, config.mining.search_k, config.index, config.resources.search, config.cpu_threads
    )
    selected = (neighbours["neighbours"], indexes.indexes) | "SelectPairs" >> SelectPairs(
        code_pairs, config.mining, config.embed.encoder, run_id
    )
    _ = selected["tables"] | "WriteBitext" >> WriteBitext(output)
    stats = (docs.stats, sentences.stats, identified.stats, unique.stats, embedded.stats, indexes.stats,
             neighbours["stats"], selected["stats"])
    all_stats = stats | "AllCounts" >> beam.Flatten()
    _ = (all_stats, selected["thresholds"]) | "WriteReport" >> WriteReport(output, settings)


def run(
    *,
    inputs: list[str],
    languages: list[Language],
    output: str,
    config: RunConfig = RunConfig(),
    pivot: str | None = None,
    beam_args: list[str] | None = None,
    test_pipeline: beam.Pipeline | None = None,
) -> dict:
    """Mine ``languages`` from ``inputs`` into ``output``; returns the report (report.json's content)."""
    options = test_pipeline.options if test_pipeline is not None else PipelineOptions(beam_args or [])
    # paths are expanded and stale output deleted here, before the pipeline exists: remote filesystems
    # (s3:// endpoint and keys, gs:// project) take their settings from the pipeline options
    FileSystems.set_options(options)
    paths = expand_inputs(inputs)
    if config.cpu_threads == 0:
        config = dataclasses.replace(config, cpu_threads=cpu_threads_for_runner(options))
    pairs = language_pairs(languages, pivot)
    if not pairs:
        raise ValueError("no language pair to mine (check --langs and --pivot)")
    run_id = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    # stale parts of an earlier run of the same pairs would mix with this run's output
    for a, b in pairs:
        storage.delete_matching(storage.join(output, "bitext", f"pair={pair_name(a.code, b.code)}", "*"))
    log.info("mining %s from %d file(s) into %s", ", ".join(pair_name(a.code, b.code) for a, b in pairs),
             len(paths), output)
    pipeline = test_pipeline or beam.Pipeline(options=options)
    build_pipeline(pipeline, paths=paths, languages=languages, pairs=pairs, output=output, config=config,
                   run_id=run_id)
    result = pipeline.run()
    result.wait_until_finish()
    report = json.loads(storage.read_bytes(storage.join(output, "report.json")))
    if report.get("settings", {}).get("run_id") != run_id:
        raise RuntimeError(f"{output}/report.json was not written by this run ({run_id})")
    return report
