"""The sim-82599 model from Python: its fault log, and raw register access for experiments.

Open a model port like any device::

    async with aioixy.open("sim-82599:lab:0") as a, aioixy.open("sim-82599:lab:1") as b:
        ...                       # port 0 and port 1 of card "lab" are cabled together

Card options (``options=`` of the first open of a card): ``wire=cable`` (default: port 0 <->
port 1), ``wire=loop`` (each port receives what it sends), ``wire=gen`` (each port faces a
traffic generator: ``flows=N``, ``size=BYTES``, ``count=N`` frames, or endless), and
``peer=DEVICE`` (port 0 cabled to a software device: ``null`` or a ``pair:NAME:END``). With
``flow_control=True`` a full receive ring pauses the sender instead of dropping. The board:
``id=10FB`` (the PCI device id it plays), ``lms=N`` (the link mode its EEPROM loads into
AUTOC.LMS, 0..7). Slow hardware: ``secrx=MS|never`` (SECRXSTAT.SECRX_RDY that long after
SECRXCTRL.RX_DIS) and ``gio=MS|never`` (STATUS.GIO clears that long after CTRL.GIO_DIS).
Bad frames: ``crcerr=N`` (every Nth generated frame has a bad CRC). The driver's own options
ride along: ``irq=msix`` (sleep on MSI-X interrupts, the model's eventfd messages) and
``itr=US`` (their throttling interval); see docs/ixgbe.md.

:class:`RegisterAccess` lets a test (or a student) play the driver by hand: the model checks
those accesses exactly as it checks the real driver's, so it is how the model's mistake
detection is tested.
"""

from __future__ import annotations

from aioixy._ffi import ffi, lib
from aioixy.errors import from_native


def faults(card: str = "") -> list[str]:
    """Driver mistakes the model recorded on `card` (all live cards when empty)."""
    buf = ffi.new("char[]", 16384)
    n = lib.aioixy_sim_faults(card.encode(), buf, len(buf))
    text = ffi.string(buf).decode()
    return [line for line in text.splitlines() if line][:n]


def total_faults() -> int:
    """Every fault any model card recorded in this process, including cards already gone."""
    return int(lib.aioixy_sim_total_faults())


def toeplitz(key: bytes, data: bytes) -> int:
    """The model's RSS hash of `data` under the 40-byte `key`."""
    if len(key) != 40:
        raise ValueError("an RSS key is 40 bytes")
    return int(lib.aioixy_toeplitz(key, data, len(data)))


def interrupts(card: str, port: int = 0, vector: int = 0) -> tuple[int, int]:
    """(messages vector `vector` of a live card's port sent, messages EITR held back on that
    port): the model's own count, to compare with what a driver saw."""
    p = lib.aioixy_sim_find(card.encode(), port)
    if p == ffi.NULL:
        raise LookupError(f"no sim-82599 card {card!r}")
    sent, held = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    lib.aioixy_sim_irq_counts(p, vector, sent, held)
    return int(sent[0]), int(held[0])


class RegisterAccess:
    """Raw BAR0 access to one model port, without the driver (a context manager)."""

    def __init__(self, card: str, port: int = 0, options: str = "",
                 flow_control: bool = False) -> None:
        self._port = lib.aioixy_sim_attach(card.encode(), port, options.encode(), flow_control)
        if self._port == ffi.NULL:
            raise from_native(-lib.aioixy_last_errcode())
        self.card = card

    def read(self, reg: int) -> int:
        return int(lib.aioixy_sim_mmio_read(self._port, reg))

    def write(self, reg: int, value: int) -> None:
        lib.aioixy_sim_mmio_write(self._port, reg, value & 0xFFFFFFFF)

    def msix(self, vector: int, fd: int) -> None:
        """Make eventfd `fd` vector `vector`'s MSI-X message target (-1: none), as VFIO's
        MSI-X trigger does on a card. Detach forgets it; the fd stays the caller's."""
        if lib.aioixy_sim_msix_attach(self._port, vector, fd) != 0:
            raise from_native(-lib.aioixy_last_errcode())

    def close(self) -> None:
        if self._port != ffi.NULL:
            lib.aioixy_sim_detach(self._port)
            self._port = ffi.NULL

    def __enter__(self) -> RegisterAccess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
