"""The mining stage beside its peers, on the same embeddings, each in its own process: time, peak RSS, F1.

Miners (the peers' logic written here from their documented definitions, not their code):
- ``laser``: LASER's ``mine_bitexts.py`` (Artetxe & Schwenk 2019): exact kNN both ways with FAISS
  ``IndexFlatIP``, k = 4, ratio margin, the best candidate per sentence both ways, max retrieval (greedy one-to-one
  by decreasing score), threshold 1.2 (ratio);
- ``st``: sentence-transformers' ``examples/applications/parallel-sentence-mining`` with its defaults: the same
  scoring, but approximate kNN (FAISS ``IndexIVFFlat``, n / 1000 lists, 3 probed), threshold 1.2;
- ``parabeam``: ``parabeam.mining.mine.mine`` at its defaults (exact kNN both ways from one GEMM, distance margin,
  threshold auto);
- ``parabeam-ivf``: the same through ``mine_indexed`` with the IVF index ``--index ivf`` builds (nprobe 32).

Data: synthetic clustered unit vectors (d = 512, 2000 centres) with 10% planted pairs (noisy copies, cosine about
0.85), as ``benchmarks/mining_scale.py`` makes them, at each ``--sizes`` per side; and with ``--news DIR`` the
line embeddings of a ``benchmarks/comparable_news.py`` corpus (its ``src.muse-v3.npy``, ``tgt.muse-v3.npy``,
``gold.tsv``; ``--news-encoder`` names another encoder's).
F1 counts a mined pair correct when it is a planted (or gold) pair. Time is the mining call alone (data loading
and imports excluded); peak RSS is the worker process's (data included, the same for all).

Run: ``python benchmarks/peers.py --sizes 20000,50000,100000,200000 [--news /tmp/cn/es-en]``. Prints one JSON
line per run and a Markdown table of ratios to LASER. ``--search-only DIR`` (a data folder a run left, e.g.
``/tmp/parabeam-peers/news``) times the exact search alone, in one process, ``--repeat`` times: parabeam's both-ways
search against FAISS's two ``IndexFlatIP`` searches (LASER's), and parabeam's whole miner beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import corpus_vectors  # noqa: E402

METHODS = ("laser", "st", "parabeam", "parabeam-ivf")


def _save(path: str, x: np.ndarray, y: np.ndarray, gold: np.ndarray) -> None:
    """A data folder: x.npy, y.npy (float32, read straight into memory by the workers) and gold.npy."""
    os.makedirs(path, exist_ok=True)
    for name, array in (("x", x.astype(np.float32)), ("y", y.astype(np.float32)), ("gold", gold)):
        np.save(os.path.join(path, f"{name}.npy"), array)


def make_synthetic(n: int, path: str, seed: int = 0) -> None:
    """x (n, 512), y (n, 512) float32 unit vectors and gold (m, 2): source row i < n / 10 is a noisy copy of
    target row i."""
    rng = np.random.default_rng(seed)
    d, n_centres = 512, 2000
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    centres = unit(rng.standard_normal((n_centres, d)).astype(np.float32))
    y = unit(centres[rng.integers(0, n_centres, n)] + 0.9 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d))
    x = unit(centres[rng.integers(0, n_centres, n)] + 0.9 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d))
    m = n // 10
    x[:m] = unit(y[:m] + 0.5 * rng.standard_normal((m, d)).astype(np.float32) / np.sqrt(d))
    _save(path, x, y, np.stack([np.arange(m)] * 2, axis=1))


def make_news(corpus: str, path: str, encoder: str = "muse-v3") -> None:
    """The comparable-news corpus's line embeddings and its gold as row pairs."""
    def lines(name):
        with open(os.path.join(corpus, name), encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]

    src, tgt = lines("src.txt"), lines("tgt.txt")
    s_id, t_id = {s: i for i, s in enumerate(src)}, {t: i for i, t in enumerate(tgt)}
    gold = [(s_id[a], t_id[b]) for a, b in (line.split("\t") for line in lines("gold.tsv"))]
    _save(path, np.load(corpus_vectors(corpus, "src", encoder)), np.load(corpus_vectors(corpus, "tgt", encoder)),
          np.array(gold, dtype=np.int64))


# ---- the peers' logic, from their definitions ----------------------------------------------------------------

def _ratio_candidates(x, y, Dxy, Ixy, Dyx, Iyx):
    """LASER's candidates: ratio margin over the k neighbours, best per sentence both ways (loops, as written)."""
    mx, my = Dxy.mean(axis=1), Dyx.mean(axis=1)
    fwd = Dxy / ((mx[:, None] + my[Ixy]) / 2)  # (n_x, k)
    bwd = Dyx / ((my[:, None] + mx[Iyx]) / 2)  # (n_y, k)
    src = np.concatenate([np.arange(len(x)), Iyx[np.arange(len(y)), bwd.argmax(axis=1)]])
    tgt = np.concatenate([Ixy[np.arange(len(x)), fwd.argmax(axis=1)], np.arange(len(y))])
    return src, tgt, np.concatenate([fwd.max(axis=1), bwd.max(axis=1)])


def _greedy(src, tgt, scores, threshold):
    seen_s, seen_t, kept = set(), set(), []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < threshold:
            break
        s, t = int(src[i]), int(tgt[i])
        if s not in seen_s and t not in seen_t:
            seen_s.add(s)
            seen_t.add(t)
            kept.append((s, t))
    return kept


def laser(x, y, k=4, threshold=1.2):
    import faiss

    ix, iy = faiss.IndexFlatIP(x.shape[1]), faiss.IndexFlatIP(y.shape[1])
    ix.add(x)
    iy.add(y)
    Dxy, Ixy = iy.search(x, k)
    Dyx, Iyx = ix.search(y, k)
    return _greedy(*_ratio_candidates(x, y, Dxy, Ixy, Dyx, Iyx), threshold)


def sentence_transformers(x, y, k=4, threshold=1.2, n_probe=3):
    import faiss

    def knn(a, b):
        lists = min(32768, max(1, len(b) // 1000))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(b.shape[1]), b.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = n_probe
        index.train(b)
        index.add(b)
        return index.search(a, k)

    Dxy, Ixy = knn(x, y)
    Dyx, Iyx = knn(y, x)
    return _greedy(*_ratio_candidates(x, y, Dxy, Ixy, Dyx, Iyx), threshold)


def parabeam(x, y):
    from parabeam.mining.mine import mine

    pairs = mine(x, y)
    return list(zip(pairs.src.tolist(), pairs.tgt.tolist()))


def parabeam_ivf(x, y):
    from parabeam.mining.index import IndexConfig
    from parabeam.mining.mine import mine_indexed

    pairs = mine_indexed(lambda i: x, [len(x)], lambda i: y, [len(y)], index_config=IndexConfig(kind="ivf"))
    return list(zip(pairs.src.tolist(), pairs.tgt.tolist()))


RUNNERS = {"laser": laser, "st": sentence_transformers, "parabeam": parabeam, "parabeam-ivf": parabeam_ivf}


def worker(method: str, data: str) -> None:
    """One miner on one data file, in this process: prints a JSON line."""
    x, y, gold = (np.load(os.path.join(data, f"{name}.npy")) for name in ("x", "y", "gold"))
    started = time.perf_counter()
    pairs = RUNNERS[method](x, y)
    seconds = time.perf_counter() - started
    gold_set = {(int(a), int(b)) for a, b in gold}
    tp = len(set(pairs) & gold_set)
    p, r = tp / max(len(pairs), 1), tp / max(len(gold_set), 1)
    print(json.dumps({"method": method, "seconds": round(seconds, 2),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "pairs": len(pairs), "f1": round(200 * p * r / max(p + r, 1e-9), 2),
                      "precision": round(100 * p, 2), "recall": round(100 * r, 2)}))


def search_only(data: str, repeat: int) -> None:
    """Exact kNN both ways (k = 4) on one data folder: parabeam's one-GEMM search against FAISS's two searches."""
    import faiss

    from parabeam.mining.mine import mine, search_both

    x, y = np.load(os.path.join(data, "x.npy")), np.load(os.path.join(data, "y.npy"))
    mine(x[:100], y[:100])  # imports and BLAS warm-up
    for _ in range(repeat):
        started = time.perf_counter()
        search_both(x, y, 4)
        ours = time.perf_counter() - started
        started = time.perf_counter()
        ix, iy = faiss.IndexFlatIP(x.shape[1]), faiss.IndexFlatIP(y.shape[1])
        ix.add(x)
        iy.add(y)
        iy.search(x, 4)
        ix.search(y, 4)
        theirs = time.perf_counter() - started
        started = time.perf_counter()
        mine(x, y)
        whole = time.perf_counter() - started
        print(json.dumps({"rows": [len(x), len(y)], "parabeam_search_s": round(ours, 2),
                          "faiss_two_searches_s": round(theirs, 2), "ratio": round(ours / theirs, 2),
                          "parabeam_whole_miner_s": round(whole, 2)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--search-only", metavar="DATA", help="time the exact search alone on a data folder")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="20000,50000,100000,200000")
    ap.add_argument("--news", help="a benchmarks/comparable_news.py corpus folder (with its line vectors)")
    ap.add_argument("--news-encoder", default="muse-v3", help="the encoder whose line vectors --news uses")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--work", default="/tmp/parabeam-peers")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "DATA"), help=argparse.SUPPRESS)
    ap.add_argument("--make", nargs="+", metavar="N_OR_CORPUS PATH [ENCODER]", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.search_only:
        search_only(args.search_only, args.repeat)
        return
    if args.worker:
        worker(*args.worker)
        return
    if args.make:
        source, path, *encoder = args.make
        make_synthetic(int(source), path) if source.isdigit() else make_news(source, path, *encoder)
        return
    # data is made in a child process too: Linux carries a process's peak RSS across fork and exec, so a parent
    # that had held the vectors would lend its peak to every worker it starts
    os.makedirs(args.work, exist_ok=True)
    datasets = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        path = os.path.join(args.work, f"synthetic-{n}")
        if not os.path.exists(os.path.join(path, "gold.npy")):
            subprocess.run([sys.executable, __file__, "--make", str(n), path], check=True)
        datasets.append((f"synthetic {n:,}", path))
    if args.news:
        path = os.path.join(args.work, "news")
        subprocess.run([sys.executable, __file__, "--make", args.news, path, args.news_encoder], check=True)
        datasets.append((f"news {os.path.basename(args.news.rstrip('/'))}", path))
    rows = []
    for name, path in datasets:
        results = {}
        for method in args.methods.split(","):
            done = subprocess.run([sys.executable, __file__, "--worker", method, path], capture_output=True,
                                  text=True, check=True)
            results[method] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps({"data": name, **results[method]}), flush=True)
        rows.append((name, results))
    print("\n| data | miner | seconds | x LASER's time | peak RSS MiB | x LASER's RSS | F1 (P / R) |")
    print("|---|---|---|---|---|---|---|")
    for name, results in rows:
        base = results.get("laser")
        for method, r in results.items():
            ratio_t = f"{r['seconds'] / base['seconds']:.2f}" if base else "-"
            ratio_m = f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}" if base else "-"
            print(f"| {name} | {method} | {r['seconds']:.1f} | {ratio_t} | {r['peak_rss_mib']} | {ratio_m} "
                  f"| {r['f1']:.2f} ({r['precision']:.1f} / {r['recall']:.1f}) |")


if __name__ == "__main__":
    main()
