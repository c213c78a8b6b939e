#!/usr/bin/env python3
"""MRTD of a TDVF image, a second implementation (Python standard library only) that
tests/tests/image.rs compares with `cleanroom measure tdx --tdvf`.

Written from the TDX Virtual Firmware Design Guide (metadata: OVMF GUIDed table at the end of
the image, entry e47a6535-984a-4798-865e-4685a7bf8ec2 = offset of the "TDVF" descriptor from
the end) and the TDX module ABI (TDH.MEM.PAGE.ADD and TDH.MR.EXTEND records of 128 bytes,
MR.EXTEND followed by the 256 bytes of the chunk; SHA-384 over the stream).

usage: tdvf_mrtd.py FIRMWARE [single-pass|two-pass]   -> prints MRTD in hex
"""
import hashlib
import struct
import sys
import uuid

FOOTER = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
TDX_METADATA = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2").bytes_le


def guided_table(fw):
    end = len(fw) - 0x20
    assert fw[end - 16:end] == FOOTER, "no OVMF GUIDed table"
    (total,) = struct.unpack_from("<H", fw, end - 18)
    start = end - total
    entries = {}
    pos = end - 18
    while pos > start:
        guid = fw[pos - 16:pos]
        (size,) = struct.unpack_from("<H", fw, pos - 18)
        entries[guid] = fw[pos - size:pos - 18]
        pos -= size
    return entries


def sections(fw):
    entry = guided_table(fw)[TDX_METADATA]
    (from_end,) = struct.unpack("<I", entry[-4:])
    base = len(fw) - from_end
    sig, _length, version, count = struct.unpack_from("<4sIII", fw, base)
    assert sig == b"TDVF" and version == 1
    return [struct.unpack_from("<IIQQII", fw, base + 16 + 32 * i) for i in range(count)]


def mrtd(fw, order):
    h = hashlib.sha384()

    def page_add(gpa):
        h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))

    def mr_extend(gpa, data):
        h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))
        h.update(data)

    for off, raw, gpa, size, _typ, attr in sections(fw):
        content = fw[off:off + raw].ljust(size, b"\0")
        pages = range(0, size, 4096)
        add = not attr & 2
        extend = bool(attr & 1)

        def extend_page(p):
            for c in range(p, p + 4096, 256):
                mr_extend(gpa + c, content[c:c + 256])

        if order == "two-pass":
            for p in pages:
                if add:
                    page_add(gpa + p)
            for p in pages:
                if extend:
                    extend_page(p)
        else:
            for p in pages:
                if add:
                    page_add(gpa + p)
                if extend:
                    extend_page(p)
    return h.hexdigest()


if __name__ == "__main__":
    image = open(sys.argv[1], "rb").read()
    print(mrtd(image, sys.argv[2] if len(sys.argv) > 2 else "single-pass"))
