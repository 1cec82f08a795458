"""File uploads and downloads over real sockets against the server process (F13)."""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from messenger_client.api import tls_context
from messenger_protocol import limits
from tests.support.cluster import RoundRobin, one_node
from tests.support.server import ServerProcess
from tests.support.wire import call, raw_exchange, register, send

LIMIT = limits.MAX_FILE_BYTES
TIMEOUT = 20.0
PNG = (
    b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    + struct.pack(">IIBBBBB", 16, 9, 8, 2, 0, 0, 0) + b"\0" * 64
)  # fmt: skip


async def upload(
    base: str, token: str, content: bytes | AsyncIterator[bytes], name: str = "f.bin"
) -> httpx.Response:
    """POST raw bytes (or a chunked stream) to /api/v1/files."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient(verify=tls_context(), base_url=base, timeout=TIMEOUT) as client:
        return await client.post("/api/v1/files", params={"name": name}, content=content,
                                 headers=headers)  # fmt: skip


async def chunked(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body without Content-Length (httpx sends it chunked)."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll the server's disk until ``condition()`` holds (it has no event to wait for)."""
    for _ in range(int(TIMEOUT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def stored_files(server: ServerProcess | RoundRobin) -> list[Path]:
    """Every file under the server's files dir, temp files included (on the cluster: its
    one blob directory and every node's temp files)."""
    if isinstance(server, RoundRobin):
        assert server.cluster.blob_dir is not None
        roots = [server.cluster.blob_dir, *(n.data_dir / "files" for n in server.cluster.nodes)]
    else:
        roots = [server.data_dir / "files"]
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


@pytest.mark.cluster_too
async def test_limit_exact_and_one_over_with_length_and_chunked(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    exact = os.urandom(LIMIT)
    for body in (exact, chunked(exact)):
        ok = await upload(server.url, token, body)
        assert ok.status_code == 200, ok.text
        assert ok.json()["size"] == LIMIT
    before = stored_files(server)
    assert len(before) == 1  # the same bytes twice are stored once
    over = exact + b"!"
    for body in (over, chunked(over)):
        refused = await upload(server.url, token, body)
        assert refused.status_code == 413
        error = refused.json()["error"]
        assert error["code"] == "too_large" and error["limit"] == LIMIT
    assert stored_files(server) == before


@pytest.mark.cluster_too
async def test_declared_length_over_limit_is_refused_before_the_body(
    server: ServerProcess,
) -> None:
    token = (await register(server.url, "alice"))["token"]
    head = (
        f"POST /api/v1/files?name=x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {LIMIT + 1}\r\n\r\n"
    ).encode()
    answer = await raw_exchange(server.url, head + b"only a few bytes", timeout=5.0)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"too_large"' in answer
    assert stored_files(server) == []


@pytest.mark.cluster_too
async def test_server_memory_stays_flat_during_an_upload(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    node = one_node(server)  # on the cluster, one node writing to the shared blob store
    assert node.proc is not None
    proc = psutil.Process(node.proc.pid)
    await upload(node.url, token, os.urandom(64 * 1024))  # warm up the code paths
    before = proc.memory_info().rss
    peak = before
    parts = urlsplit(node.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"POST /api/v1/files?name=big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {LIMIT}\r\n\r\n"
        ).encode()
    )
    piece = os.urandom(256 * 1024)
    for _ in range(LIMIT // len(piece)):
        writer.write(piece)
        await writer.drain()
        peak = max(peak, proc.memory_info().rss)
    async with asyncio.timeout(TIMEOUT):
        status = await reader.readline()
    peak = max(peak, proc.memory_info().rss)
    writer.close()
    assert status.startswith(b"HTTP/1.1 200 ")
    assert peak - before < 2 * 1024 * 1024, f"RSS grew by {peak - before} bytes"


@pytest.mark.cluster_too
async def test_sniffed_type_names_and_download_headers(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    image = (await upload(server.url, alice, PNG, name="../../etc/x.txt")).json()
    assert (image["mime"], image["name"], image["width"], image["height"]) == (
        "image/png", "x.txt", 16, 9,
    )  # fmt: skip
    elf = (await upload(server.url, alice, b"\x7fELF" + bytes(200), name="a.jpg")).json()
    assert elf["mime"] == "application/x-executable"
    weird = await upload(
        server.url, alice, b"hi", name="\u043f\u0440\u0438\x00\u0432\u0435\u0442.txt"
    )
    assert weird.json()["name"] == "\u043f\u0440\u0438_\u0432\u0435\u0442.txt"
    posted = await send(server.url, alice, "look", attachments=[image["id"], weird.json()["id"]])
    assert posted.status_code == 200, posted.text
    assert [a["id"] for a in posted.json()["attachments"]] == [image["id"], weird.json()["id"]]
    got = await call(server.url, "GET", f"/api/v1/files/{image['id']}", bob)
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["etag"] == f'"{image["sha256"]}"'
    assert got.headers["content-disposition"].startswith('attachment; filename="x.txt"')
    named = await call(server.url, "GET", f"/api/v1/files/{weird.json()['id']}", bob)
    assert "filename*=UTF-8''%D0%BF%D1%80%D0%B8_" in named.headers["content-disposition"]
    head = await call(server.url, "HEAD", f"/api/v1/files/{image['id']}", bob)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(PNG))
    listed = await call(server.url, "GET", "/api/v1/chats/1/files", bob)
    assert {f["id"] for f in listed.json()["files"]} == {image["id"], weird.json()["id"]}


@pytest.mark.cluster_too
async def test_range_requests(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    data = os.urandom(100_000)
    file_id = (await upload(server.url, token, data)).json()["id"]
    path = f"/api/v1/files/{file_id}"
    cases = {"bytes=0-99": data[:100], "bytes=99990-": data[99990:], "bytes=-10": data[-10:],
             "bytes=500-999999": data[500:]}  # fmt: skip
    for spec, expected in cases.items():
        part = await call(server.url, "GET", path, token, headers={"Range": spec})
        assert part.status_code == 206, spec
        assert part.content == expected
        assert part.headers["content-range"].endswith(f"/{len(data)}")
    beyond = await call(server.url, "GET", path, token, headers={"Range": "bytes=100000-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"
    stale = await call(server.url, "GET", path, token,
                       headers={"Range": "bytes=0-9", "If-Range": '"other"'})  # fmt: skip
    assert stale.status_code == 200 and stale.content == data
    etag = stale.headers["etag"]
    same = await call(server.url, "GET", path, token, headers={"If-None-Match": etag})
    assert same.status_code == 304


@pytest.mark.cluster_too
async def test_outsiders_get_the_same_403_as_for_unknown_ids(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    group = await call(server.url, "POST", "/api/v1/chats", alice, {"name": "secret"})
    assert group.status_code == 200, group.text
    file_id = (await upload(server.url, alice, b"secret plan")).json()["id"]
    posted = await send(server.url, alice, "", chat_id=group.json()["id"], attachments=[file_id])
    assert posted.status_code == 200, posted.text
    theirs = await call(server.url, "GET", f"/api/v1/files/{file_id}", bob)
    unknown = await call(server.url, "GET", "/api/v1/files/AAAAAAAAAAAAAAAAAAAAAA", bob)
    assert theirs.status_code == unknown.status_code == 403
    assert theirs.content == unknown.content
    stolen = await send(server.url, bob, "mine now", attachments=[file_id])
    assert stolen.status_code == 403
    assert (await call(server.url, "GET", f"/api/v1/files/{file_id}", alice)).status_code == 200


@pytest.mark.cluster_too
async def test_plain_client_file_then_download(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(b"%PDF-1.4\n" + os.urandom(300_000))
    env = {**os.environ, "MESSENGER_CLIENT_HOME": str(tmp_path / "home")}
    script = f"/auth alice password1\n/file {source}\n/files\n"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "messenger_client", "--plain", "--server", server.url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(script.encode())
    lines: list[str] = []
    file_id = ""
    async with asyncio.timeout(TIMEOUT):
        while not file_id:
            line = (await proc.stdout.readline()).decode()
            assert line, f"EOF; got {lines}"
            lines.append(line)
            if "[file " in line and "report.pdf" in line:
                file_id = line.split("[file ", 1)[1].split(":", 1)[0]
        assert "application/pdf" in lines[-1]
        target = tmp_path / "copy.pdf"
        target.write_bytes(b"the user's own copy")  # issue 9 item 11: never overwritten
        proc.stdin.write(f"/download {file_id} {target}\n".encode())
        proc.stdin.close()
        rest = (await proc.stdout.read()).decode()
        assert await proc.wait() == 0
    beside = tmp_path / "copy (1).pdf"
    assert f"saved {file_id} to {beside}" in rest
    assert proc.stderr is not None
    progress = (await proc.stderr.read()).decode()
    assert "report.pdf: 100% (293.0 KiB)" in progress  # the upload's progress line
    assert f"{file_id}: 100%" in progress  # and the download's
    assert beside.read_bytes() == source.read_bytes()
    assert target.read_bytes() == b"the user's own copy"


@pytest.mark.cluster_too
async def test_an_upload_cut_off_midway_leaves_nothing(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    node = one_node(server)
    parts = urlsplit(node.url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"POST /api/v1/files?name=cut HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {LIMIT}\r\n\r\n"
        ).encode()
        + os.urandom(1024 * 1024)
    )
    await writer.drain()
    tmp = node.data_dir / "files" / "tmp"
    await eventually(lambda: any(tmp.iterdir()), "the temp file being written")
    writer.transport.abort()  # the client goes away mid-body
    await eventually(lambda: not stored_files(server), "the temp file removed")
    ok = await upload(server.url, token, b"still fine")
    assert ok.status_code == 200
