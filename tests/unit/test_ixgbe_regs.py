"""The driver's register table (drivers/ixgbe_regs.h) and the model's own (model/sim_regs.h) agree
on every register, bit and descriptor field both define. They are written separately on
purpose: a wrong offset shared by driver and model would be invisible to every other test.
The values are taken from the C compiler (each header compiled on its own), not parsed by hand,
so an expression, a shift or a macro argument means what it means in C."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tiers import unavailable

NATIVE = Path(__file__).resolve().parents[2] / "aioixy" / "_native"
DRIVER = NATIVE / "drivers" / "ixgbe_regs.h"
MODEL = NATIVE / "model" / "sim_regs.h"
# per-queue/indexed macros are evaluated at these arguments
INDEXES = (0, 1, 7, 15)
# descriptor fields both tables lay out: (union, member)
FIELDS = [("ixgbe_adv_rx_desc", m) for m in (
    "read.pkt_addr", "read.hdr_addr", "wb.pkt_info", "wb.rss_hash", "wb.status_error",
    "wb.length", "wb.vlan")] + [("ixgbe_adv_tx_desc", m) for m in (
        "read.buffer_addr", "read.cmd_type_len", "read.olinfo_status", "wb.status")]
# what only the driver defines, and why the model has no business knowing it
DRIVER_ONLY = {
    "IXGBE_EIMC_ALL": "the driver's choice of mask",
    "IXGBE_GIO_DISABLE_MS": "how long the driver waits",
    "IXGBE_MIN_BUF_SIZE": "the driver's buffer policy",
    "IXGBE_TX_MAX_LEN": "the driver's tx length bound",
    "IXGBE_RXD_ERR_FRAME": "which errors the driver drops on",
    "IXGBE_TXDCTL_PTHRESH": "field builders the model has no use for",
    "IXGBE_TXDCTL_HTHRESH": "field builders the model has no use for",
    "IXGBE_TXDCTL_WTHRESH": "field builders the model has no use for",
}


def _cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        unavailable("a C compiler (cc) to evaluate the register headers")
    return cc


def values(header: Path, tmp: Path) -> dict[str, int]:
    """Every IXGBE_* macro of `header` (at INDEXES for the ones that take an index) and the
    descriptor field offsets, as the compiler computes them."""
    cc = _cc()
    defs = subprocess.run([cc, "-E", "-dM", "-include", "stdint.h", str(header)],
                          capture_output=True, text=True, check=True).stdout
    lines = []
    for m in re.finditer(r"^#define (IXGBE_\w+)(\(\w+\))?\s+(\S.*)$", defs, re.M):
        name, arg = m.group(1), m.group(2)
        if arg:
            lines += [f'    printf("{name}({i}) %llu\\n", (unsigned long long)({name}({i})));'
                      for i in INDEXES]
        else:
            lines.append(f'    printf("{name} %llu\\n", (unsigned long long)({name}));')
    for union, member in FIELDS:
        lines.append(f'    printf("offsetof({union}.{member}) %zu\\n", '
                     f'offsetof(union {union}, {member}));')
    src = tmp / f"{header.stem}_values.c"
    src.write_text(f'#include <stddef.h>\n#include <stdio.h>\n#include "{header}"\n'
                   "int main(void)\n{\n" + "\n".join(lines) + "\n    return 0;\n}\n")
    exe = tmp / header.stem
    subprocess.run([cc, "-std=c11", "-w", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.rsplit(" ", 1) for line in out.splitlines())}


def disagreements(driver: dict[str, int], model: dict[str, int]) -> list[str]:
    return [f"{k}: driver 0x{driver[k]:x}, model 0x{model[k]:x}"
            for k in sorted(driver.keys() & model.keys()) if driver[k] != model[k]]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[dict[str, int], dict[str, int]]:
    tmp = tmp_path_factory.mktemp("regs")
    return values(DRIVER, tmp), values(MODEL, tmp)


def test_driver_and_model_tables_agree(tables):
    driver, model = tables
    assert not disagreements(driver, model)


def test_the_model_knows_every_hardware_fact_the_driver_uses(tables):
    driver, model = tables
    base = {k.split("(")[0] for k in driver.keys() - model.keys()}
    assert base <= set(DRIVER_ONLY), sorted(base - set(DRIVER_ONLY))
    assert len(driver.keys() & model.keys()) > 150  # registers, bits and descriptor fields


def test_the_model_does_not_include_the_drivers_table():
    for src in sorted((NATIVE / "model").glob("*.[ch]")):
        assert "ixgbe_regs.h" not in re.findall(r'#\s*include\s+"([^"]+)"', src.read_text()), src


def test_a_wrong_offset_in_the_driver_table_is_caught(tables, tmp_path):
    """The check can fail: a driver header with RDT one register off disagrees with the model."""
    _, model = tables
    wrong = tmp_path / "ixgbe_regs.h"
    text = DRIVER.read_text()
    right = "#define IXGBE_RDT(q) (0x01018u"
    assert right in text
    wrong.write_text(text.replace(right, "#define IXGBE_RDT(q) (0x0101Cu"))
    bad = disagreements(values(wrong, tmp_path), model)
    assert bad and all(line.startswith("IXGBE_RDT(") for line in bad), bad
