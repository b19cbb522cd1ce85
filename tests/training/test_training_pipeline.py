"""End to end: a tiny training run -> checkpoint -> loader, evaluation report, export, and
the real synthesis service serving the trained file over gRPC."""

from __future__ import annotations

import json

import pytest
import torch

from imagetrust.v1 import common_pb2, synthesis_pb2, synthesis_pb2_grpc
from services.synthesis.checkpoint import load_checkpoint
from training import bsds as bsds_mod
from training import dataset, evaluate, export, train

RPC_TIMEOUT_S = 60.0  # seconds; generous on a 2-core shared machine


@pytest.fixture(scope="module")
def trained(tmp_path_factory, bsds):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    args = train.get_args_parser().parse_args(
        [
            "--recipe",
            "ours",
            "--arch",
            "tiny",
            "--input-size",
            "64",
            "--tile-size",
            "64",
            "--train-samples",
            "32",
            "--val-samples",
            "16",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--max-photos",
            "10",
            "--calibration-images",
            "8",
            "--workers",
            "0",
            "--threads",
            "1",
            "--bsds-root",
            str(bsds),
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    path = train.main(args)
    return out, path


@pytest.mark.slow
def test_tiny_run_writes_a_checkpoint_the_service_loader_reads(trained):
    out, path = trained
    ckpt = load_checkpoint(path)
    assert ckpt.arch == "tiny" and not ckpt.placeholder
    assert ckpt.preprocessing.input_size == 64 and ckpt.tiling.tile_size == 64
    assert ckpt.calibration.method == "platt" and ckpt.calibration.a > 0
    assert ckpt.training["recipe"] == "ours" and ckpt.training["steps"] == 8  # 2 epochs x 32 / 8
    assert [row["epoch"] for row in ckpt.training["history"]] == [0, 1]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all({"train_loss", "val_loss", "val_view_auc"} <= set(r) for r in rows)
    model = ckpt.build()
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2,)


@pytest.mark.slow
def test_evaluation_report_and_export_of_the_tiny_model(trained, tmp_path):
    _, path = trained
    args = evaluate.get_args_parser().parse_args(
        [
            "--model",
            f"tiny={path}",
            "--pairs",
            "2",
            "--bsds-pairs",
            "3",
            "--max-originals",
            "2",
            "--out",
            str(tmp_path / "report"),
            "--threads",
            "1",
        ]
    )
    report = evaluate.main(args)
    text = report.read_text()
    for set_name in ("camera/asis", "camera/jpeg75", "camera/1280px", "bsds/asis", "bsds/jpeg75"):
        assert f"| tiny | {set_name} |" in text
    assert "| tiny | 2 |" in text  # the originals' false-alarm row
    assert (tmp_path / "report" / "roc.png").stat().st_size > 1000
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 1000
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert 0.0 <= m["tiny"]["sets"]["camera/asis"]["summary"]["roc_auc"] <= 1.0
    assert set(m["tiny"]["sets"]["originals"]["false_alarm"]) == {"0.5", "0.625", "0.7", "0.8", "0.9"}
    shipped = export.export(path, tmp_path / "weights" / "default.pt")
    assert load_checkpoint(shipped).model_version == load_checkpoint(path).model_version


@pytest.mark.slow
def test_the_service_serves_the_trained_checkpoint(trained, server_factory, bsds):
    _, path = trained
    server = server_factory("synthesis", model_path=str(path), torch_threads=1)
    stub = synthesis_pb2_grpc.SynthesisDetectorStub(server.channel())
    sample = dataset.CompositeGenerator(bsds_mod.list_photos("val", bsds)[:4], seed=0, generator="heldout")[0]
    r = stub.Detect(synthesis_pb2.DetectRequest(image=common_pb2.Image(data=sample.data)), timeout=RPC_TIMEOUT_S)
    assert r.model_version == load_checkpoint(path).model_version and not r.placeholder
    assert 0.0 <= r.score <= 1.0 and (r.height, r.width) == sample.image.shape[:2]


def test_recipes_resolve_to_the_papers_settings():
    paper = train.resolve(train.get_args_parser().parse_args(["--recipe", "paper"]))
    assert (paper.arch, paper.batch_size, paper.epochs, paper.patience, paper.optimizer) == (
        "resnet50",
        32,
        100,
        3,
        "adam",
    )
    assert paper.val_fraction == 0.3 and paper.target == "binary" and paper.tile_size == 0
    ours = train.resolve(train.get_args_parser().parse_args(["--recipe", "ours", "--epochs", "3"]))
    assert ours.arch == "forensic" and ours.epochs == 3 and ours.target == "soft" and ours.tile_size > 0


def test_methods_restrict_training_composites_and_never_admit_held_out_ones():
    parse = train.get_args_parser().parse_args
    args = train.resolve(parse(["--generator", "diverse", "--methods", "paste,blob_splice"]))
    assert args.methods == ("paste", "blob_splice")
    assert train.resolve(parse([])).methods is None  # the generator's own methods
    for bad in ("paste,seamless", "rect", ","):
        with pytest.raises(SystemExit, match="--methods"):
            train.resolve(parse(["--methods", bad]))
