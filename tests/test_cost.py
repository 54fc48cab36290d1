"""The cost model: chip table, per-op ANE/CPU/GPU times and bounds, fusion, residency, dataflow scheduling."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mil_models import ct, mb, save, types, w

import anedoctor
from anedoctor.cost import DEVICE_PEAKS, CostModel, device_rates
from anedoctor.cost.fitted import FITTED
from anedoctor.cost.latency import LatencyModel, ane_fill, breakdown, energy, op_times, weight_bytes
from anedoctor.hardware import CHIPS, parse_chip, resolve_target


@pytest.mark.parametrize(
    "spelling,chip_id",
    [
        ("M1 Max", "m1max"),
        ("m1max", "m1max"),
        ("m1-max", "m1max"),
        ("m2ultra", "m2ultra"),
        ("Apple M2 Ultra", "m2ultra"),
        ("m1", "m1"),
        ("A17 Pro", "a17"),
        ("a14", "a14"),
        ("m4_pro", "m4pro"),
        ("Apple M5 Pro", "m5pro"),
        ("iPhone 15 Pro", "a17"),  # a device: the chip Apple's tech specs list for it
        ("iPhone 15", "a16"),
        ("iphone-16e", "a18"),
        ("iPhone Air", "a19pro"),
        ("MacBook Air M2", "m2"),
        ("Mac Studio M2 Ultra", "m2ultra"),
    ],
)
def test_parse_chip_keeps_variants(spelling, chip_id):
    assert parse_chip(spelling).id == chip_id


def test_unknown_chip_is_a_one_line_error():
    with pytest.raises(anedoctor.ModelError, match="unknown chip 'm9'"):
        parse_chip("m9")
    with pytest.raises(anedoctor.ModelError, match="unknown chip 'iPhone 99'.*name an iPhone or Mac"):
        parse_chip("iPhone 99")


def test_variants_share_the_ane_but_not_memory_cpu_or_gpu():
    base, big = CHIPS["m1"], CHIPS["m1max"]
    assert (big.fp16_tflops, big.tier, big.ane_arch) == (base.fp16_tflops, base.tier, base.ane_arch)
    assert big.dram_gbps > base.dram_gbps and big.gpu_tflops > base.gpu_tflops and big.cpu_gflops > base.cpu_gflops
    # the ANE streams weights at its own measured rate, not the SoC's: M1 Max is no faster than M1 there
    assert big.ane_weight_gbps <= base.ane_weight_gbps < base.dram_gbps
    assert CHIPS["m4pro"].ane_weight_gbps > 1.5 * CHIPS["m4"].ane_weight_gbps


def test_every_chip_has_figures_for_all_three_devices():
    for chip in CHIPS.values():
        assert chip.dram_gbps > 0 and chip.cpu_gflops > 0 and chip.gpu_tflops > 0, chip.id
        if chip.tier:
            assert 1.0 < chip.ane_ghz < 2.5 and 0 < chip.ane_weight_gbps <= chip.dram_gbps, chip.id


def test_segmenter_estimates_on_m4_are_the_fitted_anchors():
    rates = device_rates(resolve_target("ios17", "m4", "macos15"))
    tflops, gbps, overhead = DEVICE_PEAKS["cpu"]
    assert rates["elementwise", "cpu"] == pytest.approx((tflops * 1e6, gbps * 1e3, overhead))


def test_segmenter_uses_each_chips_cpu_and_the_m4s_ane():
    small = CostModel(resolve_target("ios17", "m1", "macos13")).op_costs("conv", 10**9, 10**6)
    big = CostModel(resolve_target("ios17", "m1max", "macos13")).op_costs("conv", 10**9, 10**6)
    newer = CostModel(resolve_target("ios17", "m4", "macos15")).op_costs("conv", 10**9, 10**6)
    phone = CostModel(resolve_target("ios16", "a14", "ios16")).op_costs("softmax", 10**7, 10**7)
    # Core ML prices the ANE as the M4's on every chip (the M1 Max's published plans, anedoctor.cost.device_rates)
    assert big["ane"] == pytest.approx(small["ane"]) == pytest.approx(newer["ane"])
    assert phone["ane"] == pytest.approx(
        CostModel(resolve_target("ios18", "m4", "macos15")).op_costs("softmax", 10**7, 10**7)["ane"]
    )
    # a CPU conv runs on one P-cluster's matrix unit: the clock counts, the core count does not; NEON work scales
    assert big["cpu"] == pytest.approx(small["cpu"]) and newer["cpu"] < small["cpu"]
    add = {c: CostModel(resolve_target("ios17", c, "macos13")).op_costs("add", 10**9, 0) for c in ("m1", "m1max")}
    assert add["m1max"]["cpu"] < add["m1"]["cpu"]
    assert big["gpu"] == pytest.approx(newer["gpu"])  # the GPU is scaled down from M4 on a weaker GPU, never up
    assert small["gpu"] > newer["gpu"]


def conv_model(tmp_path, cin=256, cout=256, size=32, act=True, name="m.mlpackage"):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, cin, size, size))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=w(cout, cin, 3, 3), pad_type="same", name="conv")
        return mb.relu(x=y, name="act") if act else y

    return save(prog, tmp_path / name)


def by_name(report, name):
    return next(p for p in report.placements if p.op.name.startswith(name))


def test_activation_after_conv_is_fused_on_the_ane(tmp_path):
    report = anedoctor.check(conv_model(tmp_path), chip="m4", compute_units="cpu_and_ne")
    conv, act = by_name(report, "conv"), by_name(report, "act")
    assert conv.device == act.device == "ane"
    assert act.bound == "fused" and act.time_ms == 0 and conv.time_ms > 0


def hard_swish_model(tmp_path, also_read: bool):
    """conv -> mul(x, sigmoid_hard(x)) -> conv, as coremltools lowers torch's hard-swish; ``also_read``: x has a
    third reader."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, 56, 56))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=w(256, 256, 3, 3), pad_type="same", name="conv")
        out = mb.mul(x=y, y=mb.sigmoid_hard(x=y, alpha=1 / 6, beta=0.5, name="gate"), name="swish")
        if also_read:
            out = mb.add(x=out, y=mb.relu(x=y, name="other"))
        return mb.conv(x=out, weight=w(256, 256, 3, 3), pad_type="same", name="next")

    return save(prog, tmp_path / f"hswish{also_read}.mlpackage")


@pytest.mark.parametrize("also_read", [False, True])
def test_hard_swish_after_a_conv_is_one_activation_unless_its_input_is_read_elsewhere(tmp_path, also_read):
    report = anedoctor.check(hard_swish_model(tmp_path, also_read), chip="a16", compute_units="cpu_and_ne")
    gate, swish = by_name(report, "gate"), by_name(report, "swish")
    assert gate.device == swish.device == "ane"
    assert (gate.bound == swish.bound == "fused") is not also_read
    assert (gate.time_ms + swish.time_ms == 0) is not also_read


def test_each_ane_pass_pays_the_fixed_cost_but_a_fused_op_or_a_reshape_that_keeps_the_innermost_axis(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, 32, 32))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.relu(x=mb.conv(x=x, weight=w(256, 256, 3, 3), pad_type="same", name="conv"), name="act")
        y = mb.reshape(x=y, shape=(1, 16, 16, 32, 32), name="view")
        return mb.softmax(x=y, axis=1, name="norm")

    report = anedoctor.check(save(prog, tmp_path / "passes.mlpackage"), chip="a17", compute_units="cpu_and_ne")
    names = ("conv", "act", "view", "norm")
    assert {by_name(report, n).device for n in names} == {"ane"}
    at = {
        us: dict(
            zip((p.op.name for p in report.placements), op_times(report.placements, report.target, {"ane_op_us": us}))
        )
        for us in (0.0, 5.0)
    }
    added = {n: at[5.0][by_name(report, n).op.name].ms - at[0.0][by_name(report, n).op.name].ms for n in names}
    assert added == pytest.approx({"conv": 0.005, "act": 0.0, "view": 0.0, "norm": 0.005})


def test_wider_conv_takes_longer_and_fills_the_array_better(tmp_path):
    model = LatencyModel(resolve_target("ios17", "m4", None))
    convs = []
    for c in (16, 256):
        path = conv_model(tmp_path, c, c, name=f"c{c}.mlpackage")
        conv = by_name(anedoctor.check(path, chip="m4", compute_units="cpu_and_ne"), "conv")
        convs.append((conv, model.ane(conv.op, conv.flops, 0.0)))
    (a, ta), (b, tb) = convs
    assert ane_fill(a.op, a.flops) < ane_fill(b.op, b.flops) <= 1.0
    assert tb.ms > ta.ms and tb.bound == "compute"
    assert tb.ms / b.flops < ta.ms / a.flops  # time per FLOP falls as the array fills


def test_a_segment_launch_costs_what_the_generations_measured_per_call_overhead_implies():
    k = FITTED["constants"]
    launch = {
        c: LatencyModel(resolve_target("ios17", c, None)).dispatch_ms() for c in ("a14", "a16", "a17", "m1max", "m4")
    }
    # on a Mac the measured per-call overhead itself: ~92.5 us on M4 (H16), ~190 us on M1-generation (H13) chips
    assert launch["a17"] == k["ane_dispatch_ms_ios"] and launch["m4"] == 0.0925 and launch["m1max"] == 0.19
    # the A16 (H15) in between
    assert launch["a14"] / launch["a17"] == pytest.approx(190 / 92.5) == launch["m1max"] / launch["m4"]
    assert launch["a17"] < launch["a16"] < launch["a14"]


def two_convs(tmp_path, size):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, size, size))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.relu(x=mb.conv(x=x, weight=w(256, 256, 3, 3), pad_type="same", name="first"))
        return mb.conv(x=y, weight=w(256, 256, 3, 3), pad_type="same", name="second")

    return save(prog, tmp_path / f"two{size}.mlpackage")


@pytest.mark.parametrize("size,tier", [(32, "on chip"), (96, "slc"), (256, "dram")])
def test_chained_activations_stay_on_chip_unless_over_2mib_then_the_slc_holds_up_to_16mib(tmp_path, size, tier):
    report = anedoctor.check(two_convs(tmp_path, size), chip="m4", compute_units="cpu_and_ne")
    second = by_name(report, "second")
    assert second.device == "ane"
    tensor = second.op.outputs[0].type.nbytes  # input and output are the same size: 0.5, 4.7, 33.6 MB
    dram, slc = second.dram_bytes - weight_bytes(second.op), second.slc_bytes
    # its input comes from the first conv and its output goes to the output cast, both in the same segment
    assert (dram, slc) == {"on chip": (0, 0), "slc": (0, 2 * tensor), "dram": (2 * tensor, 0)}[tier]


def test_a_system_level_cache_hit_moves_faster_than_dram_and_costs_less_energy():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, 96, 96))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.relu(x=x, name="act")

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        act = by_name(anedoctor.check(save(prog, Path(d) / "act.mlpackage"), chip="a16"), "act")
    model = LatencyModel(resolve_target("ios17", "a16", None), {"ane_slc_speedup": 4.0})
    moved = 8 * 2**20
    from_dram, from_slc = model.ane(act.op, 0, moved, 0.0), model.ane(act.op, 0, 0.0, moved)
    assert from_dram.bound == from_slc.bound == "activations"
    assert from_slc.ms < from_dram.ms / 2
    assert (from_dram.dram_bytes, from_slc.slc_bytes) == (moved, moved)
    no_cpu_or_gpu = SimpleNamespace(device_ms={})
    rail = {
        name: energy([SimpleNamespace(device="ane", **vars(t))], no_cpu_or_gpu, CHIPS["a16"])["dram"]
        for name, t in (("dram", from_dram), ("slc", from_slc))
    }
    assert rail["slc"] == pytest.approx(rail["dram"] / 5)  # 10 pJ per byte on a hit, 50 from DRAM


def test_weight_streaming_scales_with_the_chips_measured_ane_bandwidth():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4096))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.linear(x=x, weight=w(4096, 4096), name="head")

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = save(prog, Path(d) / "head.mlpackage")
        times = {
            c: by_name(anedoctor.check(path, chip=c, compute_units="cpu_and_ne", os="macos15"), "head")
            for c in ("m1max", "m4")
        }
    assert times["m1max"].device == times["m4"].device == "ane"
    assert times["m1max"].bound == times["m4"].bound == "weights"
    ratio = times["m1max"].time_ms / times["m4"].time_ms  # SoCs: 400 vs 120 GB/s; the ANEs: 54.6 vs 64.2 GB/s
    assert ratio == pytest.approx(CHIPS["m4"].ane_weight_gbps / CHIPS["m1max"].ane_weight_gbps, rel=0.05)


def test_whole_model_latency_is_ops_plus_launches_plus_switches(tmp_path):
    report = anedoctor.check(conv_model(tmp_path), chip="a17", compute_units="cpu_and_ne")
    b = report.latency
    ops = sum(p.time_ms for p in report.placements)
    assert b.latency_ms == pytest.approx(ops + sum(s.launch_ms for s in b.segments) + sum(s.ms for s in b.switches))
    assert report.summary["latency_ms"] == pytest.approx(b.latency_ms, abs=1e-3)
    model = LatencyModel(resolve_target("ios17", "a17", None))
    assert any(s.launch_ms == model.dispatch_ms() for s in b.segments if s.device == "ane")
    assert breakdown([], resolve_target("ios17", "a17", None)).latency_ms == 0


def masked_model(tmp_path):
    """An fp16 conv chain listed before an int32 mask's cast, which joins the chain half-way (as
    coremltools lists DistilBERT's attention-mask ops after layer 1's convs)."""

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 256, 16, 16)), mb.TensorSpec(shape=(1, 1, 16, 16), dtype=types.int32)],
        opset_version=ct.target.iOS17,
    )
    def prog(x, mask):
        for i in range(4):
            x = mb.relu(x=mb.conv(x=x, weight=w(256, 256, 3, 3), pad_type="same"), name=f"first{i}")
        m = mb.cast(x=mask, dtype="fp32", name="mask_cast")
        x = mb.add(x=x, y=m, name="masked")
        for i in range(4):
            x = mb.relu(x=mb.conv(x=x, weight=w(256, 256, 3, 3), pad_type="same"), name=f"second{i}")
        return x

    return save(prog, tmp_path / "masked.mlpackage")


def test_independent_cpu_ops_are_scheduled_so_the_ane_run_stays_whole(tmp_path):
    path = masked_model(tmp_path)
    graph = anedoctor.load(path).graphs[0]
    mask_cast = next(op.name for op in graph.ops if op.type == "cast" and op.input("x").name == "mask")
    listed = [op.name for op in graph.ops]
    assert listed.index(mask_cast) > listed.index("first0_cast_fp16")  # listed in the middle of the convs
    report = anedoctor.check(path, chip="m4", compute_units="cpu_and_ne")
    names = [p.op.name for p in report.placements]
    assert by_name(report, mask_cast).device == "cpu"
    assert names.index(mask_cast) < names.index("first0_cast_fp16")
    ane = [i for i, p in enumerate(report.placements) if p.device == "ane"]
    assert len(ane) >= 17 and ane == list(range(ane[0], ane[-1] + 1))  # every conv, relu and the add: one run
    assert report.summary["switches"] <= 2


def test_a_chain_keeps_its_listed_order(tmp_path):
    path = conv_model(tmp_path)
    report = anedoctor.check(path, chip="m4")
    assert [p.op.name for p in report.placements] == [
        op.name for op in anedoctor.load(path).graphs[0].ops if not op.type.startswith("constexpr_")
    ]


def w8a8_conv(tmp_path, quantized: bool):
    """A 256->256 3x3 conv on 64x64 (compute-bound even at the int8 rate) whose input is (or is not) int8
    activations: quantize -> dequantize -> conv."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, 64, 64), dtype=types.fp16)], opset_version=ct.target.iOS17)
    def prog(x):
        if quantized:
            q = mb.quantize(input=x, scale=np.float16(0.05), zero_point=np.int8(0), output_dtype="int8")
            x = mb.dequantize(input=q, scale=np.float16(0.05), zero_point=np.int8(0))
        return mb.conv(x=x, weight=w(256, 256, 3, 3).astype(np.float16), pad_type="same", name="conv")

    return save(prog, tmp_path / f"w8a8_{quantized}.mlpackage", target=ct.target.iOS17)


def test_int8_activations_double_ane_mac_rate_on_fast_int8_chips_and_gain_less_before(tmp_path):
    """W8A8 convs compute at twice the fp16 MAC rate on A17 Pro / M4; on A16 at the fitted older int8 rate
    (weight-only int8 would not change the MAC rate)."""
    plain, w8a8 = w8a8_conv(tmp_path, False), w8a8_conv(tmp_path, True)
    times = {}
    for chip in ("a16", "a17"):
        for label, path in (("fp16", plain), ("w8a8", w8a8)):
            report = anedoctor.check(path, chip=chip, compute_units="cpu_and_ne")
            conv = by_name(report, "conv")
            assert conv.device == "ane"
            times[chip, label] = conv.time_ms if conv.bound == "compute" else None
    older = FITTED["constants"]["ane_int8_speedup_before_a17"]
    assert times["a17", "fp16"] and times["a17", "w8a8"] == pytest.approx(times["a17", "fp16"] / 2, rel=0.05)
    assert times["a16", "w8a8"] == pytest.approx(times["a16", "fp16"] / older, rel=0.05)


def int8_chain(tmp_path, quantized: bool):
    """Two 1x1 convs over a 96x96x256 fp16 map (4.7 MB, past the 2 MiB buffer), int8 between them or not."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, 96, 96), dtype=types.fp16)], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=w(256, 256, 1, 1).astype(np.float16), name="first")
        if quantized:
            q = mb.quantize(input=y, scale=np.float16(0.05), zero_point=np.int8(0), output_dtype="int8")
            y = mb.dequantize(input=q, scale=np.float16(0.05), zero_point=np.int8(0))
        return mb.conv(x=y, weight=w(256, 256, 1, 1).astype(np.float16), name="second")

    return save(prog, tmp_path / f"chain_{quantized}.mlpackage", target=ct.target.iOS17)


def activation_bytes(p) -> float:
    """What an ANE op's pass moves besides its weights, from DRAM or the system-level cache."""
    return p.dram_bytes + p.slc_bytes - weight_bytes(p.op)


def test_int8_tensors_between_ane_ops_move_at_one_byte_and_convert_for_free(tmp_path):
    """quantize / dequantize between two ANE convs are format conversions of the passes around them: no time of
    their own, the first conv's pass writes its output as int8 and the second reads that, half the fp16 traffic."""
    activation = {}
    for quantized in (False, True):
        report = anedoctor.check(int8_chain(tmp_path, quantized), chip="a17", compute_units="cpu_and_ne")
        first, second = by_name(report, "first"), by_name(report, "second")
        assert first.device == second.device == "ane"
        activation[quantized] = activation_bytes(second) - second.op.outputs[0].type.nbytes
        if quantized:
            q, dq = by_name(report, "quantize"), by_name(report, "dequantize")
            int8 = q.op.outputs[0].type.nbytes
            assert (q.time_ms, q.bound, dq.time_ms, dq.bound) == (0, "fused", 0, "fused")
            assert activation_bytes(first) == first.op.input("x").type.nbytes + int8  # writes int8
            assert activation[True] == int8
    assert activation[True] * 2 == activation[False]


def w8a8_activation(tmp_path, shared: bool):
    """conv -> quantize -> dequantize -> silu -> conv over a 96x96x256 map, the activation after the int8 round trip
    as in Apple's W8A8 graphs; ``shared``: the dequantized tensor is read by a second op too."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, 96, 96), dtype=types.fp16)], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=w(256, 256, 1, 1).astype(np.float16), name="first")
        q = mb.quantize(input=y, scale=np.float16(0.05), zero_point=np.int8(0), output_dtype="int8")
        d = mb.dequantize(input=q, scale=np.float16(0.05), zero_point=np.int8(0))
        a = mb.silu(x=d, name="act")
        if shared:
            a = mb.add(x=a, y=d)
        return mb.conv(x=a, weight=w(256, 256, 1, 1).astype(np.float16), name="second")

    return save(prog, tmp_path / f"w8a8_act_{shared}.mlpackage", target=ct.target.iOS17)


@pytest.mark.parametrize("shared", [False, True])
def test_an_activation_after_an_int8_round_trip_is_done_in_the_conv_pass_unless_shared(tmp_path, shared):
    report = anedoctor.check(w8a8_activation(tmp_path, shared), chip="a17", compute_units="cpu_and_ne")
    first, act = by_name(report, "first"), by_name(report, "act")
    assert first.device == act.device == "ane"
    assert (act.bound == "fused" and act.time_ms == 0) is not shared
    if not shared:  # the conv's pass reads its input and writes the SiLU's output, not its own nor the int8 one
        assert activation_bytes(first) == first.op.input("x").type.nbytes + act.op.outputs[0].type.nbytes


def palettized_head(tmp_path):
    """A one-token 4096 -> 4096 linear (weight-bound on the ANE), plain and palettized to 4 bits."""
    import coremltools.optimize.coreml as cto

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4096), dtype=types.fp16)], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.linear(x=x, weight=w(4096, 4096).astype(np.float16), name="head")

    plain = save(prog, tmp_path / "plain.mlpackage", target=ct.target.iOS17)
    config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="uniform", nbits=4))
    cto.palettize_weights(ct.models.MLModel(str(plain), skip_model_load=True), config).save(
        str(tmp_path / "p4.mlpackage")
    )
    return plain, tmp_path / "p4.mlpackage"


def test_compressed_weights_stream_at_their_compressed_size(tmp_path):
    """A weight-bound linear palettized to 4 bits streams a quarter of the bytes: faster, not slower (how much
    faster depends on whether its MACs then bind, which the fitted efficiencies decide)."""
    plain, small = palettized_head(tmp_path)
    before = by_name(anedoctor.check(plain, chip="m4"), "head")
    after = by_name(anedoctor.check(small, chip="m4"), "head")
    assert before.bound == "weights" and after.device == "ane"
    # the 4-bit indices, stored as attributes of an iOS 16 constexpr_lut_to_dense: a quarter, not nothing
    assert 0.24 * before.dram_bytes < after.dram_bytes < 0.26 * before.dram_bytes
    assert after.time_ms < before.time_ms


def test_compressed_weights_stream_at_their_fp16_size_before_ios_18(tmp_path):
    """Apple's palettized and int8 CNNs ran no faster than fp16 on iOS 17 and faster on iOS 18: the same
    palettized linear streams its dense fp16 bytes on iOS 17 and a quarter of them on iOS 18."""
    plain, small = palettized_head(tmp_path)
    streamed = {}
    for os in ("ios17", "ios18"):
        before = by_name(anedoctor.check(plain, chip="a17", os=os), "head")
        after = by_name(anedoctor.check(small, chip="a17", os=os), "head")
        assert before.device == after.device == "ane"
        streamed[os] = after.dram_bytes / before.dram_bytes, after.time_ms / before.time_ms
    assert streamed["ios17"] == (1.0, pytest.approx(1.0))
    assert 0.24 < streamed["ios18"][0] < 0.26 and streamed["ios18"][1] < 1


def attention_scores(tmp_path, heads: int, name: str):
    """(1, heads, 256, 64) @ (1, heads, 64, 256): the per-head score matmul of a (B, H, S, D) attention."""

    @mb.program(
        input_specs=[mb.TensorSpec((1, heads, 256, 64), types.fp16), mb.TensorSpec((1, heads, 64, 256), types.fp16)],
        opset_version=ct.target.iOS17,
    )
    def prog(q, k):
        return mb.matmul(x=q, y=k, name="scores")

    path = save(prog, tmp_path / name)
    return by_name(anedoctor.check(path, chip="m4", compute_units="cpu_and_ne"), "scores")


def test_matmul_heads_are_batches_not_output_channels(tmp_path):
    few, many = attention_scores(tmp_path, 6, "h6.mlpackage"), attention_scores(tmp_path, 64, "h64.mlpackage")
    assert ane_fill(few.op, few.flops) == pytest.approx(ane_fill(many.op, many.flops))
    assert ane_fill(few.op, few.flops) > 0.3  # 256 output channels fill their groups; only K = 64 lanes are short


def test_activation_spills_move_at_the_ane_dmas_one_rate_but_no_faster_than_the_chips_dram(tmp_path):
    """The same spill takes as long on an A14 as on an M4 Pro (the DMA engine's rate, measured alike on an M1 and an
    M5), unless that rate is above the A14's DRAM (34.1 GB/s), which then caps it."""
    conv = by_name(anedoctor.check(conv_model(tmp_path), chip="m4", compute_units="cpu_and_ne"), "conv")
    spill = 64 << 20  # bytes that miss the on-chip buffer

    def times(gbps: float) -> list:
        k = {"ane_activation_gbps": gbps}
        return [LatencyModel(resolve_target("ios17", c, None), k).ane(conv.op, 0, spill) for c in ("a14", "m4pro")]

    def activation_ms(t, chip: str) -> float:  # the op's time less its pass cost and its own weights' stream
        weights = t.dram_bytes - spill
        return t.ms - FITTED["constants"]["ane_op_us"] / 1000 - weights / (CHIPS[chip].ane_weight_gbps * 1e6)

    slow, fast = times(24.0)
    assert slow.bound == fast.bound == "activations"
    assert activation_ms(slow, "a14") == pytest.approx(spill / 24e6) == activation_ms(fast, "m4pro")
    slow, fast = times(50.0)
    assert activation_ms(slow, "a14") == pytest.approx(spill / (CHIPS["a14"].dram_gbps * 1e6))
    assert activation_ms(fast, "m4pro") == pytest.approx(spill / 50e6)


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_segmenter_cpu_and_gpu_stream_no_faster_than_the_chips_dram(device):
    """The CPU's and GPU's bandwidth anchor (M4) is scaled down on chips with less DRAM bandwidth, never up."""
    rate = {c: device_rates(resolve_target("ios17", c, None))["elementwise", device][1] for c in ("a17", "m4", "m4pro")}
    assert rate["a17"] == pytest.approx(rate["m4"] * CHIPS["a17"].dram_gbps / CHIPS["m4"].dram_gbps)
    assert rate["m4pro"] == rate["m4"]


def test_segmenter_gpu_is_scaled_down_on_weaker_gpus_never_up():
    """An A15's GPU is estimated at its own share of the M4's FLOPs; an M1 Max's keeps the M4 anchor."""
    flops = {c: device_rates(resolve_target("ios17", c, None))["conv", "gpu"][0] for c in ("a15", "m4", "m1max")}
    assert flops["a15"] == pytest.approx(flops["m4"] * CHIPS["a15"].gpu_tflops / CHIPS["m4"].gpu_tflops)
    assert flops["m1max"] == flops["m4"] and CHIPS["m1max"].gpu_tflops > CHIPS["m4"].gpu_tflops


def embedding_model(tmp_path):
    """An embedding gather on int32 ids (never on the ANE) feeding four 256-channel convs, fp16 I/O."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256), dtype=types.int32)], opset_version=ct.target.iOS16)
    def prog(ids):
        x = mb.gather(x=w(1000, 256), indices=ids, axis=0, name="embedding")
        x = mb.reshape(x=mb.transpose(x=x, perm=[0, 2, 1]), shape=[1, 256, 16, 16])
        for i in range(4):
            x = mb.relu(x=mb.conv(x=x, weight=w(256, 256, 3, 3), pad_type="same", name=f"conv{i}"))
        return x

    return save(prog, tmp_path / "embedding.mlpackage", target=ct.target.iOS16, precision=ct.precision.FLOAT16)


def test_under_all_macos_13_and_14_give_the_gpu_what_the_ane_does_not_take(tmp_path):
    path = embedding_model(tmp_path)

    def devices(os, units):
        report = anedoctor.check(path, chip="m1max", os=os, compute_units=units)
        return by_name(report, "embedding").device, {p.device for p in report.placements}

    for os in ("macos13", "macos14"):
        gather, used = devices(os, "all")
        assert gather == "gpu" and "cpu" not in used  # both published macOS 13 plans under All: CPU 0
        assert devices(os, "cpu_and_ne")[0] == "cpu"
    gather, used = devices("macos15", "all")
    assert gather == "cpu" and "ane" in used  # later OSes: the cost decides (tiny models stay on the CPU on M4)


class AttentionANE(torch.nn.Module):
    """Attention in Apple's ANE layout (B, C, 1, S): one einsum pair per head (split einsum), or with
    ``split=False`` one pair over all heads at once."""

    def __init__(self, dim=256, heads=4, split=True):
        super().__init__()
        self.q, self.k, self.v = (torch.nn.Conv2d(dim, dim, 1) for _ in range(3))
        self.head_dim, self.heads, self.split = dim // heads, heads, split

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        if not self.split:
            q, k, v = (t.reshape(1, self.heads, self.head_dim, -1) for t in (q, k, v))
            weights = torch.einsum("bhcq,bhck->bhkq", q, k).softmax(dim=2)
            return torch.einsum("bhkq,bhck->bhcq", weights, v).reshape(1, self.heads * self.head_dim, 1, -1)
        heads = zip(q.split(self.head_dim, 1), k.permute(0, 3, 2, 1).split(self.head_dim, 3), v.split(self.head_dim, 1))
        return torch.cat(
            [
                torch.einsum("bkhq,bchk->bchq", torch.einsum("bchq,bkhc->bkhq", qh, kh).softmax(dim=1), vh)
                for qh, kh, vh in heads
            ],
            dim=1,
        )


def test_under_all_on_macos_13_split_einsum_heads_go_to_the_gpu():
    """SEG-3: per-head einsum attention on the GPU under all on macOS 13, not on macOS 14, not batched heads."""
    x = torch.randn(1, 256, 1, 128)
    split, batched = (anedoctor.load(AttentionANE(split=s).eval(), x) for s in (True, False))

    def placed(model, os):
        report = anedoctor.check(model, chip="m1max", os=os, compute_units="all")
        attention = [p for p in report.placements if p.op.type in ("einsum", "matmul", "softmax")]
        return {p.device for p in attention}, {f.rule.id for p in report.placements for f in p.findings}

    heads, why = placed(split, "macos13")
    assert heads == {"gpu"} and "SEG-3" in why
    assert placed(split, "macos14")[0] == {"ane"}
    heads, why = placed(batched, "macos13")
    assert heads == {"ane"} and "SEG-3" not in why


def masked_fill_model(tmp_path, n):
    """scores.masked_fill(mask, -inf) on an n x n fp16 score matrix, as OP-19's select."""

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 12, n, n), dtype=types.fp16), mb.TensorSpec(shape=(1, 1, 1, n))],
        opset_version=ct.target.iOS16,
    )
    def prog(scores, mask):
        cond = mb.greater(x=mask, y=np.float32(0.5))
        return mb.select(cond=cond, a=np.float16(-np.inf), b=scores, name="masked")

    return save(prog, tmp_path / f"masked_{n}.mlpackage", target=ct.target.iOS16)


def test_cpu_select_is_a_per_element_kernel(tmp_path):
    per_ns = LatencyModel(resolve_target("ios17", "a15", None)).k["cpu_select_ns"]
    times = {}
    for n in (128, 256):
        report = anedoctor.check(masked_fill_model(tmp_path, n), chip="a15", os="ios16", compute_units="cpu_only")
        times[n] = by_name(report, "masked").time_ms
        assert times[n] >= 12 * n * n * per_ns / 1e6  # at least the fitted ns per output element
    assert times[256] / times[128] == pytest.approx(4, rel=0.1)  # linear in the elements


def test_cpu_matmuls_run_on_one_clusters_matrix_unit(tmp_path):
    """A CPU conv costs the same on an A14 (2 P-cores) and an M1 Max (8) but for the clock; an add scales with cores."""
    path = conv_model(tmp_path, cin=256, cout=256, size=32, act=False)
    conv = {
        chip: by_name(anedoctor.check(path, chip=chip, os=os, compute_units="cpu_only"), "conv").time_ms
        for chip, os in (("a14", "ios16"), ("m1max", "macos13"))
    }
    assert conv["a14"] / conv["m1max"] == pytest.approx(CHIPS["m1max"].cpu_ghz / CHIPS["a14"].cpu_ghz, rel=0.05)
    a14, m1max = (LatencyModel(resolve_target("ios17", c, None)) for c in ("a14", "m1max"))
    assert a14.cpu_matrix_flops_per_ms > 5 * a14.cpu_flops_per_ms  # the matrix unit, not NEON, takes the MACs
    assert m1max.cpu_flops_per_ms == pytest.approx(4 * a14.cpu_flops_per_ms * 3.2 / 3.0)  # NEON: cores x clock
    a12 = LatencyModel(resolve_target("ios17", "a12", None))  # before the A13 there is no matrix unit
    assert a12.cpu_matrix_flops_per_ms == a12.cpu_flops_per_ms


def test_cpu_linear_has_its_own_efficiency_against_the_same_gemm_as_a_1x1_conv(tmp_path):
    """A linear over (1, S, C) and a 1x1 conv over (1, C, 1, S) are one GEMM; the CPU charges each at its own rate."""
    seq, cin, cout = 512, 768, 3072

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, seq, cin)), mb.TensorSpec(shape=(1, cin, 1, seq))],
        opset_version=ct.target.iOS17,
    )
    def prog(tokens, pixels):
        linear = mb.linear(x=tokens, weight=w(cout, cin), bias=w(cout), name="linear")
        conv = mb.conv(x=pixels, weight=w(cout, cin, 1, 1), bias=w(cout), name="conv")
        return linear, conv

    report = anedoctor.check(
        save(prog, tmp_path / "gemm.mlpackage"), chip="m1max", os="macos13", compute_units="cpu_only"
    )
    linear, conv = by_name(report, "linear"), by_name(report, "conv")
    assert linear.bound == conv.bound == "compute" and linear.macs == conv.macs
    k = LatencyModel(resolve_target("ios17", "m1max", None)).k
    assert linear.time_ms / conv.time_ms == pytest.approx(
        k["cpu_mac_efficiency"] / k["cpu_linear_efficiency"], rel=0.02
    )
