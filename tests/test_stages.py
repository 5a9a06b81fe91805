"""Pipeline plumbing without a pipeline: one model per worker process, the config tree and its flags."""

from __future__ import annotations

import dataclasses
import pickle
import typing

import numpy as np
import pytest

from parabeam.options import flags


def test_one_encoder_per_worker_process(monkeypatch):
    # Beam unpickles a DoFn once per instance (per thread / bundle); every instance must use the same encoder
    from parabeam.pipelines.config import EmbedConfig
    from parabeam.pipelines.embed_shards import _Embed

    loads = []

    class Fake:
        def encode(self, texts, progress=None):
            return np.zeros((len(texts), 4), np.float32)

    def load(config):
        loads.append(config)
        return Fake()

    monkeypatch.setattr("parabeam.pipelines.embed_shards.load_configured_encoder", load)
    wire = pickle.dumps(_Embed(EmbedConfig(), "/tmp/unused"))
    first, second = pickle.loads(wire), pickle.loads(wire)
    first.setup()
    second.setup()
    assert first.encoder is second.encoder and len(loads) == 1
    # another pipeline's DoFn (another handle) loads its own
    other = pickle.loads(pickle.dumps(_Embed(EmbedConfig(), "/tmp/unused")))
    other.setup()
    assert other.encoder is not first.encoder and len(loads) == 2


def test_one_index_per_worker_process(monkeypatch):
    from parabeam.mining.index import IndexConfig
    from parabeam.pipelines.records import IndexRef
    from parabeam.pipelines.search_neighbours import _Search

    loads = []

    class Index:  # a stand-in for a FAISS index
        pass

    def load(path, gpu, config):
        loads.append(path)
        return Index()

    monkeypatch.setattr("parabeam.pipelines.search_neighbours._load_index", load)
    wire = pickle.dumps(_Search(4, IndexConfig()))
    a, b = pickle.loads(wire), pickle.loads(wire)
    a.setup()
    b.setup()
    de, en = IndexRef("de", "mem://de.faiss", "Flat", ()), IndexRef("en", "mem://en.faiss", "Flat", ())
    assert a._index(de) is b._index(de) and loads == ["mem://de.faiss"]
    assert a._index(en) is not None and loads == ["mem://de.faiss", "mem://en.faiss"]


def _config_trees():
    from parabeam.encoders.train_config import TrainConfig
    from parabeam.pipelines.config import RunConfig

    return [RunConfig, TrainConfig]


@pytest.mark.parametrize("tree", _config_trees(), ids=lambda c: c.__name__)
def test_every_setting_documents_itself_and_has_one_flag(tree):
    def walk(cls, prefix=()):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[field.name]):
                yield from walk(hints[field.name], prefix + (field.name,))
            else:
                yield prefix + (field.name,), field

    for path, field in walk(tree):
        assert field.metadata.get("help"), f"{'.'.join(path)} has no help text"
    names = [f.name for f in flags(tree)]  # raises on two fields with one flag
    assert len(names) == len(set(names))


def test_flags_and_yaml_reach_the_same_config(tmp_path):
    import argparse

    from parabeam.options import add_flags, flag_overrides
    from parabeam.pipelines.config import RunConfig, load_config

    parser = argparse.ArgumentParser()
    found = add_flags(parser, RunConfig)
    args = parser.parse_args(["--threshold", "auto", "--k", "8", "--segment", "line", "--index", "ivf",
                              "--encoder", "hf:/m", "--shard-size", "7"])
    from_flags = load_config(None, flag_overrides(args, found))
    preset = tmp_path / "p.yaml"
    preset.write_text("mining: {threshold: auto, k: 8}\ntext: {segment: line}\nindex: {kind: ivf}\n"
                      "embed: {encoder: 'hf:/m'}\nshard_size: 7\n")
    assert from_flags == load_config(str(preset)) != RunConfig()
    assert from_flags.mining.auto_threshold and from_flags.mining.k == 8
    # flags win over the preset; an unknown key names the closest known one
    args = parser.parse_args(["--k", "2"])
    assert load_config(str(preset), flag_overrides(args, found)).mining.k == 2
    preset.write_text("mining: {treshold: 1.3}\n")
    with pytest.raises(ValueError, match="did you mean 'threshold'"):
        load_config(str(preset))


def test_every_stage_keeps_the_stage_contract():
    # the pipeline is the list of stages: each reads only what a stage above it produced, names its outputs once,
    # and a resource-hint setting names the timing of a stage
    from parabeam.pipelines.config import ResourceConfig
    from parabeam.pipelines.counting import STATS
    from parabeam.pipelines.mine import STAGES, timing_order
    from parabeam.pipelines.stage import Stage

    produced: set[str] = set()
    for stage in STAGES:
        assert issubclass(stage, Stage) and stage.outputs, stage
        missing = set(stage.inputs) - produced
        assert not missing, f"{stage.__name__} reads {missing} before any stage produced it"
        own = set(stage.outputs) - {STATS}
        assert not own & produced, f"{stage.__name__} produces {own & produced} a second time"
        produced |= own
    assert timing_order() == ["read", "split", "identify", "embed", "index", "search", "select", "filter", "write"]
    hinted = {f.name for f in dataclasses.fields(ResourceConfig)}
    assert hinted == {"embed", "index", "search"} and hinted <= set(timing_order())


def test_a_stage_that_returns_other_outputs_than_it_declares_is_refused():
    from parabeam.pipelines.stage import Stage, check_outputs

    class Odd(Stage):
        outputs = ("a", "stats")

    with pytest.raises(TypeError, match="Odd returned \\['a'\\], declared \\['a', 'stats'\\]"):
        check_outputs(Odd(), {"a": object()})
