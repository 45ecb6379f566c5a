#!/usr/bin/env python3
"""A real-text embedding set for the ANN harness, made from public packages only.

Corpus: the WordNet 3.0 glosses shipped by Debian's `wordnet-base` package
(`/usr/share/wordnet/data.{noun,verb,adj,adv}`, ~117k synsets; each data line carries its gloss,
definition plus quoted examples, after ` | `). Model: `wordllama` from PyPI, whose wheel ships its
256-d weights and tokenizer, so nothing is fetched from a model hub at run time.

Steps, all deterministic given `--seed`:
1. read every gloss, strip it, drop exact duplicate texts, sort the distinct texts (so the result
   does not depend on file order);
2. embed them (wordllama, L2-normalised, float32) and drop rows whose embedding equals an earlier
   row's bit for bit (two texts that tokenise alike), so the ground truth has no exact ties;
3. shuffle with `numpy.random.default_rng(seed)`, take `--nq` texts as queries and the next
   `--n` as base (queries are therefore never in base);
4. exact top-`--gt-k` neighbours by cosine (dot product of the normalised rows) with blocked
   float32 matrix products, ties broken by the lower id;
5. write `base.fvecs`, `queries.fvecs`, `truth.ivecs` (TEXMEX) and `texts.tsv` (row kind, row
   index, text) to `--out`, and print counts, dimension and the seed.

    apt-get install -y wordnet-base
    .venv/bin/pip install numpy wordllama
    .venv/bin/python benches/datasets/text_embeddings.py --out /tmp/wordnet-wl256
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import sys
import time

import numpy as np

WORDNET_PARTS = ("noun", "verb", "adj", "adv")


def read_wordnet_glosses(wordnet_dir: pathlib.Path) -> list[str]:
    """Every gloss of `data.{noun,verb,adj,adv}`, in file order (duplicates kept).

    Data lines start with an 8-digit synset offset; the licence header lines start with spaces
    and are skipped. A line without ` | ` (none in WordNet 3.0) is skipped rather than guessed at.
    """
    glosses = []
    for part in WORDNET_PARTS:
        path = wordnet_dir / f"data.{part}"
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line[:1].isdigit():
                    continue
                _, sep, gloss = line.partition(" | ")
                gloss = gloss.strip()
                if sep and gloss:
                    glosses.append(gloss)
    if not glosses:
        sys.exit(f"no glosses found under {wordnet_dir} (apt-get install -y wordnet-base)")
    return glosses


def load_model(dim: int):
    """wordllama from the files inside its wheel; refuses to download anything."""
    import wordllama
    from wordllama import WordLlama

    package_dir = pathlib.Path(wordllama.__file__).parent
    # `cache_dir` is pointed at the package itself: its `weights/` and `tokenizers/` folders are
    # where the wheel ships the files (the loader's own "project root" lookup misses the
    # tokenizer), and `disable_download` makes a missing file an error instead of a hub fetch.
    return WordLlama.load(dim=dim, cache_dir=package_dir, disable_download=True)


def embed(texts: list[str], dim: int, batch: int) -> np.ndarray:
    model = load_model(dim)
    out = np.empty((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch):
        out[start : start + batch] = model.embed(texts[start : start + batch], norm=True)
    # Normalise again in float32 so every row has unit norm to float32 precision, whatever the
    # model returns; a zero row (no known token) cannot be normalised and is reported.
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    zero = int((norms[:, 0] == 0).sum())
    if zero:
        print(f"warning: {zero} texts embedded to the zero vector", file=sys.stderr)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def drop_duplicate_vectors(texts: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray, int]:
    """Keeps the first row of every bit-identical embedding and drops zero rows (no known token)."""
    seen = set()
    keep = []
    for i, row in enumerate(vectors):
        digest = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
        if digest not in seen and np.any(row):
            seen.add(digest)
            keep.append(i)
    keep_arr = np.asarray(keep, dtype=np.int64)
    return [texts[i] for i in keep], vectors[keep_arr], len(texts) - len(keep)


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int, block: int) -> np.ndarray:
    """Ids of the k largest dot products per query, best first, ties by lower id."""
    n = base.shape[0]
    truth = np.empty((queries.shape[0], k), dtype=np.int32)
    ids = np.arange(n)
    for start in range(0, queries.shape[0], block):
        scores = queries[start : start + block] @ base.T  # (block, n) float32
        # Take a candidate set a little wider than k so ties at the k-th score are all inside,
        # then order exactly: score descending, id ascending.
        width = min(n, k + 16)
        part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        for row in range(scores.shape[0]):
            cand = part[row]
            s = scores[row, cand]
            order = np.lexsort((ids[cand], -s))
            truth[start + row] = cand[order[:k]]
    return truth


def write_fvecs(path: pathlib.Path, rows: np.ndarray) -> None:
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, d = rows.shape
    framed = np.empty((n, d + 1), dtype=np.float32)
    framed[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    framed[:, 1:] = rows
    framed.tofile(path)


def write_ivecs(path: pathlib.Path, rows: np.ndarray) -> None:
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    n, d = rows.shape
    framed = np.empty((n, d + 1), dtype=np.int32)
    framed[:, 0] = d
    framed[:, 1:] = rows
    framed.tofile(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=pathlib.Path, help="output directory")
    p.add_argument("--wordnet-dir", type=pathlib.Path, default=pathlib.Path("/usr/share/wordnet"))
    p.add_argument("--n", type=int, default=100_000, help="base vectors")
    p.add_argument("--nq", type=int, default=2_000, help="query vectors (texts not in base)")
    p.add_argument("--gt-k", type=int, default=100, help="ground-truth neighbours per query")
    p.add_argument("--dim", type=int, default=256, help="wordllama dimension (the wheel ships 256)")
    p.add_argument("--seed", type=int, default=20261202)
    p.add_argument("--batch", type=int, default=4096, help="texts per embedding call")
    p.add_argument("--block", type=int, default=256, help="queries per ground-truth matrix product")
    args = p.parse_args()

    t0 = time.time()
    glosses = read_wordnet_glosses(args.wordnet_dir)
    texts = sorted(set(glosses))
    print(f"corpus: {len(glosses)} WordNet glosses, {len(texts)} distinct texts")

    vectors = embed(texts, args.dim, args.batch)
    texts, vectors, dropped = drop_duplicate_vectors(texts, vectors)
    print(f"embedded with wordllama {args.dim}-d in {time.time() - t0:.1f} s; "
          f"{dropped} texts dropped as bit-identical embeddings, {len(texts)} left")
    if len(texts) < args.n + args.nq:
        sys.exit(f"only {len(texts)} distinct embeddings, need n + nq = {args.n + args.nq}")

    order = np.random.default_rng(args.seed).permutation(len(texts))
    q_idx, b_idx = order[: args.nq], order[args.nq : args.nq + args.n]
    queries, base = vectors[q_idx], vectors[b_idx]

    t1 = time.time()
    k = min(args.gt_k, args.n)
    truth = exact_top_k(base, queries, k, args.block)
    print(f"exact top-{k} cosine ground truth in {time.time() - t1:.1f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    write_fvecs(args.out / "base.fvecs", base)
    write_fvecs(args.out / "queries.fvecs", queries)
    write_ivecs(args.out / "truth.ivecs", truth)
    with open(args.out / "texts.tsv", "w", encoding="utf-8") as f:
        for kind, idx in (("query", q_idx), ("base", b_idx)):
            for row, i in enumerate(idx):
                f.write(f"{kind}\t{row}\t{texts[i]}\n")
    digest = hashlib.sha256()
    for name in ("base.fvecs", "queries.fvecs", "truth.ivecs"):
        digest.update((args.out / name).read_bytes())
    print(f"wrote {args.out}/{{base.fvecs,queries.fvecs,truth.ivecs,texts.tsv}}: "
          f"base {base.shape[0]}, queries {queries.shape[0]}, truth {k} per query, "
          f"dimension {args.dim}, seed {args.seed}, sha256 {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
