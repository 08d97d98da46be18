#!/usr/bin/env python3
"""Benchmark: publish runs into a real PostgreSQL and read them back; row counts must be equal.

Not a test (pytest only collects tests/): run it by hand (root, Debian's postgresql installed)::

    PYTHONPATH=src python bench/bench_store_roundtrip.py                      # the stored runs
    PYTHONPATH=src python bench/bench_store_roundtrip.py results/2026...-disk # any run directories
    PYTHONPATH=src python bench/bench_store_roundtrip.py --store postgresql://... RUN  # your own DB

Without ``--store`` it starts a throw-away cluster on a UNIX socket (tests/pgcluster.py) and
removes it afterwards. It prints, per phase, the time taken: migrate, publish, publish again
(idempotent: nothing written), read back (export + load_samples) and `vbench compare` of the
first two runs through ``--store`` against the same on the directories. Exit 1 if a row count or a
number differs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path,
                    default=sorted((ROOT / "tests" / "data" / "runs").iterdir()))
    ap.add_argument("--store", help="use this database instead of a throw-away cluster")
    args = ap.parse_args()

    from vbench.results import postgres as dbstore, rundir as store

    with contextlib.ExitStack() as stack:
        if args.store:
            url = args.store
        else:
            from pgcluster import PgCluster

            t = time.perf_counter()
            pg = stack.enter_context(PgCluster.start())
            url = pg.create_database("bench")
            print(f"cluster: started in {time.perf_counter() - t:.2f} s ({pg.base})")

        want_rows = {p.name: len(list(store.iter_sample_rows(p))) for p in args.runs}
        t = time.perf_counter()
        done = dbstore.publish(url, args.runs)
        t_pub = time.perf_counter() - t
        t = time.perf_counter()
        again = dbstore.publish(url, args.runs)
        t_again = time.perf_counter() - t
        t = time.perf_counter()
        ok = True
        with dbstore.checkout(url, [p.name for p in args.runs]) as (_, paths):
            t_export = time.perf_counter() - t
            for orig, back in zip(args.runs, paths):
                a, b = store.load_samples(orig), store.load_samples(back)
                key = ["variant", "workload", "repetition", "metric"]
                same = (len(a) == len(b) and a.sort_values(key).reset_index(drop=True).equals(
                    b.sort_values(key).reset_index(drop=True)))
                ok &= same and store.load_meta(orig) == store.load_meta(back)
                print(f"run {orig.name}: rows on disk {want_rows[orig.name]}, published "
                      f"{next(d.samples for d in done if d.run_id == orig.name)}, read back "
                      f"{len(list(store.iter_sample_rows(back)))}; loaded {len(a)} vs {len(b)}: "
                      f"{'equal' if same else 'DIFFERENT'}")
        t_read = time.perf_counter() - t
        print(f"publish: {len(done)} run(s), {sum(d.samples for d in done)} samples in "
              f"{t_pub:.2f} s ({', '.join(sorted({d.action for d in done}))})")
        print(f"publish again: {t_again:.2f} s ({', '.join(sorted({d.action for d in again}))})")
        print(f"read back: export {t_export:.2f} s, export + load + check {t_read:.2f} s")
        if len(args.runs) >= 2:
            from vbench.stats import compare

            t = time.perf_counter()
            with dbstore.checkout(url, [p.name for p in args.runs[:2]]) as (_, (a, b)):
                via = compare.compare(store.load_samples(a), store.load_samples(b),
                                       allow_mixed=True).to_text()
            t_cmp = time.perf_counter() - t
            direct = compare.compare(store.load_samples(args.runs[0]),
                                      store.load_samples(args.runs[1]), allow_mixed=True).to_text()
            ok &= via == direct
            print(f"compare via store: {t_cmp:.2f} s, "
                  f"{'same table' if via == direct else 'DIFFERENT table'} as from the directories")
        conn = dbstore.connect(url)
        try:
            print(f"store rows: {dbstore.counts(conn)}")
        finally:
            conn.close()
    print("round trip: " + ("OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
