"""Checks of the parts of `text_embeddings.py` that need neither WordNet nor the model:
the corpus parser, the ground truth and the TEXMEX framing (numpy only).

    .venv/bin/python -m pytest benches/datasets/test_text_embeddings.py
"""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import text_embeddings as te  # noqa: E402


def test_reads_glosses_and_skips_the_licence_header(tmp_path):
    (tmp_path / "data.noun").write_text(
        "  1 This software and database is being provided to you, the LICENSEE, by  \n"
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived  \n"
        "00001930 03 n 01 physical_entity 0 | an entity that has physical existence\n"
        "00002137 03 n 01 no_gloss 0\n",
        encoding="utf-8",
    )
    for part in ("verb", "adj", "adv"):
        (tmp_path / f"data.{part}").write_text(
            "00002000 02 v 01 run 0 | move fast by using one's feet\n", encoding="utf-8"
        )
    glosses = te.read_wordnet_glosses(tmp_path)
    assert glosses == [
        "that which is perceived",
        "an entity that has physical existence",
        "move fast by using one's feet",
        "move fast by using one's feet",
        "move fast by using one's feet",
    ]


def test_exact_top_k_matches_a_full_sort_and_breaks_ties_by_id():
    rng = np.random.default_rng(7)
    base = rng.standard_normal((500, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    base[10] = base[3]  # an exact tie: id 3 must come before id 10
    queries = np.vstack([base[3], rng.standard_normal((20, 16)).astype(np.float32)])
    truth = te.exact_top_k(base, queries, k=25, block=7)
    assert truth.shape == (21, 25)
    for qi, q in enumerate(queries):
        scores = base @ q
        expected = np.lexsort((np.arange(len(base)), -scores))[:25]
        assert list(truth[qi]) == list(expected)
    assert list(truth[0][:2]) == [3, 10]


def test_texmex_files_are_framed_by_dimension(tmp_path):
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    te.write_fvecs(tmp_path / "x.fvecs", rows)
    raw = np.fromfile(tmp_path / "x.fvecs", dtype=np.int32).reshape(3, 5)
    assert list(raw[:, 0]) == [4, 4, 4]
    assert np.array_equal(raw[:, 1:].view(np.float32), rows)
    ids = np.array([[5, 1], [0, 2]], dtype=np.int32)
    te.write_ivecs(tmp_path / "t.ivecs", ids)
    raw = np.fromfile(tmp_path / "t.ivecs", dtype=np.int32).reshape(2, 3)
    assert raw.tolist() == [[2, 5, 1], [2, 0, 2]]


def test_bit_identical_embeddings_keep_their_first_text():
    v = np.eye(3, dtype=np.float32)
    vectors = np.vstack([v[0], v[1], v[0], v[2], np.zeros(3, dtype=np.float32)])
    texts, kept, dropped = te.drop_duplicate_vectors(["a", "b", "a2", "c", "zero"], vectors)
    assert texts == ["a", "b", "c"]
    assert dropped == 2
    assert np.array_equal(kept, v)
