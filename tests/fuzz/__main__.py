"""`python -m tests.fuzz --programs N --seed S`: run the fuzzer, print shrunk failures.

Exit status 1 when any program failed. `--gaps known` turns the KNOWN_GAPS switches
on (see runner.GAP_DOC); `--gaps none` (the default) generates everything. The test
suite runs ember's graph verifier (on under pytest); set EMBER_VERIFY=1 to do the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    p.add_argument("--programs", type=int, default=500, help="how many programs to run")
    p.add_argument("--seed", type=int, default=0, help="the first program's seed")
    p.add_argument("--gaps", default="none",
                   help="'none', 'known' (runner.KNOWN_GAPS) or a comma-separated list")
    p.add_argument("--per-signature", type=int, default=2,
                   help="failures shrunk and printed per (mode, category)")
    p.add_argument("--no-shrink", action="store_true", help="print failures as drawn")
    p.add_argument("--fresh-s", type=float, default=60.0,
                   help="seconds to spend per failure making its snippet fail in a new "
                        "process (0: shrink in this process only)")
    args = p.parse_args(argv)
    # NOTE: set before ember is imported (it reads its options once): the fuzzer's
    # programs must not fill the user's disk cache
    os.environ.setdefault("EMBER_CACHE_DIR", tempfile.mkdtemp(prefix="ember-fuzz-"))
    from .runner import GAP_DOC, KNOWN_GAPS, fuzz

    if args.gaps == "none":
        gaps = frozenset()
    elif args.gaps == "known":
        gaps = KNOWN_GAPS
    else:
        gaps = frozenset(g for g in args.gaps.split(",") if g)
        unknown = gaps - set(GAP_DOC)
        if unknown:
            p.error(f"unknown gap(s) {sorted(unknown)}; known: {sorted(GAP_DOC)}")
    start = time.monotonic()
    failures, stats = fuzz(args.programs, args.seed, gaps, not args.no_shrink,
                           per_signature=args.per_signature, fresh_s=args.fresh_s,
                           log=lambda text: print(text, flush=True))
    print(f"# {stats['programs']} programs ({stats['lines']} lines) from seed {args.seed} "
          f"in {time.monotonic() - start:.1f}s: {stats['failing']} failing, "
          f"{stats['invalid']} discarded; gaps {sorted(gaps) or 'none'}")
    return 1 if stats["failing"] else 0


if __name__ == "__main__":
    sys.exit(main())
