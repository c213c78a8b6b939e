#!/usr/bin/env python3
"""TDX RTMR1 and RTMR2 of a direct kernel boot by TDVF, a second implementation (Python
standard library only) that tests/tests/image.rs compares with `cleanroom measure tdx
--kernel`.

Written from the sources, apart from attest/src/rtmr.rs:
- edk2 OvmfPkg/Tcg/TdTcg2Dxe/MeasureBootPeCoff.c (the PE image digest: the header minus the
  CheckSum and the certificate directory entry, the sections' raw data sorted by file offset,
  the rest of the file minus the certificate table), TdTcg2Dxe.c (the ReadyToBoot and
  ExitBootServices events extended into RTMR1);
- edk2 OvmfPkg/Library/X86QemuLoadImageLib (the load options: "initrd=initrd " before the
  command line from edk2-stable202508, " initrd=initrd" after it before);
- QEMU hw/i386/x86-common.c x86_load_linux and hw/i386/pc_q35.c (the setup header patches of
  the fw_cfg kernel blob and where the initrd goes for a RAM size);
- Linux drivers/firmware/efi/libstub (the load options, then the initrd, into PCR 9 = RTMR2).

usage: tdx_rtmr.py KERNEL INITRD CMDLINE [--qemu-patched MEMORY_BYTES [ACPI_DATA_SIZE]]
                   [--initrd-suffix]
prints "rtmr1 <hex>" and "rtmr2 <hex>".
"""
import hashlib
import struct
import sys


def h384(data):
    return hashlib.sha384(data).digest()


def replay(digests):
    reg = bytes(48)
    for d in digests:
        reg = hashlib.sha384(reg + d).digest()
    return reg


def pe_digest(img):
    """MeasurePeImageAndExtend, step by step."""
    assert img[:2] == b"MZ", "no DOS header"
    (lfanew,) = struct.unpack_from("<I", img, 0x3C)
    assert img[lfanew:lfanew + 4] == b"PE\0\0", "no PE signature"
    nsect, = struct.unpack_from("<H", img, lfanew + 6)
    optsize, = struct.unpack_from("<H", img, lfanew + 20)
    oh = lfanew + 24
    magic, = struct.unpack_from("<H", img, oh)
    if magic == 0x20B:
        nrva_off, dd_off = 108, 112
    elif magic == 0x10B:
        nrva_off, dd_off = 92, 96
    else:
        raise ValueError("optional header magic %#x" % magic)
    hdr_size, = struct.unpack_from("<I", img, oh + 60)
    nrva, = struct.unpack_from("<I", img, oh + nrva_off)
    csum = oh + 64
    parts = [img[:csum]]
    if nrva <= 4:
        parts.append(img[csum + 4:hdr_size])
        cert_size = 0
    else:
        sec_dir = oh + dd_off + 8 * 4
        parts.append(img[csum + 4:sec_dir])
        parts.append(img[sec_dir + 8:hdr_size])
        cert_size, = struct.unpack_from("<I", img, sec_dir + 4)
    table = oh + optsize
    secs = []
    for i in range(nsect):
        raw_size, raw_ptr = struct.unpack_from("<II", img, table + 40 * i + 16)
        if raw_size:
            secs.append((raw_ptr, i, raw_size))
    secs.sort()
    done = hdr_size
    for ptr, _, size in secs:
        assert ptr + size <= len(img), "section outside the file"
        parts.append(img[ptr:ptr + size])
        done += size
    if len(img) > done:
        assert len(img) >= done + cert_size, "certificate table too large"
        parts.append(img[done:len(img) - cert_size])
    return h384(b"".join(parts))


def qemu_kernel_blob(kernel, initrd_len, cmdline, ram, acpi):
    """What x86_load_linux puts in fw_cfg as setup + kernel (header patched)."""
    k = bytearray(kernel)
    assert k[0x202:0x206] == b"HdrS"
    proto, = struct.unpack_from("<H", k, 0x206)
    assert proto >= 0x200
    assert "vga=" not in cmdline
    if proto >= 0x202 and k[0x211] & 1:
        real, cmd = 0x10000, 0x20000
    else:
        real, cmd = 0x90000, 0x9A000 - ((len(cmdline) + 16) & ~15)
    xlf, = struct.unpack_from("<H", k, 0x236)
    if proto >= 0x20C and xlf & 0x40:
        limit = 0xFFFFFFFF
    elif proto >= 0x203:
        limit, = struct.unpack_from("<I", k, 0x22C)
    else:
        limit = 0x37FFFFFF
    # q35: all RAM below 4 GiB up to 0xb0000000, else a 2 GiB / rest split
    low = ram if ram < 0xB0000000 else 0x80000000
    limit = min(limit, low - acpi - 1)
    if proto >= 0x202:
        struct.pack_into("<I", k, 0x228, cmd)
    else:
        struct.pack_into("<HH", k, 0x20, 0xA33F, (cmd - real) & 0xFFFF)
    k[0x210] = 0xB0
    if proto >= 0x201:
        k[0x211] |= 0x80
        struct.pack_into("<H", k, 0x224, (cmd - real - 0x200) & 0xFFFF)
    if initrd_len is not None:
        assert initrd_len < limit, "initrd too large"
        struct.pack_into("<II", k, 0x218, (limit - initrd_len) & ~0xFFF, initrd_len)
    return bytes(k)


def rtmrs(kernel, initrd, cmdline, patched=None, suffix=False):
    blob = kernel if patched is None else qemu_kernel_blob(
        kernel, len(initrd) if initrd is not None else None, cmdline, *patched)
    rtmr1 = replay([
        pe_digest(blob),
        h384(b"Calling EFI Application from Boot Option"),
        h384(b"\0\0\0\0"),
        h384(b"Exit Boot Services Invocation"),
        h384(b"Exit Boot Services Returned with Success"),
    ])
    events = []
    opts = cmdline
    if initrd:
        opts = cmdline + " initrd=initrd" if suffix else "initrd=initrd " + cmdline
    if opts:
        # each byte of QEMU's C string becomes one CHAR16, then a CHAR16 NUL
        events.append(h384(bytes(c for b in opts.encode("latin-1") for c in (b, 0)) + b"\0\0"))
    if initrd:
        events.append(h384(initrd))
    return rtmr1, replay(events)


if __name__ == "__main__":
    args = sys.argv[1:]
    suffix = "--initrd-suffix" in args
    args = [a for a in args if a != "--initrd-suffix"]
    patched = None
    if "--qemu-patched" in args:
        i = args.index("--qemu-patched")
        rest = args[i + 1:]
        ram = int(rest[0], 0)
        acpi = int(rest[1], 0) if len(rest) > 1 else 0x28000
        patched = (ram, acpi)
        args = args[:i]
    kernel_path, initrd_path, cmdline = args
    with open(kernel_path, "rb") as f:
        kernel = f.read()
    with open(initrd_path, "rb") as f:
        initrd = f.read()
    r1, r2 = rtmrs(kernel, initrd, cmdline, patched, suffix)
    print("rtmr1", r1.hex())
    print("rtmr2", r2.hex())
