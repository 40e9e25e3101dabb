"""A cheap pre-check of a NIR (HDF5) file for damage that would hang libhdf5 (issue 17).

Strings of variable length (every NIR ``type`` field, ``edges``, string metadata) live in HDF5
*global heap collections*. libhdf5 (1.x to 2.0) decodes a collection by walking its objects::

    p = start + HDR                      HDR    = 4 ("GCOL") + 1 (version) + 3 + L
    while p < start + size:
        if p + OBJHDR > start + size:  p = start + size        (tail: free space)
        else:
            idx (u16), nrefs (u16), reserved (4), osize (L bytes)
            need = OBJHDR + align8(osize)  if idx > 0  else  osize   (mod 2**64)
            p = p + need                                          (mod 2**64)

with ``L`` the file's size of lengths (8 in practice) and ``OBJHDR = 8 + L``. A damaged object
header whose ``need`` is 0 (the free-space object, ``idx`` 0, with ``osize`` 0: one flipped bit
in the size of the object in front of it suffices) or wraps around to point backwards makes this
loop endless, in C, where Python signals cannot interrupt it. :func:`global_heap_damage` walks
every collection in the file the same way, in Python, and reports such a collection before
libhdf5 reads it.

Collections are found by their signature: ``b"GCOL"``, version 1, three zero bytes, and a size of
at least :data:`MIN_COLLECTION_SIZE` that fits in the file (libhdf5 never writes a smaller
collection). Only a walk that stops making progress is reported, so a byte sequence in the data
that merely looks like a header is reported only if it also reads as a looping heap.
"""

from __future__ import annotations

import mmap
import os
import struct

SIGNATURE = b"GCOL"
VERSION = 1
MIN_COLLECTION_SIZE = 4096  # H5HG_MINSIZE: libhdf5 allocates collections of at least 4 KiB
ALIGN = 8  # H5HG_ALIGNMENT: objects are padded to multiples of 8 bytes
_U64 = 2**64


def global_heap_damage(path: str | os.PathLike[str], size_of_lengths: int = 8) -> str | None:
    """Describe the first global heap collection of ``path`` whose object walk would not end.

    ``size_of_lengths`` is the file's ``L`` (bytes of a length field, from the superblock;
    h5py: ``File.id.get_create_plist().get_sizes()[1]``). Returns ``None`` for a file without
    such damage, else a message naming the collection's byte offset and the object header.
    Cost: one linear scan of the file for the signature (memory-mapped) plus a walk of each
    collection found, O(file size).
    """
    if size_of_lengths not in (2, 4, 8):
        return f"unsupported HDF5 size of lengths {size_of_lengths} (expected 2, 4 or 8 bytes)"
    fmt = {2: "<H", 4: "<I", 8: "<Q"}[size_of_lengths]
    hdr = 8 + size_of_lengths  # collection header: signature, version, reserved, size
    objhdr = 8 + size_of_lengths  # object header: idx, nrefs, reserved, size
    with open(path, "rb") as fh:
        n = os.fstat(fh.fileno()).st_size
        if n < hdr:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            start = buf.find(SIGNATURE)
            while start >= 0:
                problem = _walk(buf, start, n, fmt=fmt, hdr=hdr, objhdr=objhdr)
                if problem is not None:
                    return problem
                start = buf.find(SIGNATURE, start + 1)
    return None


def _walk(buf: mmap.mmap, start: int, n: int, *, fmt: str, hdr: int, objhdr: int) -> str | None:
    """Walk the collection at byte ``start`` as libhdf5 does; a message if the walk loops."""
    if start + hdr > n or buf[start + 4] != VERSION or buf[start + 5 : start + 8] != b"\0\0\0":
        return None  # not a collection header (libhdf5 refuses a bad version by name)
    (size,) = struct.unpack_from(fmt, buf, start + 8)
    end = start + size
    if size < MIN_COLLECTION_SIZE or end > n:
        return None  # not a collection libhdf5 wrote; reading it fails by name, not in a loop
    p = start + hdr
    while p < end:
        if p + objhdr > end:
            break  # the tail is free space: the walk ends
        (idx,) = struct.unpack_from("<H", buf, p)
        (osize,) = struct.unpack_from(fmt, buf, p + 8)
        if idx > 0:
            need = (objhdr + ((osize + ALIGN - 1) % _U64) // ALIGN * ALIGN) % _U64
        else:
            need = osize
        nxt = (p + need) % _U64
        if nxt <= p:
            return (
                f"global heap collection at byte {start}: object {idx} at byte {p} has size "
                f"{osize}, so libhdf5's walk of the collection would not advance (it would hang)"
            )
        p = nxt
    return None
