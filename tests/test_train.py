"""Encoder training: batching, losses, vocabulary extension, training runs that learn, resume, and one round of
the mine -> train -> mine loop on the bundled sample."""

from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest

from conftest import REPO, make_tiny_bert
from parabeam.encoders.train import Pair, batches_without_duplicates, config_from_dict, ranking_loss, train

SAMPLE = os.path.join(REPO, "sample")


def test_batches_never_repeat_a_sentence_and_keep_every_pair():
    # "hello" is the source of 30 pairs: they must spread over 30 batches
    pairs = [Pair("hello", f"hallo {i}", "en", "de") for i in range(30)]
    pairs += [Pair(f"s{i}", f"t{i}", "en", "de") for i in range(100)]
    batches = batches_without_duplicates(pairs, 8, random.Random(0))
    for batch in batches:
        texts = [t for i in batch for t in (pairs[i].src, pairs[i].tgt)]
        assert len(texts) == len(set(texts))
        assert len(batch) <= 8 + 1  # a leftover pair may join a full batch
    covered = [i for b in batches for i in b]
    assert len(covered) == len(set(covered))
    left_out = set(range(len(pairs))) - set(covered)
    # only "hello" pairs can be left out, once the 100 other pairs are used up: the 100 others all train
    assert {pairs[i].src for i in left_out} <= {"hello"} and len(left_out) <= 30 - 100 // 8


def test_ranking_loss_by_hand():
    import torch

    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    s, m = 10.0, 0.3
    # cosines [[0.6, 0], [0.8, 1]] -> logits s * (cos - m on the diagonal) = [[3, 0], [8, 7]]
    # rows (source -> target): row 0 picks column 0 among (3, 0); row 1 picks column 1 among (8, 7)
    fwd = (-math.log(math.exp(3) / (math.exp(3) + 1)) - math.log(math.exp(7) / (math.exp(8) + math.exp(7)))) / 2
    # columns (target -> source): column 0 picks row 0 among (3, 8); column 1 picks row 1 among (0, 7)
    bwd = (-math.log(math.exp(3) / (math.exp(3) + math.exp(8))) - math.log(math.exp(7) / (1 + math.exp(7)))) / 2
    assert float(ranking_loss(u, v, s, m)) == pytest.approx((fwd + bwd) / 2, rel=1e-5)


def test_vocabulary_extension_leaves_covered_languages_alone(default_encoder):
    import sentencepiece as spm
    import torch

    from parabeam.encoders.registry import load_encoder

    greek = ["Η γάτα κοιμάται στον καναπέ.", "Ο σκύλος τρέχει στο πάρκο κάθε πρωί.",
             "Τα παιδιά διαβάζουν βιβλία στη βιβλιοθήκη.", "Η πόλη είναι όμορφη το καλοκαίρι."] * 50
    covered = ["Der Hund schläft im Garten.", "Le chat dort sur le canapé.", "Собака спит в саду.", "猫在沙发上睡觉。",
               "El perro duerme en el jardín."]
    enc = load_encoder("default", device="cpu")
    old_sp = spm.SentencePieceProcessor(model_proto=enc.sp_proto())
    old_rows = enc.model.embedding.weight.shape[0]
    added = enc.extend_vocabulary(greek, vocab_size=120)
    assert added >= 5
    new_sp = enc.sp
    assert new_sp.get_piece_size() == old_sp.get_piece_size() + added
    for text in covered:
        assert new_sp.encode(text) == old_sp.encode(text)
    before, after = old_sp.encode(greek[0]), new_sp.encode(greek[0])
    assert len(after) < len(before)
    # a new row starts as the mean of the old sub-token rows of its piece
    first_new = old_sp.get_piece_size()
    piece = new_sp.id_to_piece(first_new)
    old_ids = old_sp.encode(piece.replace("\u2581", " ").strip() or piece)
    table = enc.model.embedding.weight.detach()
    torch.testing.assert_close(table[first_new], table[old_ids].mean(0))
    assert table.shape[0] >= max(old_rows, first_new + added)
    # covered-language embeddings are unchanged by the extension
    np.testing.assert_allclose(enc.encode(covered), default_encoder.encode(covered), atol=1e-5)


def _cipher_corpus(tmp_path, n=96):
    """Toy parallel data: each target word is a fixed substitute of a source word."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    code = {w: f"z{(i * 7) % 40}" for i, w in enumerate(words)}
    src = [" ".join(rng.sample(words, 4)) for _ in range(n)]
    tgt = [" ".join(code[w] for w in s.split()) for s in src]
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n")
    (tmp_path / "tgt.txt").write_text("\n".join(tgt) + "\n")
    return src + tgt


def _cipher_source(tmp_path) -> dict:
    """The config entry for the files ``_cipher_corpus`` writes."""
    return {"src": str(tmp_path / "src.txt"), "tgt": str(tmp_path / "tgt.txt"), "src_lang": "xx", "tgt_lang": "yy"}


def test_translation_ranking_learns_and_writes_a_loadable_encoder(tmp_path):
    pytest.importorskip("transformers")
    from parabeam.encoders.registry import load_encoder

    corpus = _cipher_corpus(tmp_path)
    model = make_tiny_bert(str(tmp_path / "tiny"), corpus, vocab_size=120, hidden=32)
    data = {"method": "translation-ranking", "student": f"hf:{model}#pooling=mean", "batch_size": 16, "lr": 0.003,
            "warmup_steps": 5, "epochs": 12, "log_every": 1000, "checkpoint_every": 1000, "device": "cpu",
            "train": [_cipher_source(tmp_path)],
            "eval": [_cipher_source(tmp_path)]}
    out = str(tmp_path / "trained")
    card = train(config_from_dict(data), out)
    assert card["eval_after"]["xx-yy"] > card["eval_before"]["xx-yy"] + 20, card
    # the directory is an encoder spec, with a model card
    enc = load_encoder(out, device="cpu")
    assert enc.encode(["w1 w2 w3 w4"]).shape == (1, 32)
    saved = json.load(open(os.path.join(out, "parabeam_encoder.json")))
    assert saved["backend"] == "hf" and saved["steps"] == card["steps"] > 0
    readme = open(os.path.join(out, "README.md")).read()
    assert "| xx-yy |" in readme and "translation" in readme.lower()


def test_training_resumes_from_its_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    corpus = _cipher_corpus(tmp_path, n=40)
    model = make_tiny_bert(str(tmp_path / "tiny"), corpus, vocab_size=120, hidden=32)
    data = {"method": "translation-ranking", "student": f"hf:{model}", "batch_size": 10, "epochs": 1,
            "log_every": 1000, "device": "cpu",
            "train": [_cipher_source(tmp_path)]}
    out = str(tmp_path / "run")
    first = train(config_from_dict(data), out)
    second = train(config_from_dict({**data, "epochs": 2}), out)  # continues: one more epoch, not two
    assert first["steps"] == 4 and second["steps"] == 8 and second["epochs_done"] == 2
    fresh = train(config_from_dict({**data, "epochs": 2}), str(tmp_path / "fresh"))
    # resumed == uninterrupted: same data order and optimiser state, so the same weights
    assert fresh["steps"] == 8
    from parabeam.encoders.registry import load_encoder

    x = load_encoder(out, device="cpu").encode(["w1 w2 w3 w4", "z7 z14 z21 z28"])
    y = load_encoder(str(tmp_path / "fresh"), device="cpu").encode(["w1 w2 w3 w4", "z7 z14 z21 z28"])
    np.testing.assert_allclose(x, y, atol=1e-5)


def test_distill_rejects_pairs_without_the_pivot(tmp_path):
    (tmp_path / "a").write_text("eins\nzwei\n")
    (tmp_path / "b").write_text("un\ndeux\n")
    data = {"method": "distill", "device": "cpu",
            "train": [{"src": str(tmp_path / "a"), "tgt": str(tmp_path / "b"), "src_lang": "de", "tgt_lang": "fr"}]}
    with pytest.raises(ValueError, match="pivot"):
        train(config_from_dict(data), str(tmp_path / "out"))


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rate'\] in training config; known: .*'lr'"):
        config_from_dict({"method": "distill", "learning_rate": 1, "train": [{"bitext": "x"}]})
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        config_from_dict({"method": "distill", "epoch": 1, "train": [{"bitext": "x"}]})
    with pytest.raises(ValueError, match="method must be"):
        config_from_dict({"method": "magic", "train": [{"bitext": "x"}]})
    with pytest.raises(ValueError, match="no training data"):
        config_from_dict({"method": "distill"})


@pytest.mark.parametrize("preset", ["distill.yaml", "e5-ranking.yaml"])
def test_training_configs_in_conf_are_valid(preset):
    import yaml

    with open(os.path.join(REPO, "parabeam", "conf", preset), encoding="utf-8") as f:
        config = config_from_dict(yaml.safe_load(f))
    assert config.method in ("distill", "translation-ranking") and config.max_minutes <= 50
    big = 10**9

    def spans(sources):
        return [(path, s.start, s.stop or big) for s in sources for path in (s.src, s.tgt)]

    # evaluation lines are never training lines (same file, overlapping line ranges)
    for path, start, stop in spans(config.train):
        for eval_path, eval_start, eval_stop in spans(config.eval):
            if path == eval_path:
                assert stop <= eval_start or eval_stop <= start, (path, start, stop, eval_start, eval_stop)
    assert not any("tatoeba" in s.src or "tatoeba" in s.tgt for s in config.train)


@pytest.mark.integration
def test_mine_train_mine_loop_on_the_sample(tmp_path):
    """One round of the loop: mine the sample, train the default encoder on the mined pairs (translation ranking,
    a few steps), mine again with the trained directory, and check the planted pairs still come out."""
    import csv

    import pyarrow.dataset as ds

    from parabeam.pipelines.cli import main

    first, second, model = str(tmp_path / "mine1"), str(tmp_path / "mine2"), str(tmp_path / "model")
    args = ["--input", f"{SAMPLE}/*.gz", "--langs", "de,en,fr", "--runner=FnApiRunner"]
    assert main(["mine", *args, "--output", first]) == 0
    assert main(["train", "--method", "translation-ranking", "--bitext", f"{first}/bitext", "--output", model,
                 "--epochs", "1", "--batch-size", "16", "--lr", "0.00005", "--device", "cpu"]) == 0
    card = json.load(open(os.path.join(model, "parabeam_encoder.json")))
    assert card["steps"] >= 3 and card["n_pairs"] >= 50
    assert main(["mine", *args, "--output", second, "--encoder", model]) == 0
    rows = ds.dataset(f"{second}/bitext", format="parquet").to_table().to_pylist()
    assert {r["encoder"] for r in rows} == {model}
    with open(os.path.join(SAMPLE, "gold.tsv"), encoding="utf-8") as f:
        gold = {frozenset([(r["src_lang"], r["src_text"]), (r["tgt_lang"], r["tgt_text"])])
                for r in csv.DictReader(f, delimiter="\t") if {r["src_lang"], r["tgt_lang"]} <= {"de", "en", "fr"}}
    mined = {frozenset([(r["src_lang"], r["src_text"]), (r["tgt_lang"], r["tgt_text"])]) for r in rows}
    assert len(mined & gold) / len(gold) >= 0.9 and len(mined & gold) / len(mined) >= 0.9


def test_embeddings_only_training_leaves_the_network_alone(tmp_path):
    pytest.importorskip("transformers")
    import torch

    corpus = _cipher_corpus(tmp_path, n=40)
    model = make_tiny_bert(str(tmp_path / "tiny"), corpus, vocab_size=120, hidden=32)
    data = {"method": "translation-ranking", "student": f"hf:{model}", "batch_size": 10, "epochs": 2,
            "train_parts": "embeddings", "lr": 0.01, "log_every": 1000, "device": "cpu",
            "train": [_cipher_source(tmp_path)]}
    out = str(tmp_path / "emb")
    card = train(config_from_dict(data), out)
    assert card["train_parts"] == "embeddings"
    from transformers import AutoModel

    before, after = AutoModel.from_pretrained(model), AutoModel.from_pretrained(out)  # the HF model at the root
    changed = {n for (n, a), (_, b) in zip(before.named_parameters(), after.named_parameters())
               if not torch.equal(a, b)}
    assert changed == {"embeddings.word_embeddings.weight"}


@pytest.mark.integration
def test_cli_training_shows_progress_without_verbose(tmp_path, caplog):
    pytest.importorskip("transformers")
    import logging

    from parabeam.pipelines.cli import main

    corpus = _cipher_corpus(tmp_path, n=48)
    model = make_tiny_bert(str(tmp_path / "tiny"), corpus, vocab_size=120, hidden=32)
    config = tmp_path / "train.yaml"
    config.write_text(f"method: translation-ranking\nstudent: 'hf:{model}'\nbatch_size: 16\nlog_every: 1\n"
                      f"train:\n  - {{src: {tmp_path / 'src.txt'}, tgt: {tmp_path / 'tgt.txt'}, src_lang: xx, "
                      f"tgt_lang: yy}}\n")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # what the CLI sets up without --verbose
    try:
        assert main(["train", "--config", str(config), "--output", str(tmp_path / "out"), "--device", "cpu"]) == 0
    finally:
        root.setLevel(level)
    lines = [r.getMessage() for r in caplog.records if r.name == "parabeam.progress"]
    assert len(lines) == 3 and lines[0].startswith("step 1 epoch 1/1: loss ")  # 48 pairs in batches of 16
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "parabeam.progress")


def test_merge_weights_by_hand():
    import torch

    model = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    from parabeam.encoders.train import merge_weights

    initial = {"weight": torch.zeros(3, 2)}
    assert merge_weights(model, initial, 0.5, {"weight": torch.tensor([True, False, True])}) == 4
    assert model.weight.tolist() == [[0.5, 0.5], [2.0, 2.0], [1.5, 1.5]]
    assert merge_weights(model, initial, 0.5) == 6
    assert model.weight.tolist() == [[0.25, 0.25], [1.0, 1.0], [0.75, 0.75]]


def test_merge_moves_only_the_rows_the_named_languages_use(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModel

    from parabeam.encoders.registry import load_encoder

    corpus = _cipher_corpus(tmp_path, n=40)
    model = make_tiny_bert(str(tmp_path / "tiny"), corpus, vocab_size=120, hidden=32)
    data = {"method": "translation-ranking", "student": f"hf:{model}", "batch_size": 10, "epochs": 2,
            "train_parts": "embeddings", "lr": 0.01, "log_every": 1000, "device": "cpu", "merge_alpha": 0.25,
            "merge_langs": "xx",
            "train": [_cipher_source(tmp_path)],
            "eval": [_cipher_source(tmp_path)]}
    out = str(tmp_path / "merged")
    card = train(config_from_dict(data), out)

    def table(path):
        return AutoModel.from_pretrained(path).get_input_embeddings().weight.detach()

    start, trained, final = table(model), table(os.path.join(out, "checkpoint")), table(out)
    xx_rows = torch.zeros(len(start), dtype=torch.bool)
    for ids in load_encoder(f"hf:{model}", device="cpu")._tokenize((tmp_path / "src.txt").read_text().split("\n")[:-1]):
        xx_rows[ids] = True
    changed = (trained != start).any(dim=1)
    assert (changed & xx_rows).sum() > 0 and (changed & ~xx_rows).sum() > 0
    assert torch.allclose(final[xx_rows], start[xx_rows] + 0.25 * (trained[xx_rows] - start[xx_rows]), atol=1e-6)
    assert torch.equal(final[~xx_rows], trained[~xx_rows])
    assert card["merged_rows"] == int(xx_rows.sum()) and card["merge_alpha"] == 0.25
    assert set(card["eval_unmerged"]) == set(card["eval_after"]) == {"xx-yy"}
    readme = open(os.path.join(out, "README.md")).read()
    assert "trained, unmerged" in readme and "WiSE-FT" in readme
    with pytest.raises(ValueError, match="no training text in these languages"):
        train(config_from_dict({**data, "merge_langs": "qq"}), str(tmp_path / "none"))
    with pytest.raises(ValueError, match="merge_langs needs merge_alpha"):
        config_from_dict({**data, "merge_alpha": None})
    with pytest.raises(ValueError, match=r"merge_alpha must be in \(0, 1\]"):
        config_from_dict({**data, "merge_alpha": 1.5})


def test_distill_anchor_langs_trains_the_pivot_side_of_named_languages_only(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from parabeam.encoders.hf import HFEncoder

    corpus = _cipher_corpus(tmp_path, n=40)
    model = make_tiny_bert(str(tmp_path / "tiny"), corpus, vocab_size=120, hidden=32)
    (tmp_path / "src2.txt").write_text("w1 w2 w3 w4\nw5 w6 w7 w8\n")
    (tmp_path / "tgt2.txt").write_text("q1 q2\nq3 q4\n")
    seen: list[str] = []
    original = HFEncoder.embed_for_training

    def spy(self, texts):
        seen.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(HFEncoder, "embed_for_training", spy)
    source = {**_cipher_source(tmp_path), "src_lang": "en", "tgt_lang": "yy"}
    data = {"method": "distill", "student": f"hf:{model}", "teacher": f"hf:{model}", "batch_size": 8, "epochs": 1,
            "log_every": 1000, "device": "cpu", "anchor_langs": "zz",
            "train": [source, {"src": str(tmp_path / "src2.txt"), "tgt": str(tmp_path / "tgt2.txt"),
                               "src_lang": "en", "tgt_lang": "zz"}]}
    card = train(config_from_dict(data), str(tmp_path / "anchored"))
    assert card["steps"] >= 5
    english = set((tmp_path / "src.txt").read_text().split("\n")[:-1])
    # the pivot (English) side of the yy pairs never goes through the student; that of the zz pairs does
    assert not english & set(seen)
    assert {"w1 w2 w3 w4", "w5 w6 w7 w8"} <= set(seen)
    assert set((tmp_path / "tgt.txt").read_text().split("\n")[:-1]) <= set(seen)
    with pytest.raises(ValueError, match="anchor_langs"):
        train(config_from_dict({**data, "anchor_langs": "qq"}), str(tmp_path / "none"))


def test_distill_loss_by_hand():
    import torch

    from parabeam.encoders.train import distill_loss

    vectors = {"s1": [1.0, 0.0], "t1": [0.0, 1.0], "s2": [0.5, 0.5], "t2": [1.0, 1.0]}

    def embed(texts):
        return torch.tensor([vectors[t] for t in texts])

    items = [Pair("s1", "t1", "en", "aa"), Pair("s2", "t2", "en", "bb")]
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # every pair anchored: the two mean squared errors, (0 + 0.5) / 4 + (2 + 2) / 4
    both = distill_loss(embed, items, target, None)
    assert torch.isclose(both, torch.nn.functional.mse_loss(embed(["s1", "s2"]), target)
                         + torch.nn.functional.mse_loss(embed(["t1", "t2"]), target))
    assert torch.isclose(both, torch.tensor(1.125))
    # only bb anchored: its source term (0.5) stays, aa's (0) goes; translation terms 2 + 2: (0.5 + 4) / 4
    assert torch.isclose(distill_loss(embed, items, target, {"bb"}), torch.tensor(1.125))
    # only aa anchored: 0 + 4, over 4
    assert torch.isclose(distill_loss(embed, items, target, {"aa"}), torch.tensor(1.0))
