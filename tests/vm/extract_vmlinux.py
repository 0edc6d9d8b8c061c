"""Pull the uncompressed ELF kernel out of a bzImage (it is stored xz- or gzip-compressed).

QEMU can boot the ELF directly through its PVH entry note, which under TCG saves the seconds
the bzImage would spend decompressing itself. Usage: extract_vmlinux.py BZIMAGE OUT
"""

import lzma
import sys
import zlib

SIGNATURES = (
    (b"\xfd7zXZ\x00", lambda data: lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)),
    (b"\x1f\x8b\x08", lambda data: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)),
)


def extract(image: bytes) -> bytes:
    for magic, inflate in SIGNATURES:
        pos = image.find(magic)
        while pos >= 0:
            try:
                out = inflate(image[pos:])
            except (lzma.LZMAError, zlib.error, EOFError):
                out = b""
            if out.startswith(b"\x7fELF"):
                return out
            pos = image.find(magic, pos + 1)
    raise SystemExit("no compressed ELF kernel found in the image")


def main() -> None:
    src, dst = sys.argv[1:3]
    with open(src, "rb") as f:
        elf = extract(f.read())
    with open(dst, "wb") as f:
        f.write(elf)
    print(f"vmlinux: {len(elf)} bytes")


if __name__ == "__main__":
    main()
