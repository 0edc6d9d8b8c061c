"""How a PCI NIC is reached (bus/pci_claim.c), decided on fake sysfs trees, and the one PCI id
table (the native driver registry) that the device listing reads."""

from __future__ import annotations

import os
from pathlib import Path

from aioixy._ffi import ffi, lib
from aioixy.devices import netlist

ADDR = "0000:03:00.0"


def fake_sysfs(root: Path, driver: str | None, group: str | None,
               group_type: str | None = None) -> str:
    """A sysfs tree with one PCI device: its driver binding and IOMMU group as symlinks."""
    dev = root / "devices" / "pci0000:00" / ADDR
    dev.mkdir(parents=True)
    (root / "bus" / "pci" / "devices").mkdir(parents=True)
    os.symlink(dev, root / "bus" / "pci" / "devices" / ADDR)
    if driver:
        d = root / "bus" / "pci" / "drivers" / driver
        d.mkdir(parents=True)
        os.symlink(d, dev / "driver")
    if group:
        g = root / "kernel" / "iommu_groups" / group
        g.mkdir(parents=True)
        if group_type:
            (g / "type").write_text(group_type + "\n")
        os.symlink(g, dev / "iommu_group")
    return str(root)


def choose(root: str, want_vfio: bool = False) -> tuple[int, str]:
    rc = lib.aioixy_pci_choose_access(root.encode(), ADDR.encode(), want_vfio)
    return rc, ffi.string(lib.aioixy_last_error()).decode() if rc < 0 else ""


def test_vfio_pci_binding_means_vfio(tmp_path):
    assert choose(fake_sysfs(tmp_path, "vfio-pci", "17"))[0] == lib.AIOIXY_PCI_VFIO


def test_iommu_group_without_vfio_is_a_clear_error_not_physical_addresses(tmp_path):
    # the kernel driver still bound, IOMMU on: physical addresses would be blocked
    rc, why = choose(fake_sysfs(tmp_path, "ixgbe", "17", "DMA"))
    assert rc == -lib.AIOIXY_EINVAL
    assert "IOMMU group 17" in why and "bound to ixgbe" in why and "vfio-pci" in why


def test_iommu_group_unbound_device_is_an_error_too(tmp_path):
    rc, why = choose(fake_sysfs(tmp_path, None, "5", "DMA-FQ"))
    assert rc == -lib.AIOIXY_EINVAL and "no driver" in why


def test_identity_domain_allows_physical_addresses(tmp_path):
    # iommu=pt: the group's domain does not translate, physical addresses reach memory
    root = fake_sysfs(tmp_path, "ixgbe", "9", "identity")
    assert choose(root)[0] == lib.AIOIXY_PCI_SYSFS
    rc, why = choose(root, want_vfio=True)
    assert rc == -lib.AIOIXY_EINVAL and "vfio-pci" in why


def test_no_iommu_means_sysfs_and_physical_addresses(tmp_path):
    root = fake_sysfs(tmp_path, "ixgbe", None)
    assert choose(root)[0] == lib.AIOIXY_PCI_SYSFS
    rc, why = choose(root, want_vfio=True)
    assert rc == -lib.AIOIXY_EINVAL and "no IOMMU group" in why


def test_device_listing_reads_the_native_registry():
    ids = []
    vendor, device, name = ffi.new("uint16_t *"), ffi.new("uint16_t *"), ffi.new("const char **")
    i = 0
    while lib.aioixy_driver_pci_id(i, vendor, device, name):
        ids.append(((vendor[0], device[0]), ffi.string(name[0]).decode()))
        i += 1
    assert dict(ids) == netlist.DRIVERS
    assert netlist.DRIVERS[(0x8086, 0x10FB)] == "ixgbe"  # X520 SFP+
    assert netlist.DRIVERS[(0x1AF4, 0x1000)] == "virtio"
