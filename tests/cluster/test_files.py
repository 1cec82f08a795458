"""Files on several nodes (issue 13 item 10): the bytes in a directory every node mounts,
or in an S3 bucket (moto's server as a real process): an upload on one node downloads,
ranged, on the others, and the same bytes uploaded on two nodes at once are one blob;
a clean-up on one node during a re-upload of its bytes on another keeps the content
(node 0 deletes blobs a second after it holds them: test fault ``delay_blob_delete_ms``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from messenger_client.api import tls_context
from tests.support import postgres
from tests.support.cluster import Cluster, require_bus
from tests.support.s3 import S3_ENV, S3Server
from tests.support.wire import WAIT, call, register, send

BUCKET = "messenger-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server with an empty bucket."""
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    reason = server.start()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["shared-dir", "s3"])
def file_nodes(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: postgres.PgDatabase
) -> Iterator[tuple[Cluster, str, str]]:
    """3 nodes whose blobs are in one directory or one bucket: the nodes, the kind and the
    key prefix or directory of the blobs."""
    require_bus("redis")
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        prefix = f"t{os.urandom(4).hex()}"
        args = ["--blob-store", f"s3://{BUCKET}/{prefix}", "--s3-endpoint", s3.url]
        env = dict(S3_ENV)
        where = prefix
    else:
        shared = tmp_path / "shared-files"
        args, env, where = ["--blob-store", str(shared)], {}, str(shared)
    slow_delete = {"MESSENGER_TEST_FAULTS": "delay_blob_delete_ms:1000"}
    nodes = Cluster(tmp_path, pg_database.new_store(), "redis", args=args,
                    node_env={i: {**env, **(slow_delete if i == 0 else {})}
                              for i in range(3)})  # fmt: skip
    try:
        nodes.start()
        yield nodes, request.param, where
    finally:
        nodes.stop()


async def _upload(base: str, token: str, content: bytes) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient(verify=tls_context(), base_url=base, timeout=WAIT) as client:
        resp = await client.post("/api/v1/files", params={"name": "plan.bin"},
                                 content=content, headers=headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def _blob_count(kind: str, where: str, request: pytest.FixtureRequest) -> int:
    if kind == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=where + "/")
        return len(listed.get("Contents", []))
    root = Path(where)
    return sum(1 for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp")


async def test_upload_on_one_node_downloads_ranged_on_the_others(
    file_nodes: tuple[Cluster, str, str], request: pytest.FixtureRequest
) -> None:
    nodes, kind, where = file_nodes
    alice = (await register(nodes.url(0), "alice"))["token"]
    bob = (await register(nodes.url(1), "bob"))["token"]
    content = os.urandom(700 * 1024)  # several read chunks
    up = await _upload(nodes.url(0), alice, content)
    sent = await send(nodes.url(0), alice, "the plan", attachments=[up["id"]])
    assert sent.status_code == 200, sent.text
    path = f"/api/v1/files/{up['id']}"
    ranged = await call(nodes.url(1), "GET", path, bob, headers={"Range": "bytes=1000-300999"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 1000-300999/{len(content)}"
    assert ranged.content == content[1000:301000]
    whole = await call(nodes.url(2), "GET", path, bob)
    assert whole.status_code == 200 and whole.content == content
    tail = await call(nodes.url(2), "GET", path, bob, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == content[-10:]
    # the same new bytes from two users on two nodes at once: two uploads, one blob
    same = os.urandom(64 * 1024)
    one, two = await asyncio.gather(
        _upload(nodes.url(0), alice, same), _upload(nodes.url(2), bob, same)
    )
    assert one["id"] != two["id"]
    assert _blob_count(kind, where, request) == 2, nodes.logs()
    mine = await call(nodes.url(1), "GET", f"/api/v1/files/{two['id']}", bob)
    assert mine.status_code == 200 and mine.content == same
    # a clean-up during a re-upload: alice deletes her message on node 0, which holds
    # its file's bytes for deletion and deletes them a second later; in that second bob
    # uploads the same bytes on node 2. His upload waits for the deletion and stores them
    # afresh (without the holds it would find the blob still there, keep it, and the
    # clean-up would delete it under him)
    kept = os.urandom(200 * 1024)
    doomed = await _upload(nodes.url(0), alice, kept)
    sent = await send(nodes.url(0), alice, "soon deleted", attachments=[doomed["id"]])
    assert sent.status_code == 200, sent.text
    marker = "test fault: deleting 1 blob(s)"
    assert marker not in nodes.nodes[0].log()
    deleting = asyncio.create_task(
        call(nodes.url(0), "DELETE", f"/api/v1/messages/{sent.json()['id']}", alice)
    )
    for _ in range(int(WAIT / 0.02)):  # its log says when they are held, not yet deleted
        if marker in nodes.nodes[0].log():
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"node 0 never held the bytes for deletion\n{nodes.logs()}")
    again = await _upload(nodes.url(2), bob, kept)
    assert (await deleting).status_code == 200
    mine = await call(nodes.url(1), "GET", f"/api/v1/files/{again['id']}", bob)
    assert mine.status_code == 200 and mine.content == kept
    assert _blob_count(kind, where, request) == 3, nodes.logs()
    gone = await call(nodes.url(1), "GET", f"/api/v1/files/{doomed['id']}", alice)
    assert gone.status_code == 403  # alice's upload went with her message
