"""Beam stages from sharded sentences to Parquet bitext: EmbedShards, MinePairs, WriteBitext, WriteReport.

Stages hand each other file paths on the run's output filesystem (fp16 embedding shards, Parquet metadata),
never local temp files, so any runner can place them on any worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from parabeam.mining.bitext import BITEXT_SCHEMA, SHARD_META_SCHEMA, parquet_bytes_to_table, table_to_parquet_bytes
from parabeam.mining.index import IndexConfig
from parabeam.mining.mine import MiningConfig
from parabeam.pipelines import storage
from parabeam.pipelines.config import EmbedConfig
from parabeam.pipelines.counting import STATS, CountingDoFn, nest_stats
from parabeam.pipelines.text_stages import _provenance_key

log = logging.getLogger("parabeam")

ROWS_PER_FILE = 200_000
THRESHOLDS = "thresholds"


class ShardRef(NamedTuple):
    lang: str
    shard_id: int
    size: int
    embeddings: str  # path of the (n, d) float16 .npy
    metadata: str  # path of the Parquet with one row per embedding row


def limit_threads(n: int, torch_too: bool = False) -> None:
    """Caps FAISS's (and torch's) CPU threads in this worker process; 0 leaves the libraries' default."""
    if n > 0:
        import faiss

        faiss.omp_set_num_threads(n)
        if torch_too:
            import torch

            torch.set_num_threads(n)


class _Embed(CountingDoFn):
    def __init__(self, config: EmbedConfig, work_dir: str, threads: int = 0):
        self.config = config
        self.work_dir = work_dir
        self.threads = threads

    def setup(self):
        self._encoder = None
        limit_threads(self.threads, torch_too=True)

    @property
    def encoder(self):
        if self._encoder is None:  # loaded on first use, so a rerun that skips every shard loads nothing
            from parabeam.encoders.registry import load_encoder

            kwargs = {"device": self.config.device, "precision": self.config.precision}
            if self.config.max_tokens is not None:
                kwargs["max_tokens"] = self.config.max_tokens
            self._encoder = load_encoder(self.config.encoder, **kwargs)
        return self._encoder

    def process(self, element):
        from parabeam.mining.text import clean_sentence

        (lang, shard_id), sentences = element
        sentences = sorted(sentences, key=_provenance_key)
        # the shard's name carries a digest of its content and encoder: a rerun on the same data reuses it
        h = hashlib.sha1(self.config.encoder.encode() + b"|meta-v3")  # v3: alternate sentences' part
        for s in sentences:
            h.update(s.text.encode("utf-8") + b"\0")
        base = storage.join(self.work_dir, "embeddings", lang, f"shard-{shard_id:05d}-{h.hexdigest()[:16]}")
        ref = ShardRef(lang, shard_id, len(sentences), base + ".npy", base + ".parquet")
        if storage.FileSystems.exists(ref.embeddings) and storage.FileSystems.exists(ref.metadata):
            self.count(f"languages/{lang}/embeddings_reused", len(sentences))
            yield ref
            return
        started = time.perf_counter()
        embeddings = self.encoder.encode([clean_sentence(s.text) for s in sentences]).astype(np.float16)  # (n, d)
        seconds = time.perf_counter() - started
        log.info("embedded %s shard %d: %d sentences in %.1f s (%.0f/s)", lang, shard_id, len(sentences), seconds,
                 len(sentences) / max(seconds, 1e-9))
        meta = pa.table(
            {
                "text": [s.text for s in sentences],
                "url": [s.url for s in sentences],
                "digest": [s.digest for s in sentences],
                "source": [s.source for s in sentences],
                "offset": [int(s.offset) for s in sentences],
                "lid_prob": [float(s.lid_prob) for s in sentences],
                "line": [int(s.line) for s in sentences],
                "part": [int(s.part) for s in sentences],
            },
            schema=SHARD_META_SCHEMA,
        )
        storage.write_bytes_atomic(ref.metadata, table_to_parquet_bytes(meta))
        storage.write_bytes_atomic(ref.embeddings, storage.npy_bytes(embeddings))
        self.count(f"languages/{lang}/embedded", len(sentences))
        yield ref


class EmbedShards(beam.PTransform):
    """``((lang, shard), [Sentence])`` -> ``ShardRef``: encode each shard, store fp16 vectors + metadata."""

    def __init__(self, config: EmbedConfig, work_dir: str, hints: dict[str, str] | None = None, threads: int = 0):
        super().__init__()
        self.config = config
        self.work_dir = work_dir
        self.hints = hints or {}
        self.threads = threads

    def expand(self, shards):
        encode = _with_hints(beam.ParDo(_Embed(self.config, self.work_dir, self.threads)), self.hints)
        return shards | "Encode" >> encode.with_outputs(STATS, main="shards")


def _with_hints(transform: beam.PTransform, hints: dict[str, str]) -> beam.PTransform:
    """Beam resource hints (accelerator, min_ram, cpu_count) on a stage, for runners that place work by them
    (Dataflow); runners without resource placement ignore them."""
    return transform.with_resource_hints(**hints) if hints else transform


def pair_name(src: str, tgt: str) -> str:
    return f"{src}-{tgt}"


class IndexRef(NamedTuple):
    lang: str
    path: str  # FAISS-serialised index on the run's filesystem
    factory: str
    shards: tuple[ShardRef, ...]  # in index order: the index's row ids run over these shards

    def first_row(self, shard_id: int) -> int:
        rows = 0
        for ref in self.shards:
            if ref.shard_id == shard_id:
                return rows
            rows += ref.size
        raise KeyError(f"shard {shard_id} is not in the {self.lang} index")


class _BuildIndex(CountingDoFn):
    def __init__(self, config: IndexConfig, work_dir: str, threads: int = 0):
        self.config = config
        self.work_dir = work_dir
        self.threads = threads

    def setup(self):
        limit_threads(self.threads)

    def process(self, element):
        from parabeam.mining.index import build_index, factory_string, serialize

        lang, refs = element
        refs = sorted(refs, key=lambda r: r.shard_id)
        sizes = [r.size for r in refs]
        d = storage.npy_shape(refs[0].embeddings)[1]  # the header only: the shards are read once, to build
        factory = factory_string(sum(sizes), d, self.config)
        h = hashlib.sha1(f"{factory}|{self.config.seed}|{self.config.train_size}".encode())
        for r in refs:
            h.update(r.embeddings.encode())  # shard names carry a digest of their content
        path = storage.join(self.work_dir, "indexes", f"{lang}-{h.hexdigest()[:16]}.faiss")
        ref = IndexRef(lang, path, factory, tuple(refs))
        if storage.FileSystems.exists(path):
            self.count(f"languages/{lang}/index_reused")
            yield lang, ref
            return
        index, _ = build_index(lambda i: storage.load_npy(refs[i].embeddings), sizes, d, self.config, factory)
        storage.write_bytes_atomic(path, serialize(index))
        self.count(f"languages/{lang}/indexed", index.ntotal)
        yield lang, ref


class BuildIndexes(beam.PTransform):
    """``ShardRef``s -> ``(lang, IndexRef)``: one FAISS index per language, chosen by size (``mining.index``),
    trained on a seeded sample, filled shard by shard, saved under OUTPUT/_work/indexes; built once per language
    and shared by every pair that language is in."""

    def __init__(self, config: IndexConfig, work_dir: str, languages: list[str], hints: dict[str, str] | None = None,
                 threads: int = 0):
        super().__init__()
        self.config = config
        self.work_dir = work_dir
        self.languages = set(languages)
        self.hints = hints or {}
        self.threads = threads

    def expand(self, shard_refs):
        wanted = self.languages
        return (
            shard_refs
            | "KeyByLanguage" >> beam.Map(lambda ref: (ref.lang, ref))
            | "OnlyMinedLanguages" >> beam.Filter(lambda kv: kv[0] in wanted)
            | "GroupByLanguage" >> beam.GroupByKey()
            | "Build" >> _with_hints(beam.ParDo(_BuildIndex(self.config, self.work_dir, self.threads)),
                                     self.hints).with_outputs(STATS, main="indexes")
        )


class Neighbours(NamedTuple):
    pair: str
    direction: str  # "fwd": source shard queries the target index; "bwd": the reverse
    first_row: int  # global row of the shard's first sentence in its language
    D: np.ndarray  # (n, K) float32, K = k + the second pass's reserve
    I: np.ndarray  # (n, K) int64 global rows of the other language
    means: np.ndarray | None = None  # (n,) neighbourhood means when not those of D's first k columns


PARTIAL_BWD = "partial_bwd"


def _shares_gemm(target: IndexRef) -> bool:
    """Whether forward tasks against ``target`` also answer the backward direction: an exact flat index, where
    the forward search computes the whole similarity matrix of the shard against the target language anyway
    (``mining.knn.exact_knn_both``). Decided from the index's factory alone, so every worker agrees."""
    return target.factory == "Flat"


class _Search(CountingDoFn):
    def __init__(self, pairs: list[tuple[str, str]], k: int, config: IndexConfig, threads: int = 0):
        self.pairs = pairs
        self.k = k
        self.config = config
        self.threads = threads

    def setup(self):
        self._cached = (None, None)  # ((path, on_gpu), index): one index in memory per worker
        limit_threads(self.threads, torch_too=True)  # flat indexes are searched with torch (mining.knn)

    def _index(self, ref: IndexRef, gpu: bool = True):
        from parabeam.mining.index import deserialize, to_gpu_if_available

        key = (ref.path, gpu)
        if self._cached[0] != key:
            self._cached = (None, None)  # release the old index before loading the next
            index = deserialize(storage.read_bytes(ref.path))
            self._cached = (key, to_gpu_if_available(index, self.config) if gpu else index)
        return self._cached[1]

    def process(self, task, indexes):
        from parabeam.mining.index import search

        direction, pair, ref = task
        name = pair_name(*pair)
        other = pair[1] if direction == "fwd" else pair[0]
        target = indexes.get(other)
        if target is None:  # the other language has no sentence: nothing to pair with
            self.count(f"search/{name}/no_target_sentences", ref.size)
            return
        first_row = indexes[ref.lang].first_row(ref.shard_id)
        if direction == "bwd" and _shares_gemm(indexes[ref.lang]):
            self.count(f"search/{name}/bwd", ref.size)  # answered by the forward tasks' shared pass
            return
        queries = storage.load_npy(ref.embeddings)
        self.count(f"search/{name}/{direction}", len(queries))
        if direction == "fwd" and _shares_gemm(target):
            yield from self._both_ways(name, target, queries, first_row)
            return
        D, I = search(self._index(target), queries, self.k, self.config.nprobe)
        yield Neighbours(name, direction, first_row, D, I)

    def _both_ways(self, name: str, target: IndexRef, queries: np.ndarray, first_row: int):
        from parabeam.mining.index import flat_vectors
        from parabeam.mining.knn import exact_knn_both

        vectors = flat_vectors(self._index(target, gpu=False))
        (D, I), (D_bwd, I_bwd) = exact_knn_both(queries, vectors, self.k, use_gpu=self.config.use_gpu)
        yield Neighbours(name, "fwd", first_row, D, I)
        I_bwd = np.where(I_bwd >= 0, I_bwd + first_row, -1)  # global rows of the query language
        start = 0
        for shard in target.shards:  # this shard's top-k for every target row, cut by target shard
            rows = slice(start, start + shard.size)
            yield beam.pvalue.TaggedOutput(PARTIAL_BWD, ((name, shard.shard_id), (start, D_bwd[rows], I_bwd[rows])))
            start += shard.size


class _MergeTopK(beam.CombineFn):
    """Partial backward top-k lists of one target shard (one per source shard) -> the global top-k."""

    def __init__(self, k: int):
        self.k = k

    def create_accumulator(self):
        return None

    def add_input(self, acc, partial):
        from parabeam.mining.knn import merge_topk

        if acc is None:
            return partial
        start, D, I = acc
        return (start, *merge_topk(D, I, partial[1], partial[2], self.k))

    def merge_accumulators(self, accs):
        merged = None
        for acc in accs:
            if acc is not None:
                merged = self.add_input(merged, acc)
        return merged

    def extract_output(self, acc):
        return acc


class SearchNeighbours(beam.PTransform):
    """Every shard of a pair's languages against the other language's index: k nearest neighbours both ways,
    one task per (pair, direction, shard), so memory holds one index and one shard per worker. Against an
    exact flat index a forward task computes its shard's whole similarity matrix once and takes both the row
    top-k (forward) and the column top-k (a partial backward list for every target row); the partial lists are
    merged per target shard and the backward tasks are skipped, which halves the work (``mining.knn``).
    Returns ``{"neighbours": Neighbours, "stats": counts}``."""

    def __init__(self, pairs: list[tuple[str, str]], k: int, config: IndexConfig, hints: dict[str, str] | None = None,
                 threads: int = 0):
        super().__init__()
        self.pairs = pairs
        self.k = k
        self.config = config
        self.hints = hints or {}
        self.threads = threads

    def expand(self, inputs):
        shard_refs, indexes = inputs
        pairs = self.pairs

        def tasks(ref):
            for pair in pairs:
                if ref.lang == pair[0]:
                    yield "fwd", pair, ref
                if ref.lang == pair[1]:
                    yield "bwd", pair, ref

        searched = (
            shard_refs
            | "Tasks" >> beam.FlatMap(tasks)
            | "SpreadTasks" >> beam.Reshuffle()
            | "Search" >> _with_hints(
                beam.ParDo(_Search(self.pairs, self.k, self.config, self.threads), beam.pvalue.AsDict(indexes)),
                self.hints,
            ).with_outputs(STATS, PARTIAL_BWD, main="neighbours")
        )
        backward = (
            searched[PARTIAL_BWD]
            | "MergeBackward" >> beam.CombinePerKey(_MergeTopK(self.k))
            | "BackwardNeighbours" >> beam.MapTuple(lambda key, acc: Neighbours(key[0], "bwd", *acc))
        )
        neighbours = (searched.neighbours, backward) | "AllNeighbours" >> beam.Flatten()
        return {"neighbours": neighbours, "stats": searched[STATS]}


def _means_block(nb: Neighbours, k: int):
    from parabeam.mining.margin import knn_means

    return (nb.pair, nb.direction), (nb.first_row, knn_means(nb.D[:, :k]) if nb.means is None else nb.means)


def _concat_blocks(blocks) -> np.ndarray:
    blocks = sorted(blocks, key=lambda b: b[0])
    return np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, np.float32)


class _Score(beam.DoFn):
    def __init__(self, margin: str, k: int):
        self.margin = margin
        self.k = k

    def process(self, nb: Neighbours, means):
        from parabeam.mining.mine import shard_candidates

        other = "bwd" if nb.direction == "fwd" else "fwd"
        own = means[(nb.pair, nb.direction)][nb.first_row : nb.first_row + len(nb.D)]
        k = self.k
        yield nb.pair, (nb.direction, shard_candidates(nb.D[:, :k], nb.I[:, :k], own, means[(nb.pair, other)],
                                                       self.margin, nb.first_row))


class ScoreMargins(beam.PTransform):
    """Neighbours -> ``(pair, (direction, Candidates))``: each query shard's best candidate among its first k
    neighbours by margin, with the neighbourhood means of the whole other language (a side input of n floats
    per language and pair). ``.means`` (a ``(pair, direction) -> (n,)`` PCollection) is set on expansion."""

    def __init__(self, margin: str, k: int):
        super().__init__()
        self.margin = margin
        self.k = k
        self.means = None

    def expand(self, neighbours):
        k = self.k
        self.means = (
            neighbours
            | "MeansPerShard" >> beam.Map(_means_block, k)
            | "GroupMeans" >> beam.GroupByKey()
            | "ConcatMeans" >> beam.MapTuple(lambda key, blocks: (key, _concat_blocks(blocks)))
        )
        return neighbours | "Score" >> beam.ParDo(_Score(self.margin, k), beam.pvalue.AsDict(self.means))


class FirstPass(NamedTuple):
    """A pair's first-pass result, handed to the second pass and the writer."""

    pairs: object  # mining.mine.MinedPairs: kept pairs, overlaps dropped
    threshold: float
    floor: float | None  # the second pass's cosine floor; None: no second pass
    removed_src: np.ndarray | None  # (n_src,) bool: rows of lines the first pass paired
    removed_tgt: np.ndarray | None


class _Refill(beam.DoFn):
    """A shard's neighbour lists without the lines the first pass paired (``mining.mine.refill_neighbours``)."""

    def __init__(self, k: int):
        self.k = k

    def process(self, nb: Neighbours, first, means):
        from parabeam.mining.mine import refill_neighbours, refilled_means

        fp = first.get(nb.pair)
        if fp is None or fp.floor is None:
            return
        rows = slice(nb.first_row, nb.first_row + len(nb.D))
        own, other = (fp.removed_src, fp.removed_tgt) if nb.direction == "fwd" else (fp.removed_tgt, fp.removed_src)
        D, I = refill_neighbours(nb.D, nb.I, own[rows], other, self.k)
        yield nb._replace(D=D, I=I, means=refilled_means(D, means[(nb.pair, nb.direction)][rows]))


class _SelectPair(CountingDoFn):
    def __init__(self, pairs, config: MiningConfig, encoder_name: str, run_id: str):
        self.pairs = {pair_name(a, b): (a, b) for a, b in pairs}
        self.config = config
        self.encoder_name = encoder_name
        self.run_id = run_id

    def setup(self):
        path = self.config.calibration_gold
        self._gold = _read_gold_pairs(path) if path else None  # read once per worker, not per pair

    def process(self, element, indexes):
        from parabeam.mining.mine import apply_threshold, cosine_floor, select, used_rows

        name, blocks = element
        src_lang, tgt_lang = self.pairs[name]
        blocks = list(blocks)
        selected = select([c for d, c in blocks if d == "fwd"], [c for d, c in blocks if d == "bwd"],
                          self.config.retrieval)
        src_meta = _ShardRows(list(indexes[src_lang].shards))
        tgt_meta = _ShardRows(list(indexes[tgt_lang].shards))
        threshold, info = self._threshold(name, selected, src_meta, tgt_meta)
        pairs = apply_threshold(selected, threshold, self.config.max_score)
        pairs = _without_overlaps(pairs, src_meta, tgt_meta, threshold + self.config.alternate_margin, self, name)
        self.count(f"first_pass/{name}", len(pairs))
        floor = cosine_floor(pairs, self.config.second_pass_floor) if self.config.second_pass_neighbours else None
        removed_src = removed_tgt = None
        if floor is not None:
            removed_src = used_rows(pairs.src, src_meta.n, src_meta.line_keys())
            removed_tgt = used_rows(pairs.tgt, tgt_meta.n, tgt_meta.line_keys())
            info["second_pass_floor"] = floor
        yield beam.pvalue.TaggedOutput(THRESHOLDS, (name, info))
        yield name, FirstPass(pairs, threshold, floor, removed_src, removed_tgt)

    def _threshold(self, name, selected, src_meta, tgt_meta) -> tuple[float, dict]:
        """The pair's threshold: fixed, from the score distribution, or from gold pairs, with every estimate
        (for report.json's ``thresholds.<pair>``)."""
        from parabeam.mining.calibrate import threshold_from_gold, threshold_from_scores

        cfg = self.config
        threshold, method = cfg.threshold, "fixed"
        auto = threshold_from_scores(selected.score)
        info: dict = {"candidates": len(selected), "from_scores": auto}
        if auto is not None and cfg.threshold_mode == "auto":
            threshold, method = auto, "from_scores"
        if self._gold is not None:
            gold = self._gold
            src_text = src_meta.texts(selected.src)
            tgt_text = tgt_meta.texts(selected.tgt)
            from parabeam.mining.text import normalise_for_dedup as norm

            is_gold = np.array([(norm(s), norm(t)) in gold for s, t in zip(src_text, tgt_text)], dtype=bool)
            found = threshold_from_gold(selected.score, is_gold, len(gold))
            info.update(gold_pairs=len(gold), gold_pairs_among_candidates=int(is_gold.sum()))
            if found is not None:
                threshold, method = found[0], "from_gold"
                info["from_gold"], info["gold_f1"] = found
        info.update(used=threshold, method=method)
        return threshold, info


def _without_overlaps(pairs, src_meta: _ShardRows, tgt_meta: _ShardRows, alternate_threshold: float,
                      counter: CountingDoFn, name: str):
    """Pairs minus those that use a sentence of a line also mined whole under ``alternate_threshold``
    (``mining.mine.drop_weak_alternates``), then minus those that reuse text a better pair already aligned
    (segment=auto gives short lines both whole and as sentences; ``mining.mine.drop_overlaps``); both counted
    under ``overlaps.<pair>`` in report.json."""
    from parabeam.mining.mine import drop_overlaps, drop_weak_alternates

    if not len(pairs):
        return pairs
    kept = drop_weak_alternates(pairs, np.asarray(src_meta.take(pairs.src, ("part",))["part"]),
                                np.asarray(tgt_meta.take(pairs.tgt, ("part",))["part"]), alternate_threshold)
    counter.count(f"overlaps/{name}/weak_alternates", len(pairs) - len(kept))
    final = drop_overlaps(kept, src_meta.units(kept.src), tgt_meta.units(kept.tgt))
    counter.count(f"overlaps/{name}/dropped", len(kept) - len(final))
    return final


def _read_gold_pairs(path: str) -> set[tuple[str, str]]:
    from parabeam.mining.text import normalise_for_dedup as norm

    pairs = set()
    for line in storage.read_bytes(path).decode("utf-8").splitlines():
        if line.strip():
            src, sep, tgt = line.partition("\t")
            if not sep:
                raise ValueError(f"{path}: expected src<TAB>tgt per line, got {line[:80]!r}")
            pairs.add((norm(src), norm(tgt)))
    return pairs


class _ShardRows:
    """Looks up sentence metadata by global row id (row ids run over the shards in shard order)."""

    def __init__(self, refs: list[ShardRef]):
        self.refs = refs
        self.offsets = np.cumsum([0] + [r.size for r in refs])
        self.n = int(self.offsets[-1])
        self.tables = [parquet_bytes_to_table(storage.read_bytes(r.metadata)) for r in refs]

    def line_keys(self) -> np.ndarray:
        """(n, 3) int64: each row's input file (numbered), document offset and line, in row order; columnar, so
        a side of millions of sentences needs no Python object per row."""
        files: dict[str, int] = {}
        blocks = []
        for table in self.tables:
            source = table.column("source").combine_chunks().dictionary_encode()
            file_ids = np.array([files.setdefault(v, len(files)) for v in source.dictionary.to_pylist()], np.int64)
            blocks.append(np.stack([
                file_ids[source.indices.to_numpy(zero_copy_only=False)] if len(file_ids) else np.zeros(0, np.int64),
                table.column("offset").to_numpy().astype(np.int64),
                table.column("line").to_numpy().astype(np.int64),
            ], axis=1))
        return np.concatenate(blocks) if blocks else np.zeros((0, 3), np.int64)

    def units(self, rows: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
        """For each row: its document (source, offset), line and part (``mining.text.Segment``)."""
        taken = self.take(np.asarray(rows, dtype=np.int64), ("source", "offset", "line", "part"))
        docs = list(zip(taken["source"], taken["offset"]))
        return docs, np.asarray(taken["line"], dtype=np.int64), np.asarray(taken["part"], dtype=np.int64)

    def texts(self, rows: np.ndarray) -> list[str]:
        return self.take(np.asarray(rows, dtype=np.int64), ("text",))["text"] if len(rows) else []

    def take(self, rows: np.ndarray, keys: tuple[str, ...] | None = None) -> dict[str, list]:
        """Metadata columns ``keys`` (default: all, plus each row's ``shard`` and ``row`` in it) for global rows."""
        with_position = keys is None
        keys = tuple(SHARD_META_SCHEMA.names) if keys is None else keys
        shard_idx = np.searchsorted(self.offsets, rows, side="right") - 1
        out: dict[str, list] = {k: [None] * len(rows) for k in keys}
        if with_position:
            out["shard"] = [None] * len(rows)
            out["row"] = [0] * len(rows)
        for s in np.unique(shard_idx):
            positions = np.flatnonzero(shard_idx == s)
            local = rows[positions] - self.offsets[s]
            taken = self.tables[s].select(list(keys)).take(pa.array(local)).to_pydict()
            for key, values in taken.items():
                for pos, value in zip(positions, values):
                    out[key][pos] = value
            if with_position:
                ref = self.refs[s]
                for pos, row in zip(positions, local):
                    out["shard"][pos] = f"{ref.lang}/{ref.shard_id:05d}"
                    out["row"][pos] = int(row)
        return out


def _bitext_table(src_lang, tgt_lang, pairs, sel, src_meta, tgt_meta, encoder_name, run_id) -> pa.Table:
    src_rows, tgt_rows = pairs.src[sel], pairs.tgt[sel]
    s = src_meta.take(src_rows) if len(src_rows) else {}
    t = tgt_meta.take(tgt_rows) if len(tgt_rows) else {}
    n = len(src_rows)
    columns = {
        "src_lang": [src_lang] * n,
        "tgt_lang": [tgt_lang] * n,
        "src_text": s.get("text", []),
        "tgt_text": t.get("text", []),
        "score": pairs.score[sel],
        "cosine": pairs.cosine[sel],
        "src_url": s.get("url", []),
        "tgt_url": t.get("url", []),
        "src_digest": s.get("digest", []),
        "tgt_digest": t.get("digest", []),
        "src_source": s.get("source", []),
        "tgt_source": t.get("source", []),
        "src_offset": s.get("offset", []),
        "tgt_offset": t.get("offset", []),
        "src_shard": s.get("shard", []),
        "tgt_shard": t.get("shard", []),
        "src_row": s.get("row", []),
        "tgt_row": t.get("row", []),
        "src_lid_prob": s.get("lid_prob", []),
        "tgt_lid_prob": t.get("lid_prob", []),
        "encoder": [encoder_name] * n,
        "run_id": [run_id] * n,
    }
    return pa.table(columns, schema=BITEXT_SCHEMA)


class _FinishPair(CountingDoFn):
    """The second pass's selection for one pair, joined to the first pass's pairs, as Parquet tables."""

    def __init__(self, pairs, config: MiningConfig, encoder_name: str, run_id: str):
        self.pairs = {pair_name(a, b): (a, b) for a, b in pairs}
        self.config = config
        self.encoder_name = encoder_name
        self.run_id = run_id

    def process(self, element, indexes):
        from parabeam.mining.mine import concat_pairs, second_pass_select, select

        name, (firsts, blocks) = element
        if not firsts:
            return
        fp, blocks = firsts[0], list(blocks)
        src_lang, tgt_lang = self.pairs[name]
        src_meta = _ShardRows(list(indexes[src_lang].shards))
        tgt_meta = _ShardRows(list(indexes[tgt_lang].shards))
        pairs = fp.pairs
        if fp.floor is not None and blocks:
            second = select([c for d, c in blocks if d == "fwd"], [c for d, c in blocks if d == "bwd"],
                            self.config.retrieval)
            second = _without_overlaps(second_pass_select(second, fp.threshold, fp.floor, self.config), src_meta,
                                       tgt_meta, fp.threshold + self.config.alternate_margin, self, name)
            self.count(f"second_pass/{name}", len(second))
            pairs = concat_pairs(pairs, second)
        self.count(f"pairs/{name}", len(pairs))
        for chunk, start in enumerate(range(0, max(len(pairs), 1), ROWS_PER_FILE)):
            sel = slice(start, start + ROWS_PER_FILE)
            yield name, chunk, _bitext_table(
                src_lang, tgt_lang, pairs, sel, src_meta, tgt_meta, self.encoder_name, self.run_id
            )


class SelectPairs(beam.PTransform):
    """Neighbours -> ``(pair, chunk, pyarrow.Table)``, in two passes (``mining.mine``, "The second pass").

    First pass: margins over each sentence's first k neighbours (``ScoreMargins``), retrieval (forward |
    backward | intersection | max) over all of a pair's candidates (two small arrays per sentence), the
    threshold (fixed, calibrated from the score distribution or from gold pairs). Second pass: each shard's
    lists without the lines the first pass paired (a side input of one bool per sentence), new neighbourhood
    means, retrieval again at the same threshold and the cosine floor. Then the sentences' texts and provenance."""

    def __init__(self, pairs: list[tuple[str, str]], config: MiningConfig, encoder_name: str, run_id: str):
        super().__init__()
        self.pairs = pairs
        self.config = config
        self.encoder_name = encoder_name
        self.run_id = run_id

    def expand(self, inputs):
        neighbours, indexes = inputs
        cfg = self.config
        scoring = ScoreMargins(cfg.margin, cfg.k)
        candidates = neighbours | "ScoreMargins" >> scoring
        first = (
            candidates
            | "GroupByPair" >> beam.GroupByKey()
            | "Select" >> beam.ParDo(
                _SelectPair(self.pairs, cfg, self.encoder_name, self.run_id), beam.pvalue.AsDict(indexes)
            ).with_outputs(STATS, THRESHOLDS, main="first")
        )
        second = (
            neighbours
            | "Refill" >> beam.ParDo(_Refill(cfg.k), beam.pvalue.AsDict(first.first),
                                     beam.pvalue.AsDict(scoring.means))
            | "SecondPassMargins" >> ScoreMargins(cfg.margin, cfg.k)
        )
        finished = (
            (first.first, second)
            | "JoinPasses" >> beam.CoGroupByKey()
            | "Finish" >> beam.ParDo(
                _FinishPair(self.pairs, cfg, self.encoder_name, self.run_id), beam.pvalue.AsDict(indexes)
            ).with_outputs(STATS, main="tables")
        )
        stats = (first[STATS], finished[STATS]) | "SelectCounts" >> beam.Flatten()
        return {"tables": finished.tables, "stats": stats, "thresholds": first[THRESHOLDS]}


class _WriteTable(storage.StorageDoFn):
    def __init__(self, output: str):
        self.output = output

    def process(self, element):
        name, chunk, table = element
        path = storage.join(self.output, "bitext", f"pair={name}", f"part-{chunk:05d}.parquet")
        storage.write_bytes_atomic(path, table_to_parquet_bytes(table))
        yield path


class WriteBitext(beam.PTransform):
    """Writes ``DIR/bitext/pair=L1-L2/part-NNNNN.parquet`` (temporary name, renamed when complete)."""

    def __init__(self, output: str):
        super().__init__()
        self.output = output

    def expand(self, tables):
        return tables | "WriteParquet" >> beam.ParDo(_WriteTable(self.output))


class _WriteReport(storage.StorageDoFn):
    def __init__(self, output: str, settings: dict):
        self.output = output
        self.settings = settings

    def process(self, counts: dict, thresholds):
        report = {"settings": self.settings, **nest_stats(counts), "thresholds": dict(sorted(thresholds))}
        report["pairs"] = {name: report.get("pairs", {}).get(name, 0) for name in self.settings["pairs"]}
        path = storage.join(self.output, "report.json")
        storage.write_bytes_atomic(path, json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))
        yield path


class WriteReport(beam.PTransform):
    """Sums every stage's ``(name, n)`` counts and writes ``DIR/report.json`` with the run's settings."""

    def __init__(self, output: str, settings: dict):
        super().__init__()
        self.output = output
        self.settings = settings

    def expand(self, inputs):
        stats, thresholds = inputs
        return (
            stats
            | "SumCounts" >> beam.CombinePerKey(sum)
            | "ToDict" >> beam.combiners.ToDict()
            | "Write" >> beam.ParDo(_WriteReport(self.output, self.settings), beam.pvalue.AsList(thresholds))
        )
