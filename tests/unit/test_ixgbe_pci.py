"""How a PCI NIC is reached (bus/pci_claim.c), decided on fake sysfs trees, and the one PCI id
table (the native driver registry) that the device listing reads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from aioixy._ffi import ffi, lib
from aioixy.devices import netlist

ADDR = "0000:03:00.0"


def fake_sysfs(root: Path, driver: str | None, group: str | None,
               group_type: str | None = None, vfio_loaded: bool = False) -> str:
    """A sysfs tree with one PCI device: its driver binding and IOMMU group as symlinks, the
    files a bind writes to, and the vfio-pci driver if it is loaded."""
    dev = root / "devices" / "pci0000:00" / ADDR
    dev.mkdir(parents=True)
    (root / "bus" / "pci" / "devices").mkdir(parents=True)
    os.symlink(dev, root / "bus" / "pci" / "devices" / ADDR)
    (dev / "driver_override").write_text("")
    (root / "bus" / "pci" / "drivers_probe").write_text("")
    if vfio_loaded:
        (root / "bus" / "pci" / "drivers" / "vfio-pci").mkdir(parents=True)
    if driver:
        d = root / "bus" / "pci" / "drivers" / driver
        d.mkdir(parents=True)
        (d / "unbind").write_text("")
        os.symlink(d, dev / "driver")
    if group:
        g = root / "kernel" / "iommu_groups" / group
        g.mkdir(parents=True)
        if group_type:
            (g / "type").write_text(group_type + "\n")
        os.symlink(g, dev / "iommu_group")
    return str(root)


def choose(root: str, want_vfio: bool = True) -> tuple[int, str]:
    """The access decision; want_vfio=True is PortConfig.vfio's default."""
    rc = lib.aioixy_pci_choose_access(root.encode(), ADDR.encode(), want_vfio)
    return rc, ffi.string(lib.aioixy_last_error()).decode() if rc < 0 else ""


def test_vfio_pci_binding_means_vfio(tmp_path):
    assert choose(fake_sysfs(tmp_path, "vfio-pci", "17"))[0] == lib.AIOIXY_PCI_VFIO


def test_iommu_group_means_vfio_and_binding_it_to_vfio_pci(tmp_path):
    # the kernel driver still bound, IOMMU on: VFIO is preferred (as ixy does), so the device
    # is to be handed to vfio-pci rather than the user told to do it
    root = fake_sysfs(tmp_path, "ixgbe", "17", "DMA", vfio_loaded=True)
    assert choose(root)[0] == lib.AIOIXY_PCI_VFIO_BIND
    root2 = fake_sysfs(tmp_path / "unbound", None, "5", "DMA-FQ", vfio_loaded=True)
    assert choose(root2)[0] == lib.AIOIXY_PCI_VFIO_BIND


def test_iommu_group_without_the_vfio_pci_module_says_to_load_it(tmp_path):
    rc, why = choose(fake_sysfs(tmp_path, "ixgbe", "17", "DMA"))
    assert rc == -lib.AIOIXY_ENODEV
    assert "IOMMU group 17" in why and "modprobe vfio-pci" in why


def test_identity_domain_allows_physical_addresses_only_when_vfio_is_declined(tmp_path):
    # iommu=pt: the group's domain does not translate; VFIO is still preferred (it confines the
    # device's DMA), physical addresses when the caller declines VFIO
    root = fake_sysfs(tmp_path, "ixgbe", "9", "identity", vfio_loaded=True)
    assert choose(root)[0] == lib.AIOIXY_PCI_VFIO_BIND
    assert choose(root, want_vfio=False)[0] == lib.AIOIXY_PCI_SYSFS


def test_translating_iommu_and_vfio_declined_is_a_clear_error(tmp_path):
    rc, why = choose(fake_sysfs(tmp_path, "ixgbe", "17", "DMA", vfio_loaded=True), want_vfio=False)
    assert rc == -lib.AIOIXY_EINVAL
    assert "IOMMU group 17" in why and "bound to ixgbe" in why and "vfio=True" in why


def test_no_iommu_means_sysfs_and_physical_addresses(tmp_path):
    root = fake_sysfs(tmp_path, "ixgbe", None)
    assert choose(root)[0] == lib.AIOIXY_PCI_SYSFS
    assert choose(root, want_vfio=False)[0] == lib.AIOIXY_PCI_SYSFS


def _bind(root: str) -> tuple[int, str]:
    rc = lib.aioixy_pci_bind_vfio(root.encode(), ADDR.encode())
    return rc, ffi.string(lib.aioixy_last_error()).decode() if rc < 0 else ""


def test_binding_to_vfio_pci_writes_what_the_kernel_asks_for(tmp_path):
    root = Path(fake_sysfs(tmp_path, "ixgbe", "17", "DMA", vfio_loaded=True))
    dev = root / "bus" / "pci" / "devices" / ADDR
    kernel = Kernel(root)
    kernel.start()
    try:
        assert _bind(str(root)) == (0, "")
    finally:
        kernel.join()
    assert (dev / "driver_override").read_text() == "vfio-pci"
    assert (root / "bus" / "pci" / "drivers" / "ixgbe" / "unbind").read_text() == ADDR
    assert (root / "bus" / "pci" / "drivers_probe").read_text() == ADDR
    assert os.readlink(dev / "driver").endswith("/vfio-pci")


def test_binding_that_the_kernel_does_not_do_is_an_error(tmp_path):
    root = fake_sysfs(tmp_path, "ixgbe", "17", "DMA", vfio_loaded=True)
    rc, why = _bind(root)
    assert rc == -lib.AIOIXY_EIO and "bound to ixgbe" in why


class Kernel(threading.Thread):
    """The part of the kernel the bind needs, on the fake tree: once the device was unbound and
    drivers_probe written, bind it to the driver named in driver_override."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root

    def run(self) -> None:
        dev = self.root / "bus" / "pci" / "devices" / ADDR
        probe = self.root / "bus" / "pci" / "drivers_probe"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and probe.read_text() != ADDR:
            time.sleep(0.005)
        override = (dev / "driver_override").read_text()
        (dev / "driver").unlink()
        os.symlink(self.root / "bus" / "pci" / "drivers" / override, dev / "driver")


def test_device_listing_reads_the_native_registry():
    ids = []
    vendor, device, name = ffi.new("uint16_t *"), ffi.new("uint16_t *"), ffi.new("const char **")
    i = 0
    while lib.aioixy_driver_pci_id(i, vendor, device, name):
        ids.append(((vendor[0], device[0]), ffi.string(name[0]).decode()))
        i += 1
    assert dict(ids) == netlist.DRIVERS
    assert netlist.DRIVERS[(0x8086, 0x10FB)] == "ixgbe"  # X520 SFP+
    assert netlist.DRIVERS[(0x1AF4, 0x1000)] == "virtio"  # legacy / transitional
    assert netlist.DRIVERS[(0x1AF4, 0x1041)] == "virtio"  # modern only
