"""NeuralNetwork models through the whole check: rules keyed on MIL equivalents and NN layer types."""

from __future__ import annotations

import nn_models

import anedoctor
from anedoctor.util import quiet_coremltools

ct = quiet_coremltools()


def check_spec(spec, path, **kw):
    ct.utils.save_spec(spec, str(path))
    return anedoctor.check(path, **kw)


def reasons_by_layer(report):
    return {p.op.name: {f.rule.id for f in p.findings} for p in report.placements}


def test_recurrent_layers_are_cpu_only(tmp_path):
    report = check_spec(nn_models.recurrent()[0], tmp_path / "rnn.mlmodel")
    by_name = reasons_by_layer(report)
    for layer in ("lstm", "bilstm", "gru", "rnn"):
        assert "OP-1" in by_name[layer]
    assert report.model.format == "neuralnetwork" and report.model.deployment_target.startswith("ios")


def test_custom_layer_and_nd_layers(tmp_path):
    by_name = reasons_by_layer(check_spec(nn_models.custom_layer(), tmp_path / "custom.mlmodel"))
    assert "OP-12" in by_name["fancy"] and "OP-12" not in by_name["relu"]
    by_name = reasons_by_layer(check_spec(nn_models.nd_ops()[0], tmp_path / "nd.mlmodel"))
    assert "OP-15" in by_name["badd"] and "OP-15" in by_name["cat"]  # broadcastable / ND layers (C)
    assert "OP-17" in by_name["mm"] and "OP-17" not in by_name["mm_w"]  # two runtime operands only
    assert "OP-16" in by_name["gather"] and "OP-4" in by_name["onehot"] and "OP-9" in by_name["sd"]


def test_untyped_neuralnetwork_is_not_flagged_for_fp32(tmp_path):
    report = check_spec(nn_models.legacy_classifier()[0], tmp_path / "cls.mlmodel", chip="m1")
    conv = next(p for p in report.placements if p.op.name == "conv")
    assert conv.op.type == "conv" and conv.op.layer_type == "convolution" and conv.supported["ane"]
    assert not any(f.rule.id in ("DT-1", "DT-12") for p in report.placements for f in p.findings)


def test_neuralnetwork_pipeline_analyses_every_model(tmp_path):
    a = ct.models.MLModel(nn_models.custom_layer(), skip_model_load=True)
    pipe = ct.models.pipeline.Pipeline(
        input_features=[("x", ct.models.datatypes.Array(1, 4, 8, 8))], output_features=["y"]
    )
    pipe.add_model(a)
    pipe.add_model(ct.models.MLModel(nn_models.custom_layer(), skip_model_load=True))
    report = check_spec(pipe.spec, tmp_path / "pipe.mlmodel")
    assert report.model.format == "pipeline" and len(report.model.graphs) == 2
    assert sum(p.op.type == "custom" for p in report.placements) == 2
    assert {s.part for s in report.segments} == {g.name for g in report.model.graphs}
