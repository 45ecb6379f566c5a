"""The real qdrant-client (REST) against `vecraft serve`: every call checks results, not just
that no exception was raised."""

import math
import time
import warnings

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from conftest import SNAPSHOT_DIR

N = 200
DIM = 8


def vec(i: int) -> list:
    """Deterministic, distinct, nonzero vectors: point i is nearest to itself."""
    return [math.sin(i * 0.37 + k) + (1.5 if k == i % DIM else 0.0) for k in range(DIM)]


@pytest.fixture(scope="module")
def client(server):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a version-mismatch warning would fail here
        c = QdrantClient(url=server["url"], prefer_grpc=False, timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="module")
def filled(client):
    name = "docs"
    client.create_collection(
        name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        hnsw_config=models.HnswConfigDiff(m=16, ef_construct=64),
    )
    half = N // 2
    result = client.upsert(
        name,
        points=[
            models.PointStruct(id=i, vector=vec(i), payload={"color": ["red", "blue"][i % 2], "n": i})
            for i in range(half)
        ],
        wait=True,
    )
    assert result.status == models.UpdateStatus.COMPLETED
    client.upsert(
        name,
        points=models.Batch(
            ids=list(range(half, N)),
            vectors=[vec(i) for i in range(half, N)],
            payloads=[{"color": ["red", "blue"][i % 2], "n": i} for i in range(half, N)],
        ),
        wait=True,
    )
    return name


def test_collections(client, filled):
    names = [c.name for c in client.get_collections().collections]
    assert filled in names
    assert client.collection_exists(filled)
    assert not client.collection_exists("missing")
    info = client.get_collection(filled)
    assert info.points_count == N
    assert info.config.params.vectors.size == DIM
    assert info.config.params.vectors.distance == models.Distance.COSINE
    assert info.config.hnsw_config.m == 16
    # Indexing is deferred as in Qdrant: `yellow` while points wait to be linked into the
    # graph (they are searched exactly meanwhile), then `green` with every vector indexed.
    assert info.status in (models.CollectionStatus.GREEN, models.CollectionStatus.YELLOW)
    assert info.indexed_vectors_count <= N
    deadline = time.monotonic() + 60
    while info.status != models.CollectionStatus.GREEN:
        assert time.monotonic() < deadline, f"still {info.status} after 60 s"
        time.sleep(0.1)
        info = client.get_collection(filled)
    assert info.indexed_vectors_count == N


def test_payload_index(client, filled):
    # On the node the declaration is a command in every shard's log; GET collection gathers the
    # declarations (and indexed points) from the shards. An index narrows filtered reads, never
    # changes their results.
    red = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])
    ranged = models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=10, lt=20))])
    assert client.count(filled, count_filter=red, exact=True).count == N // 2
    res = client.create_payload_index(filled, field_name="color", field_schema=models.PayloadSchemaType.KEYWORD)
    assert res.status == models.UpdateStatus.COMPLETED
    res = client.create_payload_index(filled, field_name="n", field_schema=models.PayloadSchemaType.INTEGER)
    assert res.status == models.UpdateStatus.COMPLETED
    schema = client.get_collection(filled).payload_schema
    assert sorted(schema) == ["color", "n"]
    assert schema["color"].data_type == models.PayloadSchemaType.KEYWORD
    assert schema["color"].points == N
    assert schema["n"].data_type == models.PayloadSchemaType.INTEGER
    assert schema["n"].points == N
    # The same declaration again is a no-op; another schema for an indexed field is refused.
    res = client.create_payload_index(filled, field_name="color", field_schema=models.PayloadSchemaType.KEYWORD)
    assert res.status == models.UpdateStatus.COMPLETED
    with pytest.raises(UnexpectedResponse) as e:
        client.create_payload_index(filled, field_name="color", field_schema=models.PayloadSchemaType.INTEGER)
    assert e.value.status_code == 400
    assert "already indexed" in str(e.value)
    assert client.get_collection(filled).payload_schema["color"].data_type == models.PayloadSchemaType.KEYWORD
    # Filtered reads through the indexes give what the scan gave.
    assert client.count(filled, count_filter=red, exact=True).count == N // 2
    res = client.query_points(
        filled, query=vec(0), query_filter=ranged, limit=100, search_params=models.SearchParams(exact=True)
    )
    assert sorted(p.id for p in res.points) == list(range(10, 20))
    # Dropped: no longer reported; `color` stays indexed for the tests after this one.
    res = client.delete_payload_index(filled, field_name="n")
    assert res.status == models.UpdateStatus.COMPLETED
    assert sorted(client.get_collection(filled).payload_schema) == ["color"]
    assert client.count(filled, count_filter=ranged, exact=True).count == 10


def test_query_points_finds_self_and_filters(client, filled):
    for i in (0, 17, 150):
        res = client.query_points(filled, query=vec(i), limit=3, with_payload=True)
        assert res.points[0].id == i
        assert res.points[0].score == pytest.approx(1.0, abs=1e-4)
        assert res.points[0].payload["n"] == i
        assert len(res.points) == 3
    red = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))])
    res = client.query_points(filled, query=vec(1), query_filter=red, limit=5, with_payload=True)
    assert len(res.points) == 5
    assert all(p.payload["color"] == "red" for p in res.points)
    assert 1 not in [p.id for p in res.points]
    ranged = models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=10, lt=20))])
    res = client.query_points(
        filled, query=vec(0), query_filter=ranged, limit=100, search_params=models.SearchParams(exact=True)
    )
    assert sorted(p.id for p in res.points) == list(range(10, 20))


def test_legacy_search_when_the_client_has_it(client, filled):
    if not hasattr(client, "search"):
        pytest.skip("this qdrant-client removed search(); query_points is tested instead")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hits = client.search(filled, query_vector=vec(42), limit=2)
    assert hits[0].id == 42


def test_scroll_count_retrieve(client, filled):
    seen, offset = [], None
    blue = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="blue"))])
    while True:
        points, offset = client.scroll(filled, scroll_filter=blue, limit=30, offset=offset, with_payload=True)
        seen += [p.id for p in points]
        if offset is None:
            break
    assert seen == list(range(1, N, 2))
    assert client.count(filled, exact=True).count == N
    assert client.count(filled, count_filter=blue, exact=True).count == N // 2
    records = client.retrieve(filled, ids=[5, 3, 9999], with_payload=True, with_vectors=True)
    assert [r.id for r in records] == [5, 3]
    assert records[0].payload == {"color": "blue", "n": 5}
    norm = math.sqrt(sum(x * x for x in vec(5)))
    assert records[0].vector == pytest.approx([x / norm for x in vec(5)], abs=1e-5)


def test_payload_operations(client, filled):
    client.set_payload(filled, payload={"tag": "x"}, points=[1, 2], wait=True)
    client.overwrite_payload(filled, payload={"only": True}, points=[3], wait=True)
    client.delete_payload(filled, keys=["n"], points=[1], wait=True)
    client.clear_payload(filled, points_selector=[4], wait=True)
    got = {r.id: r.payload for r in client.retrieve(filled, ids=[1, 2, 3, 4])}
    assert got[1] == {"color": "blue", "tag": "x"}
    assert got[2] == {"color": "red", "n": 2, "tag": "x"}
    assert got[3] == {"only": True}
    assert got[4] == {}
    tagged = models.Filter(must=[models.FieldCondition(key="tag", match=models.MatchValue(value="x"))])
    assert client.count(filled, count_filter=tagged).count == 2


def test_uuid_ids_and_errors(client):
    name = "errs"
    client.create_collection(name, vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    uid = "550e8400-e29b-41d4-a716-446655440000"
    client.upsert(name, points=[models.PointStruct(id=uid, vector=[1, 2, 3], payload={})], wait=True)
    assert client.retrieve(name, ids=[uid])[0].id == uid
    with pytest.raises(Exception) as err:
        client.upsert(name, points=[models.PointStruct(id=2, vector=[1, 2], payload={})], wait=True)
    assert "dimension" in str(err.value)
    with pytest.raises(Exception) as err:
        client.get_collection("missing")
    assert "404" in str(err.value) or "Not found" in str(err.value)
    assert client.count(name).count == 1
    assert client.delete_collection(name)
    assert not client.collection_exists(name)


def test_delete_points(client):
    name = "deletions"
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.EUCLID))
    client.upsert(
        name,
        points=[models.PointStruct(id=i, vector=[float(i), 0.0], payload={"i": i}) for i in range(10)],
        wait=True,
    )
    client.delete(name, points_selector=models.PointIdsList(points=[0, 1]), wait=True)
    small = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(lt=5))])
    client.delete(name, points_selector=models.FilterSelector(filter=small), wait=True)
    left, _ = client.scroll(name, limit=100)
    assert [p.id for p in left] == [5, 6, 7, 8, 9]
    hit = client.query_points(name, query=[6.2, 0.0], limit=1).points[0]
    assert hit.id == 6 and hit.score == pytest.approx(0.2, abs=1e-5)


def test_snapshots(client, server):
    name = "snaps"
    client.create_collection(name, vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    client.upsert(
        name, points=[models.PointStruct(id=i, vector=[i, 1, 0, 0], payload={"i": i}) for i in range(30)], wait=True
    )
    client.create_payload_index(name, field_name="i", field_schema=models.PayloadSchemaType.INTEGER, wait=True)
    snap = client.create_snapshot(name, wait=True)
    assert snap.size > 0 and snap.name
    listed = client.list_snapshots(name)
    assert [s.name for s in listed] == [snap.name]
    assert listed[0].checksum == snap.checksum
    client.delete(name, points_selector=models.PointIdsList(points=list(range(10))), wait=True)
    assert client.count(name).count == 20
    # The client talks to the first node (in a cluster: `node-1` under the data root).
    data = server["data"] / "node-1" if (server["data"] / "node-1").exists() else server["data"]
    path = data / SNAPSHOT_DIR / f"{snap.name}.snap"
    assert server.get("external") or path.exists()  # an external server's path is its own
    assert client.recover_snapshot(name, location=f"file://{path}", wait=True)
    assert client.count(name).count == 30
    assert client.retrieve(name, ids=[3])[0].payload == {"i": 3}
    # The snapshot carries the index declaration; the recovered collection declares it again.
    assert "i" in client.get_collection(name).payload_schema
    assert client.delete_snapshot(name, snap.name, wait=True)
    assert client.list_snapshots(name) == []


def test_vectors_on_disk(client):
    """`VectorParams(on_disk=True)` as the client sends it: the node keeps the vectors in a mapped
    file on every replica and answers as from memory; the local engine refuses it by name."""
    from conftest import ENGINE

    name = "ondisk"
    params = models.VectorParams(size=DIM, distance=models.Distance.COSINE, on_disk=True)
    if ENGINE != "node":
        with pytest.raises(UnexpectedResponse) as refused:
            client.create_collection(name, vectors_config=params)
        assert refused.value.status_code == 400 and "on_disk" in str(refused.value)
        assert not client.collection_exists(name)
        return
    client.create_collection(name, vectors_config=params)
    assert client.get_collection(name).config.params.vectors.on_disk is True
    client.upsert(name, points=[models.PointStruct(id=i, vector=vec(i)) for i in range(N)], wait=True)
    for i in (0, 7, N - 1):
        hits = client.query_points(name, query=vec(i), limit=3).points
        assert hits[0].id == i and hits[0].score == pytest.approx(1.0, abs=1e-5)
        exact = client.query_points(name, query=vec(i), limit=3, search_params=models.SearchParams(exact=True)).points
        assert [h.id for h in exact] == [h.id for h in hits]
    assert client.retrieve(name, ids=[5], with_vectors=True)[0].vector == pytest.approx(
        [x / math.sqrt(sum(y * y for y in vec(5))) for x in vec(5)], abs=1e-5
    )
    assert client.delete_collection(name)


def test_update_collection_quantization_and_on_disk(client):
    """`update_collection(quantization_config=...)` as users enable codes after loading data: the
    node switches every shard (each replica trains from the points it holds), reports the new
    config, searches on the codes with rescoring, and `Disabled` switches it off; a change of
    the graph's `m` is refused by name; `vectors_config={"": VectorParamsDiff(on_disk=...)}`
    moves the vectors to disk and back. The local engine refuses these changes by name."""
    from conftest import ENGINE

    name = "quant"
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    int8 = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99))
    if ENGINE != "node":
        with pytest.raises(UnexpectedResponse) as refused:
            client.update_collection(name, quantization_config=int8)
        assert refused.value.status_code == 400 and "node engine" in str(refused.value)
        assert client.get_collection(name).config.quantization_config is None
        assert client.delete_collection(name)
        return
    # 1,100 points: past the 1,024 slots a quantizer trains at, so the switch trains at once.
    n = 1_100
    client.upsert(name, points=[models.PointStruct(id=i, vector=vec(i)) for i in range(n)], wait=True)
    assert client.update_collection(name, quantization_config=int8)
    got = client.get_collection(name).config.quantization_config
    assert got.scalar.type == models.ScalarType.INT8 and got.scalar.quantile == pytest.approx(0.99)
    rescored = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=4.0))
    for i in (0, 7, 500, n - 1):
        hits = client.query_points(name, query=vec(i), limit=5, search_params=rescored).points
        exact = client.query_points(name, query=vec(i), limit=5, search_params=models.SearchParams(exact=True)).points
        assert [(h.id, round(h.score, 5)) for h in hits] == [(h.id, round(h.score, 5)) for h in exact]
    binary = models.BinaryQuantization(binary=models.BinaryQuantizationConfig())
    assert client.update_collection(name, quantization_config=binary)
    assert client.get_collection(name).config.quantization_config.binary is not None
    with pytest.raises(UnexpectedResponse) as refused:
        client.update_collection(name, hnsw_config=models.HnswConfigDiff(m=4))
    assert refused.value.status_code == 400 and "hnsw_config.m" in str(refused.value)
    assert client.update_collection(name, quantization_config=models.Disabled.DISABLED)
    assert client.get_collection(name).config.quantization_config is None
    # The vectors to a mapped file and back, as `VectorParamsDiff(on_disk=...)` sends it.
    for on_disk in (True, False):
        assert client.update_collection(name, vectors_config={"": models.VectorParamsDiff(on_disk=on_disk)})
        assert client.get_collection(name).config.params.vectors.on_disk is on_disk
        assert client.query_points(name, query=vec(3), limit=1).points[0].id == 3
    assert client.count(name, exact=True).count == n, "no point moved"
    assert client.delete_collection(name)


def test_collection_aliases(client):
    """`update_collection_aliases` as a blue/green reindex uses it: point an alias at a collection,
    query and upsert through it, switch it to another collection in one call, list aliases, and
    a call whose last action fails changes nothing. The local engine refuses aliases by name."""
    from conftest import ENGINE

    for name, base in (("blue", 0), ("green", 1000)):
        client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        client.upsert(name, points=[models.PointStruct(id=i, vector=vec(i), payload={"c": name}) for i in range(20)], wait=True)
    create = lambda alias, collection: models.CreateAliasOperation(  # noqa: E731
        create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
    )
    if ENGINE != "node":
        with pytest.raises(UnexpectedResponse) as refused:
            client.update_collection_aliases(change_aliases_operations=[create("prod", "blue")])
        assert refused.value.status_code == 400 and "node" in str(refused.value)
        for name in ("blue", "green"):
            assert client.delete_collection(name)
        return

    def color(alias):
        # Other nodes of a cluster learn an alias change a heartbeat after the one that answered.
        for _ in range(100):
            got = client.retrieve(alias, ids=[3])
            if got:
                return got[0].payload["c"]
            time.sleep(0.05)
        raise AssertionError(f"{alias} never answered")

    assert client.update_collection_aliases(change_aliases_operations=[create("prod", "blue")])
    assert color("prod") == "blue"
    hits = client.query_points("prod", query=vec(4), limit=1, with_payload=True).points
    assert hits[0].id == 4 and hits[0].payload["c"] == "blue"
    client.upsert("prod", points=[models.PointStruct(id=99, vector=vec(99), payload={"c": "via-alias"})], wait=True)
    assert client.retrieve("blue", ids=[99])[0].payload["c"] == "via-alias"
    listed = client.get_aliases().aliases
    assert [(a.alias_name, a.collection_name) for a in listed] == [("prod", "blue")]
    assert [a.alias_name for a in client.get_collection_aliases("blue").aliases] == ["prod"]
    assert client.get_collection_aliases("green").aliases == []

    # The switch, in one call.
    delete = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="prod"))
    assert client.update_collection_aliases(change_aliases_operations=[delete, create("prod", "green")])
    for _ in range(100):
        if color("prod") == "green":
            break
        time.sleep(0.05)
    assert color("prod") == "green"
    # All or nothing: the missing collection fails the call, and "staging" was not created.
    with pytest.raises(UnexpectedResponse) as refused:
        client.update_collection_aliases(change_aliases_operations=[create("staging", "blue"), create("x", "missing")])
    assert refused.value.status_code == 404
    assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [("prod", "green")]
    for name in ("blue", "green"):
        assert client.delete_collection(name)
    assert client.get_aliases().aliases == [], "a dropped collection's aliases go with it"
