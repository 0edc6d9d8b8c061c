"""Status lines in units a person reads: scaled packet and bit rates, counts with separators;
the JSON summaries keep raw numbers."""

from __future__ import annotations

import re

import pytest

from aioixy.jobs import units

from .procs import last_json, run


@pytest.mark.parametrize(("value", "text"), [
    (0, "0 pps"), (0.5, "0.50 pps"), (7, "7.00 pps"), (950, "950 pps"), (999.4, "999 pps"),
    (999.6, "1.00 kpps"), (2990, "2.99 kpps"), (12_345, "12.3 kpps"), (123_456, "123 kpps"),
    (999_960, "1.00 Mpps"), (1_234_567, "1.23 Mpps"), (14_880_952, "14.9 Mpps"),
    (3.3e9, "3.30 Gpps"), (-2500, "-2.50 kpps"),
])
def test_packet_rates_scale_to_three_significant_digits(value, text):
    assert units.packet_rate(value) == text


def test_bit_rates_count_the_frames_bits():
    assert units.bit_rate(0) == "0 bit/s"
    assert units.bit_rate(125) == "1.00 kbit/s"
    assert units.bit_rate(14_880_952 * 60) == "7.14 Gbit/s"  # 10 GbE line rate of 60-byte frames
    assert units.rates(3000, 180_000) == "3.00 kpps, 1.44 Mbit/s"
    assert units.count(1234567) == "1,234,567" and units.count(0) == "0"
    assert units.scaled(float("inf"), "pps") == "inf pps"


STATUS = re.compile(r"^pktgen: [\d,]+ packets, [\d.]+ (k?)pps, [\d.]+ ([kM]?)bit/s, "
                    r"[\d,]+ rx dropped$")


def test_the_cli_status_and_summary_lines_use_the_units_and_json_keeps_raw_numbers():
    # a kernel-port-like rate: the old lines read "0.003 Mpps" for the whole run
    r = run(["-m", "aioixy", "pktgen", "null", "--rate", "3000", "--duration", "1.6"])
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("pktgen: ")]
    status = [m for ln in lines if (m := STATUS.match(ln))]
    assert len(status) >= 2, r.stderr
    assert all(m.group(1) == "k" and m.group(2) == "M" for m in status[1:]), r.stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert re.match(r"^pktgen: [\d,]+ packets in [\d.]+ s \([\d.]+ kpps, [\d.]+ Mbit/s\); "
                    r"mempools whole$", summary), r.stdout + r.stderr
    r = run(["-m", "aioixy", "pktgen", "null", "--rate", "3000", "--duration", "1",
             "--json"])
    s = last_json(r.stdout)
    assert isinstance(s["pps"], int) and isinstance(s["bps"], int)
    assert abs(s["bps"] - s["bytes"] * 8 / s["seconds"]) < s["bps"] * 0.01  # seconds rounded
    assert "pktgen: " not in r.stderr  # --json: no status lines


def test_the_demo_lines_use_the_units():
    r = run(["-m", "aioixy", "demo", "--duration", "1.2"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(re.match(r"^\[ *[\d.]+s\] fwd +[\d.]+ [kMG]?pps, [\d.]+ [kMG]?bit/s +"
                        r"rx +[\d.]+ [kMG]?pps +dropped [\d,]+$", ln) for ln in lines[:-1]), lines
    assert re.match(r"^summary: forwarded [\d,]+ packets \([\d.]+ [kMG]?pps, [\d.]+ [kMG]?bit/s\)"
                    r" null -> pair:demo:a, received [\d,]+ on pair:demo:b \([\d.]+ [kMG]?pps\)",
                    lines[-1]), lines[-1]
    r = run(["-m", "aioixy", "demo", "--duration", "1", "--json"])
    s = last_json(r.stdout)
    assert isinstance(s["forwarded"], int) and isinstance(s["bps_forwarded"], int)
    assert s["bps_forwarded"] > 0
