"""powermetrics / IOReport capture parsing on real public captures (tests/data/measure/README.md)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from anedoctor.errors import ModelError
from anedoctor.measure import power
from anedoctor.measure.powermetrics import parse_power, per_inference

DATA = Path(__file__).parent / "data" / "measure" / "power"
TEXT_M4 = DATA / "01_text_default_M4Max_Mac16-6_macOS15.5_ane0.txt"
PLIST_M1 = DATA / "02_plist_M1_MacBookPro17-1_macOS13.3_22E252_ane0.xml"
PLIST_M1_B = DATA / "03_plist_M1_MacBookPro17-1_macOS13.3_22E252_sample2_ane0.xml"
PLIST_M2U = DATA / "04_plist_M2Ultra_Mac14-14_macOS14.4_23E224_ane0.xml"
HEADER_ONLY = DATA / "07_fragment_text_M1Pro_MacBookPro18-4_macOS14.1_23B81_header.txt"


def test_text_capture_m4_max_macos15():
    r = power(TEXT_M4)
    assert (r.format, r.machine, r.os_build, len(r.samples)) == ("text", "Mac16,6", "24F74", 1)
    s = r.samples[0]
    assert s.time == "2025-11-08T15:54:21+09:00" and s.elapsed_ms == pytest.approx(5021.96)
    # the GPU section repeats 'GPU Power: 28 mW'; the Processor section's values are the sample's
    assert (s.cpu_mw, s.gpu_mw, s.ane_mw, s.combined_mw) == (954.0, 28.0, 0.0, 983.0)
    summary = r.summary
    assert summary["ane_mw"] == {"mean": 0.0, "max": 0.0, "min": 0.0, "samples": 1}
    assert summary["energy_mj"]["cpu"] == pytest.approx(954 * 5.02196, rel=1e-6)


@pytest.mark.parametrize(
    "path, machine, build, cpu_mj, cpu_mw, elapsed_ms",
    [
        (PLIST_M1, "MacBookPro17,1", "22E252", 89, 44.0773, 2019.17875),
        (PLIST_M1_B, "MacBookPro17,1", "22E252", 54, 102.663, 525.992374),
        (PLIST_M2U, "Mac14,14", "23E224", 855, 835.188, 1023.721416),
    ],
)
def test_plist_captures_macos13_and_14(path, machine, build, cpu_mj, cpu_mw, elapsed_ms):
    r = power(path)
    s = r.samples[0]
    assert (r.format, r.machine, r.os_build) == ("plist", machine, build)
    assert s.elapsed_ms == pytest.approx(elapsed_ms) and s.cpu_mw == pytest.approx(cpu_mw)
    assert s.ane_mw == 0.0 and r.summary["energy_mj"]["ane"] == 0.0
    # energy is the integer powermetrics reports, and its power is that energy over the window
    assert r.summary["energy_mj"]["cpu"] == cpu_mj
    assert cpu_mj * 1000 / elapsed_ms == pytest.approx(cpu_mw, rel=2e-3)


def test_nul_separated_plist_stream_two_samples():
    """`powermetrics -f plist` streams NUL-separated documents; here two real samples joined that way."""
    data = PLIST_M1.read_bytes() + b"\x00" + PLIST_M1_B.read_bytes() + b"\x00"
    r = parse_power(data, "stream.plist")
    assert len(r.samples) == 2
    s = r.summary
    assert s["duration_ms"] == pytest.approx(2019.17875 + 525.992374)
    assert s["energy_mj"]["cpu"] == 89 + 54
    # time-weighted mean power = total energy / total time, not the mean of the two readings
    assert s["cpu_mw"]["mean"] == pytest.approx(143 * 1000 / s["duration_ms"], rel=1e-4)
    assert s["cpu_mw"]["max"] == pytest.approx(102.663)


def test_stream_with_incomplete_last_sample_keeps_complete_ones():
    data = PLIST_M1.read_bytes() + b"\x00" + PLIST_M1_B.read_bytes()[:5000]
    r = parse_power(data, "cut.plist")
    assert len(r.samples) == 1 and any("incomplete" in n for n in r.notes)


def test_truncated_plist_is_a_one_line_error_naming_file_and_place():
    with pytest.raises(ModelError) as e:
        parse_power(PLIST_M2U.read_bytes()[:20000], "m2u.plist")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m2u.plist: plist sample 1 (byte 0)") and "truncated" in msg


def test_mixed_text_and_plist_is_an_error_with_line():
    data = TEXT_M4.read_bytes() + b"\n" + PLIST_M1.read_bytes()
    with pytest.raises(ModelError, match=r"^mixed.txt: line \d+: mixes plist and text"):
        parse_power(data, "mixed.txt")


def test_two_machines_in_one_text_file_is_an_error():
    data = TEXT_M4.read_bytes() + HEADER_ONLY.read_bytes()
    with pytest.raises(ModelError, match=r"line \d+: a second capture starts here \(Machine model: MacBookPro18,4"):
        parse_power(data, "two.txt")


def test_plist_samples_from_two_machines_is_an_error():
    data = PLIST_M1.read_bytes() + b"\x00" + PLIST_M2U.read_bytes()
    with pytest.raises(ModelError, match="plist sample 2 .* from Mac14,14 23E224"):
        parse_power(data, "two.plist")


@pytest.mark.parametrize(
    "name",
    [
        "05_fragment_text_M2Air_Mac14-2_macOS12.5_21G72_monterey_format.txt",
        "06_fragment_text_M1Pro_cpu_power_monterey_format.txt",
        "07_fragment_text_M1Pro_MacBookPro18-4_macOS14.1_23B81_header.txt",
    ],
)
def test_sample_without_ane_line_is_not_measured_never_zero(name):
    r = power(DATA / name)
    d = r.to_dict()
    assert d["samples"][0]["ane_mw"] is None and d["summary"]["ane_mw"]["mean"] is None
    assert d["summary"]["energy_mj"]["ane"] is None and d["summary"]["ane_mw"]["samples"] == 0
    assert any("not measured" in n or "per-cluster" in n for n in d["notes"])
    assert "not measured" in r.to_html()


def test_monterey_cluster_power_lines():
    r = power(DATA / "06_fragment_text_M1Pro_cpu_power_monterey_format.txt")
    assert r.samples[0].clusters_mw == {"E-Cluster": 96.0, "P0-Cluster": 254.0}
    assert r.samples[0].cpu_mw is None  # per-cluster lines are not summed into a CPU figure we were not given
    m = power(DATA / "05_fragment_text_M2Air_Mac14-2_macOS12.5_21G72_monterey_format.txt")
    assert (m.machine, m.os_build, m.samples[0].elapsed_ms) == ("Mac14,2", "21G72", 1002.8)
    assert m.samples[0].clusters_mw == {"E-Cluster": 6.0}


def test_power_block_without_sample_header():
    r = power(DATA / "10_fragment_text_power_block_hollance_doc.txt")
    s = r.samples[0]
    assert (s.cpu_mw, s.gpu_mw, s.ane_mw, s.combined_mw, s.elapsed_ms) == (335.0, 37.0, 0.0, 372.0, None)
    assert r.summary["energy_mj"]["cpu"] is None  # no sample interval: no energy


@pytest.mark.parametrize(
    "name, ane_channels, gpu_mw",
    [
        ("08_fragment_ioreport_energy_model_M2Ultra_macmon_debug.txt", {"ANE0_0", "ANE0_1"}, 270.0),
        ("09_fragment_ioreport_energy_model_A18_MacBookNeo_macmon_debug.txt", {"ANE"}, 90.0),
    ],
)
def test_macmon_ioreport_dumps(name, ane_channels, gpu_mw):
    r = power(DATA / name)
    s = r.samples[0]
    assert r.format == "ioreport" and {k for k in s.channels_mw if k.startswith("ANE")} == ane_channels
    assert s.ane_mw == 0.0 and s.gpu_mw == pytest.approx(gpu_mw) and s.cpu_mw is None


def test_ioreport_per_die_ane_channels_are_summed():
    """Derived from the real M2 Ultra dump (values edited: synthetic)."""
    text = (DATA / "08_fragment_ioreport_energy_model_M2Ultra_macmon_debug.txt").read_text()
    text = text.replace("ANE0_0 (mJ) = 0.00W", "ANE0_0 (mJ) = 1.25W")
    text = text.replace("ANE0_1 (mJ) = 0.00W", "ANE0_1 (mJ) = 0.50W")
    assert parse_power(text.encode(), "edited").samples[0].ane_mw == pytest.approx(1750.0)


def test_nonzero_ane_text_samples_and_per_inference_energy():
    """Two samples derived from the real M4 Max capture (ANE line edited: synthetic values)."""
    text = TEXT_M4.read_text()
    busy = text.replace("ANE Power: 0 mW", "ANE Power: 1500 mW")
    capture = busy + busy.split("\n\n\n", 1)[1].replace("ANE Power: 1500 mW", "ANE Power: 500 mW")
    r = parse_power(capture.encode(), "busy.txt")
    assert [s.ane_mw for s in r.samples] == [1500.0, 500.0]
    assert r.summary["ane_mw"]["mean"] == pytest.approx(1000.0) and r.summary["ane_mw"]["max"] == 1500.0
    assert r.summary["energy_mj"]["ane"] == pytest.approx(2000 * 5.02196, rel=1e-6)
    idle = power(TEXT_M4)
    out = per_inference(r, idle, inferences=100)
    assert out["baseline_subtracted"] and out["rails"]["ane"]["net_mw"] == pytest.approx(1000.0)
    assert out["rails"]["ane"]["mj_per_inference"] == pytest.approx(1000 * 2 * 5.02196 / 100, rel=1e-6)
    no_ane_idle = power(HEADER_ONLY)
    assert per_inference(r, no_ane_idle, 100)["rails"]["ane"]["net_mw"] is None
    with pytest.raises(ModelError):
        per_inference(r, idle, 0)


def test_json_keys_and_atomic_outputs(tmp_path):
    r = power(PLIST_M1)
    text = r.to_json(tmp_path / "p.json")
    d = json.loads(text)
    assert d["kind"] == "power" and set(d) >= {"samples", "summary"}
    assert set(d["samples"][0]) >= {"time", "elapsed_ms", "ane_mw", "gpu_mw", "cpu_mw"}
    assert set(d["summary"]) >= {"ane_mw", "gpu_mw", "cpu_mw", "energy_mj"}
    assert set(d["summary"]["ane_mw"]) >= {"mean", "max"}
    assert json.loads((tmp_path / "p.json").read_text()) == d
    html = r.to_html(tmp_path / "p.html")
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*tmp"))


def test_plot_breaks_line_where_not_measured():
    text = TEXT_M4.read_text()
    no_ane = text.replace("ANE Power: 0 mW\n", "")
    capture = text + no_ane.split("\n\n\n", 1)[1] + text.split("\n\n\n", 1)[1]
    r = parse_power(capture.encode(), "gap.txt")
    assert [s.ane_mw for s in r.samples] == [0.0, None, 0.0]
    html = r.to_html()
    # the ANE series is drawn as separate points around the gap, not as a line through 0
    assert len(re.findall(r'<circle[^>]*fill="#0072B2"', html)) == 2


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello\nworld\n", "no powermetrics sample found"),
        (b"Energy Model ::  :: ANE (mJ) = 0.00W\ngarbage\n", "line 2: not an IOReport"),
    ],
)
def test_bad_captures(data, message):
    with pytest.raises(ModelError, match=message):
        parse_power(data, "bad")


def test_unreadable_file(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        power(tmp_path / "missing.txt")


def test_power_command(tmp_path):
    from typer.testing import CliRunner

    from anedoctor.cli import app

    runner = CliRunner()
    out = runner.invoke(
        app, ["power", str(PLIST_M1), "--json", str(tmp_path / "p.json"), "--html", str(tmp_path / "p.html")]
    )
    assert out.exit_code == 0, out.output
    assert "ANE: mean 0.0 mW" in out.output and "CPU: mean 44.1 mW, max 44.1 mW, 89.0 mJ" in out.output
    assert json.loads((tmp_path / "p.json").read_text())["summary"]["energy_mj"]["cpu"] == 89
    assert (tmp_path / "p.html").read_text().startswith("<!doctype html>")
    missing = runner.invoke(app, ["power", str(HEADER_ONLY)])
    assert missing.exit_code == 0 and "ANE: not measured" in missing.output
    cut = tmp_path / "cut.plist"
    cut.write_bytes(PLIST_M2U.read_bytes()[:3000])
    bad = runner.invoke(app, ["power", str(cut)])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "truncated or malformed plist" in bad.output


def test_plist_sample_without_ane_keys_and_monterey_package_energy():
    """Derived from the real M1 sample (keys removed / renamed: synthetic): macOS 12 wrote package_energy and no
    combined_power (tlkh/asitop #51); a sample without ane_* keys has no ANE measurement."""
    text = PLIST_M1.read_text()
    text = re.sub(r"\s*<key>ane_energy</key>\s*<integer>0</integer>\s*<key>ane_power</key>\s*<real>0</real>", "", text)
    text = re.sub(
        r"<key>combined_power</key>\s*<real>59.4301</real>", "<key>package_energy</key><integer>120</integer>", text
    )
    r = parse_power(text.encode(), "monterey.plist")
    s = r.samples[0]
    assert s.ane_mw is None and r.summary["energy_mj"]["ane"] is None
    assert s.combined_mw == pytest.approx(120 * 1000 / 2019.17875) and r.summary["energy_mj"]["combined"] == 120


def test_intel_package_power_line():
    """The Intel Mac line quoted in joular/joularjx #54: no ANE there."""
    r = parse_power(b"Intel energy model derived package power (CPUs+GT+SA): 8.53W\n", "intel.txt")
    assert r.samples[0].combined_mw == pytest.approx(8530.0) and r.samples[0].ane_mw is None


def test_bandwidth_counters_in_plist_and_text():
    """bandwidth_counters inserted into the real M1 sample (synthetic values; the layout asitop's parsers.py reads:
    a list of {name, value} in bytes/s); and a text Bandwidth section (layout unverified, see the module doc)."""
    counters = (
        "<key>bandwidth_counters</key><array><dict><key>name</key><string>ANE DCS RD</string>"
        "<key>value</key><real>232000000</real></dict><dict><key>name</key><string>ANE DCS WR</string>"
        "<key>value</key><real>167000000</real></dict></array>"
    )
    text = PLIST_M1.read_text().replace("<key>thermal_pressure</key>", counters + "<key>thermal_pressure</key>")
    r = parse_power(text.encode(), "bw.plist")
    assert r.samples[0].bandwidth_mb_s == {"ANE DCS RD": 232.0, "ANE DCS WR": 167.0}
    assert r.summary["bandwidth_mb_s"]["ANE DCS RD"] == {"mean": 232.0, "max": 232.0}
    assert "Bandwidth" in r.to_html()
    block = b"**** Bandwidth counters ****\n\nANE RD: 0.23 GB/s\nANE WR: 167 MB/s\n"
    t = parse_power(TEXT_M4.read_bytes() + b"\n" + block, "bw.txt")
    assert t.samples[0].bandwidth_mb_s == {"ANE RD": pytest.approx(230.0), "ANE WR": 167.0}


# ---- IOReport energy counters (the sudoless capture) ------------------------------------------------------
MACMON_M2U = DATA / "08_fragment_ioreport_energy_model_M2Ultra_macmon_debug.txt"
MACMON_A18 = DATA / "09_fragment_ioreport_energy_model_A18_MacBookNeo_macmon_debug.txt"
UNIT_J = {"mJ": 1e-3, "uJ": 1e-6, "nJ": 1e-9}


def dump_deltas(path: Path) -> list[tuple[str, str, int]]:
    """The counter deltas a macmon debug dump implies: it prints delta / 100 ms in watts (vladkens/macmon
    src/debug.rs `let dur = 100`, src/sources.rs cfio_watts), so delta = W x 0.1 s in the channel's unit."""
    rows = re.findall(r":: ([^:]+?) \((mJ|uJ|nJ)\) = ([\d.]+)W", path.read_text())
    return [(name, unit, round(float(w) * 0.1 / UNIT_J[unit])) for name, unit, w in rows]


def test_counter_deltas_to_power_with_the_real_dump_numbers():
    """Every channel of both real dumps converts back to the watts macmon printed, in each of the three units."""
    from anedoctor.measure.powermetrics import channel_mw, ioreport_sample

    for path in (MACMON_M2U, MACMON_A18):
        deltas = dump_deltas(path)
        assert {unit for _, unit, _ in deltas} == {"mJ", "uJ", "nJ"}
        printed = {
            name: float(w) * 1000
            for name, _, w in re.findall(r":: ([^:]+?) \(([mun]J)\) = ([\d.]+)W", path.read_text())
        }
        s = ioreport_sample(deltas, 100.0)
        assert s.channels_mw == pytest.approx(printed) and s.elapsed_ms == 100.0
        assert s.channels_mw == pytest.approx(power(path).samples[0].channels_mw)  # the dump reader: the same path
    assert dict((n, d) for n, _, d in dump_deltas(MACMON_M2U))["DCS0_0"] == 270  # 2.70 W: 270 mJ in 100 ms
    assert channel_mw(270, "mJ", 100.0) == pytest.approx(2700.0)
    assert channel_mw(27_000_000, "nJ", 100.0) == pytest.approx(270.0)  # 'GPU Energy (nJ) = 0.27W'
    assert channel_mw(270, "mJ", 250.0) == pytest.approx(1080.0)  # the same energy over a longer window


def test_ioreport_rails_and_energy_over_several_windows():
    """Two windows: the real M2 Ultra deltas over 100 ms, then the real A18 deltas over 150 ms (a synthetic
    pairing: one machine would not change channels); energy per rail is the counters' own sum."""
    from anedoctor.measure.powermetrics import PowerReport, ioreport_sample

    a = ioreport_sample(dump_deltas(MACMON_M2U), 100.0, 0)
    b = ioreport_sample(dump_deltas(MACMON_A18), 150.0, 1)
    assert (a.ane_mw, b.ane_mw) == (0.0, 0.0)  # ANE0_0 + ANE0_1 / ANE: present and idle, measured as 0
    assert a.gpu_mw == pytest.approx(270.0) and b.gpu_mw == pytest.approx(60.0)  # 9 mJ over 150 ms
    assert a.cpu_mw is None  # the fragments hold no CPU channel: not measured, never 0
    s = PowerReport("ioreport", "ioreport", [a, b]).summary
    assert s["energy_mj"]["gpu"] == pytest.approx(27.0 + 9.0) and s["duration_ms"] == 250.0
    assert s["gpu_mw"]["mean"] == pytest.approx(36.0 / 0.25) and s["cpu_mw"]["mean"] is None
    busy = [(n, u, d + 40 if n.startswith("ANE0_") else d) for n, u, d in dump_deltas(MACMON_M2U)]  # synthetic
    assert ioreport_sample(busy, 100.0).ane_mw == pytest.approx(800.0)  # 2 dies x 40 mJ in 0.1 s
    die_cpu = [("DIE_0_CPU Energy", "mJ", 50), ("DIE_1_CPU Energy", "mJ", 30)]  # the Ultra naming (macmon)
    assert ioreport_sample(die_cpu, 100.0).cpu_mw == pytest.approx(800.0)


@pytest.mark.parametrize(
    "deltas, elapsed, message",
    [
        ([("ANE", "24Mticks", 5)], 100.0, "unit '24Mticks' is not an energy unit"),
        ([("ANE", "mJ", 5)], 0.0, "the window is 0.0 ms"),
        ([("ANE", "mJ", 5), ("ANE", "mJ", 6)], 100.0, "channel 'ANE' appears twice"),
    ],
)
def test_bad_ioreport_samples(deltas, elapsed, message):
    from anedoctor.measure.powermetrics import ioreport_sample

    with pytest.raises(ModelError, match=message):
        ioreport_sample(deltas, elapsed)


@pytest.mark.skipif(sys.platform == "darwin", reason="the off-Mac message")
def test_power_without_powermetrics_or_ioreport_is_not_measured(monkeypatch):
    from anedoctor.measure import macos

    assert macos.ioreport_available() == "IOReport energy counters exist only on macOS"
    monkeypatch.setattr(macos, "powermetrics_available", lambda: "powermetrics needs root")
    out = macos.power_while_predicting(Path("m.mlmodelc"), "all", 5, {})
    assert out == {"measured": False, "reason": "powermetrics needs root; IOReport energy counters exist only on macOS"}


@pytest.mark.skipif(sys.platform != "darwin", reason="needs macOS (libIOReport)")
def test_ioreport_capture_on_a_mac():
    from anedoctor.measure import macos

    assert macos.ioreport_available() is None
    r = macos.capture_ioreport(0.5, interval_ms=100)
    assert r.format == "ioreport" and len(r.samples) >= 3
    assert all(s.elapsed_ms > 0 and s.gpu_mw is not None and s.gpu_mw >= 0 for s in r.samples)
    assert any(k.startswith("ANE") for k in r.samples[0].channels_mw) and r.samples[0].ane_mw is not None
