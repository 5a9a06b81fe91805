"""Beam's DaskRunner with the fixes parabeam's pipeline needs, for ``dask.distributed`` clusters.

Use ``--runner=DaskRunner`` (the CLI maps it here) or ``--runner=parabeam.pipelines.dask_runner.DaskRunner``, with
``--dask_client_address=tcp://scheduler:8786``.

Beam's own DaskRunner (``apache_beam.runners.dask``, 2.77) translates each transform to a Dask bag, but:
- a ParDo with tagged outputs (``with_outputs``) hands *every* output to every consumer, so a consumer of the
  main output also receives the ``stats`` records (it fails with "too many values to unpack");
- outputs a DoFn emits in ``finish_bundle`` are dropped (its bundle's results are collected before
  ``finish_bundle`` runs), which loses parabeam's per-bundle counts;
- only the bag of the last transform visited is computed, so a branch that ends elsewhere (a second sink)
  never runs;
- a side input is computed again inside every task that reads it, re-running its whole upstream.

This runner keeps Beam's translations of Create, GroupByKey and Flatten and replaces the rest: a ParDo's bag
holds ``(tag, value)`` items, split into one bag per output PCollection; every PCollection is persisted on the
cluster as soon as it is translated (so each is computed once, whatever consumes it) and released once its last
consumer is translated; a side input is gathered once and shipped with the tasks that read it; every sink is
awaited. Each PCollection lives in the cluster's distributed memory between its producer and its consumers,
as it does on Beam's portable runners between fused stages.
"""

from __future__ import annotations

import collections
import functools
import logging
import typing as t

from apache_beam import pvalue
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, Receiver, _OutputHandler
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask import transform_evaluator as te
from apache_beam.transforms import core
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.utils.windowed_value import WindowedValue

log = logging.getLogger("parabeam")


class _TagReceiver(Receiver):
    def __init__(self, tag: str | None, sink: list):
        self.tag = tag
        self.sink = sink

    def receive(self, windowed_value: WindowedValue) -> None:
        self.sink.append((self.tag, windowed_value.value))


class _Receivers(dict):
    """One receiver per output tag, created on first use, all appending ``(tag, value)`` to one list."""

    def __init__(self):
        super().__init__()
        self.values: list = []

    def __missing__(self, tag):
        self[tag] = receiver = _TagReceiver(tag, self.values)
        return receiver


def _run_bundle(items, fn, label, window_fn, side_inputs, args, kwargs) -> list:
    """One Dask partition as one Beam bundle: setup, start_bundle, process, finish_bundle, teardown; returns
    ``(tag, value)`` for everything the DoFn emitted, ``finish_bundle``'s outputs included."""
    receivers = _Receivers()
    handler = _OutputHandler(
        window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
        per_element_output_counter=None, output_batch_converter=None, process_yields_batches=False,
        process_batch_yields_elements=False)
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn), handler, context=DoFnContext(label, state=None), side_inputs=side_inputs,
        input_args=list(args), input_kwargs=kwargs, user_state_context=None,
        bundle_finalizer_param=core.DoFn.BundleFinalizerParam())
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(te.get_windowed_value(item, window_fn))
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return receivers.values


def _is_tag(item, *, tag) -> bool:
    return item[0] == tag


def _value(item):
    return item[1]


class _ListIterator:
    """A side input's gathered values, as ``SideInputMap`` reads them (windowed values)."""

    def __init__(self, values: list, window_fn):
        self.values = values
        self.window_fn = window_fn

    def __iter__(self):
        for value in self.values:
            yield te.get_windowed_value(value, self.window_fn)


class _Translator(PipelineVisitor):
    def __init__(self, client, bag_kwargs: dict, consumers: collections.Counter):
        self.client = client
        self.bag_kwargs = bag_kwargs
        self.consumers = consumers  # PCollection -> transforms still to translate that read it
        self.bags: dict[pvalue.PCollection, t.Any] = {}
        self.sinks: list = []  # bags nobody reads: the pipeline's ends, awaited by the result

    def _input_bags(self, node: AppliedPTransform) -> list:
        return [self.bags[pc] for pc in node.inputs if isinstance(pc, pvalue.PCollection)]

    def _release(self, node: AppliedPTransform) -> None:
        for pc in [*node.inputs, *(si.pvalue for si in node.side_inputs)]:
            if isinstance(pc, pvalue.PCollection):
                self.consumers[pc] -= 1
                if self.consumers[pc] <= 0:
                    self.bags.pop(pc, None)

    def _side_inputs(self, node: AppliedPTransform) -> list:
        out = []
        for si in node.side_inputs:
            values = self.client.compute(self.bags[si.pvalue]).result()  # once, on the client
            out.append(SideInputMap(type(si), si._view_options(), _ListIterator(values, si._window_mapping_fn)))
        return out

    def visit_transform(self, node: AppliedPTransform) -> None:
        transform = node.transform
        if transform.__class__ is core.ParDo:  # as Beam: subclasses (GroupAlsoByWindow) are no-ops here
            main = next(iter(node.main_inputs.values()))
            window_fn = main.windowing.windowfn if hasattr(main, "windowing") else None
            args, kwargs = transform.raw_side_inputs
            bag = self._input_bags(node)[0].map_partitions(
                _run_bundle, transform.fn, transform.label, window_fn, self._side_inputs(node), list(args), kwargs)
            bag = self.client.persist(bag)  # the DoFn runs once; each output is a cheap filter of its results
            outputs = {tag: bag.filter(functools.partial(_is_tag, tag=tag)).map(_value) for tag in node.outputs}
        else:
            op = te.TRANSLATIONS.get(transform.__class__, te.NoOp)(node, bag_kwargs=self.bag_kwargs)
            inputs = self._input_bags(node)
            if op.__class__ is te.Create:
                bag = op.apply(None)
            elif op.__class__ is te.Flatten:
                bag = op.apply(inputs)
            else:
                bag = op.apply(inputs[0] if inputs else None)
            outputs = {tag: bag for tag in node.outputs}
        for tag, pc in node.outputs.items():
            if outputs[tag] is None:
                continue
            persisted = self.client.persist(outputs[tag])
            if self.consumers[pc] > 0:
                self.bags[pc] = persisted
            else:
                self.sinks.append(persisted)
        self._release(node)


class _CountConsumers(PipelineVisitor):
    def __init__(self):
        self.consumers: collections.Counter = collections.Counter()

    def visit_transform(self, node: AppliedPTransform) -> None:
        for pc in [*node.inputs, *(si.pvalue for si in node.side_inputs)]:
            if isinstance(pc, pvalue.PCollection):
                self.consumers[pc] += 1


class _Result(beam_dask.DaskRunnerResult):
    """Closes the runner's Dask client once the pipeline has finished (or failed)."""

    def wait_until_finish(self, duration=None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            if self._state != beam_dask.PipelineState.RUNNING:
                self.client.close()


class DaskRunner(beam_dask.DaskRunner):
    """Executes a pipeline on a ``dask.distributed`` cluster (see the module docstring)."""

    def run_pipeline(self, pipeline, options):
        import dask.distributed as ddist

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        pipeline.replace_all(beam_dask.dask_overrides())
        counter = _CountConsumers()
        pipeline.visit(counter)
        translator = _Translator(client, bag_kwargs, counter.consumers)
        pipeline.visit(translator)
        log.info("dask: %d sink(s) on %s", len(translator.sinks), client.scheduler.address)
        return _Result(client, client.compute(translator.sinks))
