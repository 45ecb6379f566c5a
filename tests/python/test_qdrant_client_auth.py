"""qdrant-client's `api_key` against a vecraft node with read-write and read-only keys."""

import warnings

import pytest
from conftest import launch
from qdrant_client import QdrantClient, models


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    yield from launch(tmp_path_factory, ["--api-keys", "rw-key", "--read-only-api-keys", "ro-key"])


def make(url, key, check=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "api key over insecure connection"
        return QdrantClient(
            url=url, api_key=key, prefer_grpc=False, https=False, timeout=10, check_compatibility=check
        )


def test_keys(secured):
    url = secured["url"]
    writer, reader, stranger = make(url, "rw-key"), make(url, "ro-key"), make(url, "nope", check=False)
    writer.create_collection("k", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    writer.upsert("k", points=[models.PointStruct(id=1, vector=[1, 0], payload={"a": 1})], wait=True)
    assert reader.query_points("k", query=[1, 0], limit=1).points[0].id == 1
    assert reader.count("k").count == 1
    with pytest.raises(Exception) as err:
        reader.upsert("k", points=[models.PointStruct(id=2, vector=[0, 1])], wait=True)
    assert "403" in str(err.value)
    with pytest.raises(Exception) as err:
        stranger.get_collections()
    assert "403" in str(err.value)
    assert writer.count("k").count == 1
