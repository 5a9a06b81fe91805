"""The same pipeline on real Beam runner machinery: the portable path Flink and Spark use (Beam's Python job
service + an external worker pool, each in its own process), Beam's DaskRunner on a dask.distributed cluster of
worker processes, and inputs/outputs on an S3 server on loopback. Each must write what the DirectRunner writes."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import time

import pyarrow.dataset as ds
import pytest

from conftest import REPO
from parabeam.pipelines.cli import main

SAMPLE = os.path.join(REPO, "sample")
pytestmark = pytest.mark.integration
LANGS = "de,en,zh"
IGNORED_COLUMNS = {"run_id"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def _rows(output: str, filesystem=None) -> list[tuple]:
    dataset = ds.dataset(output.removeprefix("s3://") + "/bitext" if filesystem else f"{output}/bitext",
                         format="parquet", partitioning="hive", filesystem=filesystem)
    table = dataset.to_table()
    names = [n for n in table.column_names if n not in IGNORED_COLUMNS]
    return sorted(tuple(row[n] for n in names) for row in table.select(names).to_pylist())


def _report(text: str) -> dict:
    report = json.loads(text)
    report["settings"].pop("run_id")
    report["settings"]["config"].pop("cpu_threads")  # resolved per runner (pipelines.config.cpu_threads_for_runner)
    report.pop("seconds")  # busy time per stage and wall time: measured, not computed
    report.pop("wall_seconds")
    # the shards live under each output; their vectors' names (digests of what determines them) must agree
    report["shards"] = {lang: [(s["shard_id"], s["size"], s["embeddings"].rsplit("/", 1)[-1]) for s in shards]
                        for lang, shards in report["shards"].items()}
    return report


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("direct"))
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", LANGS, "--output", out, "--runner=DirectRunner",
                 "--direct_running_mode=multi_processing", "--direct_num_workers=2"]) == 0
    rows = _rows(out)
    assert len(rows) >= 30  # the sample plants 20 pairs per language pair
    return rows, _report(open(f"{out}/report.json", encoding="utf-8").read())


@pytest.fixture(scope="module")
def portable_services():
    """Beam's Python job service and an external SDK worker pool, as a Flink/Spark job server would use."""
    job_port, pool_port = _free_port(), _free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                          "--port", str(job_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                          "--service_port", str(pool_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        _wait_for_port(job_port, procs[0])
        _wait_for_port(pool_port, procs[1])
        yield ["--runner=PortableRunner", f"--job_endpoint=127.0.0.1:{job_port}", "--environment_type=EXTERNAL",
               f"--environment_config=127.0.0.1:{pool_port}"]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow  # a minute or more: the other runners' services start in their own processes
def test_portable_runner_with_external_workers_matches_direct(direct_run, portable_services, tmp_path):
    out = str(tmp_path / "portable")
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", LANGS, "--output", out, *portable_services]) == 0
    rows, report = direct_run
    assert _rows(out) == rows
    assert _report(open(f"{out}/report.json", encoding="utf-8").read()) == report


@pytest.mark.slow  # a minute or more: the other runners' services start in their own processes
def test_dask_runner_on_a_process_cluster_matches_direct(direct_run, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        out = str(tmp_path / "dask")
        assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", LANGS, "--output", out,
                     "--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]) == 0
    rows, report = direct_run
    assert _rows(out) == rows
    # counts arrive once each (Beam's own DaskRunner drops finish_bundle outputs and mixes tagged outputs)
    assert _report(open(f"{out}/report.json", encoding="utf-8").read()) == report


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on loopback, with the sample uploaded to s3://corpus/cc/."""
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    keys = {"aws_access_key_id": "parabeam-test", "aws_secret_access_key": "parabeam-test"}
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **keys)
    client.create_bucket(Bucket="corpus")
    client.create_bucket(Bucket="mined")
    for path in glob.glob(f"{SAMPLE}/*.gz"):
        client.upload_file(path, "corpus", f"cc/{os.path.basename(path)}")
    try:
        yield url, client, [f"--s3_endpoint_url={url}", "--s3_access_key_id=parabeam-test",
                            "--s3_secret_access_key=parabeam-test", "--s3_region_name=us-east-1"]
    finally:
        server.stop()


@pytest.mark.slow  # a minute or more: the other runners' services start in their own processes
def test_s3_input_and_output_on_portable_workers(direct_run, s3_server, portable_services):
    # workers in other processes read s3:// and write s3://: nothing relies on the launcher's disk
    pafs = pytest.importorskip("pyarrow.fs")
    url, client, s3_args = s3_server
    assert main(["mine", "--input", "s3://corpus/cc/*.gz", "--langs", LANGS, "--output", "s3://mined/run",
                 *portable_services, *s3_args]) == 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="mined", Prefix="run/")["Contents"]}
    assert "run/report.json" in keys and "run/bitext/pair=de-en/part-00000.parquet" in keys
    s3 = pafs.S3FileSystem(endpoint_override=url, access_key="parabeam-test", secret_key="parabeam-test",
                           region="us-east-1", scheme="http")
    rows, report = direct_run
    # the same rows but for the input file each sentence came from (src_source, tgt_source: s3:// paths)
    got_rows = _rows("s3://mined/run", filesystem=s3)
    assert {r[10][:len("s3://corpus/cc/")] for r in got_rows} == {"s3://corpus/cc/"}
    assert [r[:10] + r[12:] for r in got_rows] == [r[:10] + r[12:] for r in rows]
    got = _report(client.get_object(Bucket="mined", Key="run/report.json")["Body"].read().decode())
    assert got["settings"]["inputs"] == ["s3://corpus/cc/sample.jsonl.gz", "s3://corpus/cc/sample.warc.wet.gz"]
    got["settings"]["inputs"] = report["settings"]["inputs"]
    assert got == report


# distill.yaml and e5-ranking.yaml are training configs
TRAIN_PRESETS = ("distill.yaml", "e5-ranking.yaml")
MINE_PRESETS = sorted(f for f in os.listdir(os.path.join(REPO, "parabeam", "conf")) if f not in TRAIN_PRESETS)


@pytest.mark.parametrize("preset", MINE_PRESETS)
def test_every_preset_loads_and_parses_as_pipeline_options(preset):
    from apache_beam.options.pipeline_options import PipelineOptions

    from parabeam.pipelines.config import beam_args_from_config, load_config

    path = os.path.join(REPO, "parabeam", "conf", preset)
    config = load_config(path)
    options = PipelineOptions(beam_args_from_config(path)).get_all_options(retain_unknown_options=True)
    assert options["runner"]
    if preset == "dataflow.yaml":
        assert "use_runner_v2" in options["experiments"]
        assert config.resources.embed["accelerator"].startswith("type:nvidia")


def test_cluster_presets_refuse_to_launch_without_the_worker_image(tmp_path, capsys):
    for preset, message in (("dataflow", "--sdk_container_image"), ("flink", "--environment_config")):
        assert main(["mine", "--config", preset, "--input", f"{SAMPLE}/*.gz", "--langs", "de,en",
                     "--output", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err


def test_resource_hints_reach_the_pipeline_graph(tmp_path):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from parabeam.mining.languages import parse_languages
    from parabeam.pipelines.config import load_config
    from parabeam.pipelines.mine import build_pipeline

    config = load_config(os.path.join(REPO, "parabeam", "conf", "dataflow.yaml"))
    p = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    langs = parse_languages("de,en")
    build_pipeline(p, paths=[f"{SAMPLE}/sample.jsonl.gz"], languages=langs, pairs=[(langs[0], langs[1])],
                   output=str(tmp_path), work=str(tmp_path / "_work"), config=config, run_id="graph-only")
    proto = p.to_runner_api()
    hints = {}
    for t in proto.components.transforms.values():
        if t.environment_id:
            hints[t.unique_name] = dict(proto.components.environments[t.environment_id].resource_hints)
    accelerator = b"type:nvidia-l4;count:1;install-nvidia-driver"
    assert hints["EmbedShards/Encode/ParDo(_Embed)"]["beam:resources:accelerator:v1"] == accelerator
    assert hints["SearchNeighbours/Search/ParDo(_Search)"]["beam:resources:accelerator:v1"] == accelerator
    assert hints["BuildIndexes/Build/ParDo(_BuildIndex)"]["beam:resources:min_ram_bytes:v1"] == b"64000000000"
    text_stage = next(v for k, v in hints.items() if k.startswith("SplitSentences/"))
    assert "beam:resources:accelerator:v1" not in text_stage


def test_worker_log_is_kept_and_named_only_for_a_failure_of_the_running_pipeline(tmp_path, monkeypatch):
    # an error before the pipeline starts (a bad spec, an uncovered language) has no worker output to point at;
    # one raised by the running pipeline keeps the log and names it
    import tempfile

    from parabeam.pipelines import beam_options

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ValueError) as before:
        with beam_options.worker_logs_to_file(True) as path:
            raise ValueError("no bundled encoder covers mt")
    assert not os.path.exists(path) and not getattr(before.value, "__notes__", None)

    # through the CLI: an uncovered language under the multi-processing runner is one line, with no log named
    code = main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "mt,en", "--output", str(tmp_path / "out"),
                 "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert code != 0 and not list(tmp_path.glob("parabeam-workers-*"))

    failure = RuntimeError("a worker failed")
    failure.parabeam_pipeline_ran = True
    with pytest.raises(RuntimeError):
        with beam_options.worker_logs_to_file(True) as path:
            raise failure
    assert os.path.exists(path)
