"""Constants of the latency model fitted by ``bench/calibrate.py`` (generated; edit by re-running it).

Every other figure of the model is a chip spec (anedoctor.hardware) or a published measurement cited
where it is used (anedoctor.cost.latency). Initial values before a fit: the evidence in the comments.
"""
FITTED = {
    "constants": {
        "ane_conv_efficiency": 0.6,  # attainable fraction of peak on filled convs (whole models 20-35%, §3.6)
        "ane_linear_efficiency": 0.6,  # const-weight matmul / linear as 1x1 conv
        "ane_matmul_efficiency": 0.3,  # two runtime operands: 25-35% of peak (maderix, M4)
        "ane_pe_scale": 1.0,  # planar engine rate relative to the M6 measurement
        "ane_activation_gbps": 24.0,  # activation / tile DMA (Bryngelson, M1 and M5)
        "ane_op_us": 2.0,  # per op (task descriptor) cost
        "ane_dispatch_ms_ios": 0.08,  # per ANE segment: <= 0.1 ms on iOS 17 (MobileNetV3-small 0.13 ms, A16)
        "ane_dispatch_ms_macos": 0.12,  # M1 0.19 / M4 0.09 / M5 Pro 0.07 ms per call (direct path)
        "cpu_mac_efficiency": 0.5,
        "cpu_bandwidth_fraction": 0.5,
        "cpu_op_us": 5.0,
        "gpu_mac_efficiency": 0.4,
        "gpu_bandwidth_fraction": 0.6,
        "gpu_op_us": 8.0,
        "gpu_launch_ms": 0.15,
        "switch_ms": 0.05,  # fixed part of a device switch (~90 us for 1-2 MB on M6, 751K)
    },
    "fit": None,  # what the last fit used and achieved (written by bench/calibrate.py)
}
