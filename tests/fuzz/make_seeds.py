#!/usr/bin/env python3
"""Write the seed inputs of tests/fuzz/corpus/ (seed-*), each a small program
in fuzz_soma.c's bytecode that covers one op or one corner of soma.

    python3 tests/fuzz/make_seeds.py [DIR]        default: the corpus beside this file

The encoding is fuzz_soma.c's (its header comment): an op byte, then its
operands; a size is one byte (its top three bits pick the distribution) and
one or two more.  The inputs the fuzzer found and that were kept have
40-hex-digit names; this script leaves them alone.
"""
import os
import sys

MALLOC, CALLOC, REALLOC, FREE, ALIGNED, HMALLOC, HCALLOC, HREALLOC, HDESTROY, \
    BURST, DRAIN, XFREE, XALLOC, CHECK, BANK, USABLE, FOREIGN = range(17)


# ---- sizes (draw_size) ----
def small(cls, off=15):        # any size of small class cls % 32: cls*16 + 1 + off
    return [cls % 32, off]


def edge(cls, d):              # (cls+1)*16 - 1, +0, +1 for d = 0, 1, 2
    return [32 + cls % 32, d]


def medium_edge(m, d):         # medium class m's size - 1, +0, +1 (m modulo their number)
    return [64 + m % 32, d]


def medium(v):                 # 513 + v % (max - 512)
    return [96, v & 255, v >> 8]


def tiny(n):                   # 0..31
    return [128 + n]


def near_max(k):               # max - 3 + k, k = 0..7 (8157..8164 by default)
    return [160 + k]


def above_max(v):              # max + 1 + v
    return [168, v & 255, v >> 8]


def large(kib8, v=0):          # (kib8 + 1) * 8192 + v % 8192
    return [192 + kib8, v & 255, v >> 8]


def raw(v):                    # v, 0..65535
    return [224, v & 255, v >> 8]


# ---- ops ----
def malloc(slot, size):
    return [MALLOC, slot] + size


def calloc(slot, split, size):  # split % 4: 1 x n, n x 1, 16 x n/16, 0 x n; % 8 == 7 overflows
    return [CALLOC, slot, split] + size


def realloc(slot, size):
    return [REALLOC, slot] + size


def free(slot):
    return [FREE, slot]


def aligned(slot, align_code, size):  # align_code % 20: < 13 is 1 << code, else invalid
    return [ALIGNED, slot, align_code] + size


def hmalloc(heap, slot, size):
    return [HMALLOC, heap, slot] + size


def hcalloc(heap, slot, split, size):
    return [HCALLOC, heap, slot, split] + size


def hrealloc(heap, slot, size):
    return [HREALLOC, heap, slot] + size


def hdestroy(heap):
    return [HDESTROY, heap]


def burst(where, start8, count8, size):  # where % 4: thread heap or explicit heap - 1; & 4: calloc;
    return [BURST, where, start8, count8] + size  # & 8: aligned_alloc(32 << (where >> 4) % 8)


def drain(start8, count8, stride):
    return [DRAIN, start8, count8, stride]


def xfree(mode, start8, count4, stride, size=tiny(1)):  # mode % 3: free, realloc, alternate
    return [XFREE, mode, start8, count4, stride] + size


def xalloc(where, start8, count, size):  # where % 4 as burst; & 4 calloc; & 8 sizes vary
    return [XALLOC, where, start8, count] + size


def check():
    return [CHECK]


def bank(b):
    return [BANK, b]


def usable(slot):
    return [USABLE, slot]


def foreign(slot, size):
    return [FOREIGN, slot] + size


def seeds():
    s = {}
    # Every small class, then freed in another order.
    p = []
    for c in range(32):
        p += malloc(c, small(c, c % 16))
    p += check()
    for c in range(31, -1, -2):
        p += free(c)
    s["small-classes"] = p
    # Every small class's end, -1, 0, +1, by calloc (zeroed), split various ways.
    p = []
    for c in range(32):
        for d in range(3):
            p += calloc(3 * c + d, c + d, edge(c, d))
    s["small-edges-calloc"] = p + check()
    # Every medium class's end (29 classes by default, 6 with py38).
    p = []
    for m in range(32):
        for d in range(3):
            p += malloc((3 * m + d) % 256, medium_edge(m, d))
    s["medium-edges"] = p + check()
    # 0, tiny sizes and the medium maximum's neighbourhood.
    p = []
    for n in range(32):
        p += malloc(n, tiny(n))
    for k in range(8):
        p += malloc(40 + k, near_max(k))
    s["zero-tiny-max"] = p + check()
    # realloc up through every kind of block and back down.
    p = malloc(0, tiny(1))
    for size in (tiny(16), tiny(17), edge(31, 1), edge(31, 2), medium_edge(0, 1),
                 near_max(3), near_max(4), large(3), raw(100), tiny(0)):
        p += realloc(0, size)
    s["realloc-up-down"] = p
    # realloc's in-place rule: shrink within the class, shrink by less than a
    # quarter (stays), by more (moves); the same for medium blocks.
    p = malloc(1, edge(31, 1)) + realloc(1, edge(24, 1)) + realloc(1, edge(17, 1))
    p += malloc(2, medium_edge(10, 1)) + realloc(2, medium_edge(9, 1)) + realloc(2, medium_edge(2, 1))
    p += realloc(2, edge(5, 1)) + realloc(3, small(7)) + realloc(3, tiny(0)) + realloc(4, tiny(0))
    s["realloc-in-place"] = p + check()
    # realloc of large blocks (they stay the system's, even when small).
    p = malloc(5, above_max(10)) + realloc(5, tiny(3)) + realloc(5, large(20)) + realloc(5, medium(9))
    s["realloc-large"] = p + check() + free(5)
    # aligned_alloc: every valid alignment, then invalid ones (EINVAL).
    p = []
    for a in range(20):
        p += aligned(a, a, small(a % 32))
        p += aligned(20 + a, a, above_max(a))
    s["aligned"] = p + check()
    p = []
    for a in range(13, 20):
        p += aligned(a, a, tiny(0))
    s["aligned-invalid-zero"] = p + aligned(1, 12, tiny(0)) + aligned(2, 5, tiny(0))
    # calloc: the overflowing product, and 0 elements.
    s["calloc-overflow"] = calloc(0, 7, small(3)) + calloc(1, 3, small(3)) + calloc(2, 15, raw(9))
    # Explicit heaps: blocks in each, moved between them by realloc,
    # destroyed with live blocks (large ones stay), made again.
    p = []
    for h in range(3):
        for k in range(8):
            p += hmalloc(h, 8 * h + k, small(5 * k + h))
        p += hcalloc(h, 30 + h, 1, medium(700 * h))
        p += hmalloc(h, 40 + h, above_max(h))
    p += check()
    p += hrealloc(1, 0, small(20)) + hrealloc(2, 8, medium(5)) + realloc(16, small(30))
    p += hdestroy(0) + check() + hmalloc(0, 0, small(1)) + hdestroy(1) + hdestroy(1)
    s["heaps"] = p + check()
    s["heap-realloc-null"] = hrealloc(2, 9, small(9)) + hrealloc(2, 9, tiny(0)) + hcalloc(1, 3, 2, edge(3, 1))
    # Bursts: a whole arena of 512-byte blocks, of 16-byte ones, of the
    # largest medium class, then drained in strides (pools empty, arenas go).
    s["burst-512-drain"] = (burst(0, 0, 255, edge(31, 1)) + check() + drain(0, 255, 2) + check()
                            + drain(0, 255, 1) + check())
    s["burst-16"] = burst(0, 0, 200, tiny(16)) + drain(0, 200, 3) + burst(0, 0, 200, tiny(1)) + check()
    s["burst-medium-max"] = burst(0, 0, 255, near_max(3)) + drain(8, 100, 5) + check()
    s["burst-heaps-calloc"] = (burst(1, 0, 64, medium_edge(20, 1)) + burst(6, 64, 64, small(9))
                               + burst(3, 128, 32, large(1)) + check() + hdestroy(0) + check())
    # A second thread frees (mode 0), reallocs (1), or both (2).
    base = burst(0, 0, 40, small(4)) + burst(1, 40, 8, medium(100))
    s["xfree"] = base + xfree(0, 0, 80, 1) + check()
    s["xrealloc"] = base + xfree(1, 0, 80, 2, medium_edge(3, 2)) + check()
    s["xfree-alternate"] = base + malloc(3, above_max(5)) + xfree(2, 0, 100, 1, small(31)) + check()
    # A second thread allocates; the main thread owns, reallocs and frees.
    p = xalloc(0, 0, 63, small(2)) + xalloc(4, 8, 63, medium(40)) + xalloc(8, 16, 63, tiny(1))
    p += check() + realloc(0, small(25)) + realloc(65, edge(0, 1)) + drain(0, 30, 1) + check()
    s["xalloc"] = p
    s["xalloc-heap"] = (xalloc(1, 0, 40, small(6)) + xalloc(14, 10, 40, medium(3)) + check()
                        + hmalloc(0, 200, small(6)) + drain(0, 40, 1) + hdestroy(1) + check())
    s["xalloc-xfree"] = xalloc(0, 0, 60, small(11)) + xfree(0, 0, 60, 1) + xalloc(0, 0, 60, small(11)) + check()
    # Banks and USABLE.
    p = []
    for b in range(8):
        p += bank(b) + malloc(255, small(b)) + usable(255) + realloc(255, small(b + 1))
    s["banks-usable"] = p + check()
    s["usable-then-realloc"] = (malloc(0, tiny(1)) + usable(0) + realloc(0, small(3)) + usable(0)
                                + realloc(0, tiny(2)) + malloc(1, raw(9000)) + usable(1)
                                + realloc(1, raw(20000)) + check())
    s["free-empty"] = free(0) + free(7) + realloc(7, tiny(0)) + free(7) + free(7)
    # Blocks of the C library's malloc given to soma_free, _realloc (also
    # from another thread) and _usable_size.
    p = []
    for k in range(6):
        p += foreign(k, small(3 * k))
    p += foreign(6, above_max(7)) + foreign(7, tiny(0)) + check()
    p += realloc(0, medium(4)) + realloc(1, tiny(0)) + usable(2) + hrealloc(0, 3, small(1))
    s["foreign"] = p + xfree(1, 0, 2, 1, small(4)) + check() + free(4)
    # Many small aligned (large) blocks: soma's table of them grows, and
    # shrinks back by backward-shift deletion, in strides.
    s["aligned-burst"] = (burst(8, 0, 255, tiny(1)) + burst(8 + 16 * 7, 0, 255, tiny(24)) + check()
                          + drain(0, 255, 3) + check() + drain(1, 255, 2) + xfree(0, 0, 255, 1) + check())
    # A longer mix of everything.
    p = []
    for k in range(12):
        p += burst(k % 8, 16 * k, 20, small(k))
        p += xfree(k, 16 * k, 30, 1 + k % 3, medium_edge(k, k % 3))
        p += hmalloc(k % 3, k, edge(k, 1)) + aligned(100 + k, 5 + k, small(k))
        if k % 4 == 3:
            p += hdestroy(k % 3) + check()
    s["mix"] = p
    # Large sizes around the budget.
    s["large-many"] = burst(0, 0, 40, large(31, 65535)) + check() + xfree(0, 0, 80, 1)
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, prog in seeds().items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes(b & 255 for b in prog))
    print(f"{len(seeds())} seeds written to {out}")


if __name__ == "__main__":
    main()
