"""The test-data fetcher (tests/testdata.py): the pinned manifest, the order of sources (cache, network,
local copy), sha256 checks on every source, the bounded network attempt, and the reason a missing file gives."""
from __future__ import annotations

import functools
import hashlib
import http.server
import re
import socket
import threading
from pathlib import Path

import pytest

from . import testdata as TD
from .conftest import DATA, data_missing

BLOBS = {"a.bin": b"first pinned file\n", "sub/b.bin": b"second pinned file\n" * 50, "c.txt": b"third\n"}


def _entries() -> dict[str, TD.Entry]:
    return {k: TD.Entry(local=f"set/{k}", repo="owner/repo", commit="c" * 40, path=f"up/{k}",
                        sha256=hashlib.sha256(v).hexdigest()) for k, v in BLOBS.items()}


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server laid out like raw.githubusercontent.com/<repo>/<commit>/<path>; yields its base
    URL and the folder it serves (empty until a test writes into it)."""
    for v in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(v, raising=False)
    root = tmp_path / "upstream"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root / "owner" / "repo" / ("c" * 40)
    httpd.shutdown()
    httpd.server_close()


def test_manifest_pins_every_file_exactly():
    entries = TD.load_manifest()
    assert len(entries) == 16
    for local, e in entries.items():
        assert e.local == local and not Path(local).is_absolute() and ".." not in Path(local).parts
        assert re.fullmatch(r"[0-9a-f]{40}", e.commit) and re.fullmatch(r"[0-9a-f]{64}", e.sha256)
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", e.repo)
        assert e.url() == f"https://raw.githubusercontent.com/{e.repo}/{e.commit}/{e.path}"
    assert {e.repo for e in entries.values()} == {"GasaiYU/PAM", "deepmind/kinetics-i3d",
                                                   "richzhang/PerceptualSimilarity"}


def test_sources_in_order_each_checked_by_sha256(tmp_path, server):
    base, up = server
    cache, shared = tmp_path / "cache", tmp_path / "shared"
    _tree(up / "up", {"a.bin": BLOBS["a.bin"], "sub/b.bin": b"tampered upstream"})  # c.txt: HTTP 404
    _tree(shared / "set", {"sub/b.bin": BLOBS["sub/b.bin"], "c.txt": BLOBS["c.txt"]})
    lines: list[str] = []
    out = TD.ensure(TD.Network(base=base, timeout=5), cache=cache, shared=shared, log=lines.append,
                    entries=_entries())
    assert out["a.bin"].source == f"{base}/owner/repo/{'c' * 40}/up/a.bin"
    assert out["sub/b.bin"].source == out["c.txt"].source.replace("c.txt", "sub/b.bin") == str(shared / "set/sub/b.bin")
    assert len(lines) == 3 and not any("network" in x for x in lines)  # a 404 or a bad body: the host is up
    for k, v in BLOBS.items():
        assert out[k].path == cache / "set" / k and out[k].path.read_bytes() == v
    # second run: everything from the cache, no network asked
    again = TD.ensure(TD.Network(base="http://127.0.0.1:9", timeout=5), cache=cache, shared=tmp_path / "none",
                      entries=_entries())
    assert {o.source for o in again.values()} == {"cache"}
    # a corrupted cached copy is removed and replaced from the next source
    (cache / "set" / "a.bin").write_bytes(b"bit rot")
    fixed = TD.ensure(None, cache=cache, shared=_tree(tmp_path / "s2" / "set", {"a.bin": BLOBS["a.bin"]}).parent,
                      entries=_entries())
    assert fixed["a.bin"].source == str(tmp_path / "s2" / "set" / "a.bin")
    assert (cache / "set" / "a.bin").read_bytes() == BLOBS["a.bin"]


def test_missing_file_says_what_and_how_to_get_it(tmp_path):
    e = _entries()["a.bin"]
    _tree(tmp_path / "shared" / "set", {"a.bin": b"another file"})
    o = TD.obtain(e, tmp_path / "cache", tmp_path / "shared", TD.Network(enabled=False))
    assert o.path is None and not (tmp_path / "cache" / "set" / "a.bin").exists()
    for part in ("test data set/a.bin missing", "network off (PAM_BENCH_OFFLINE)", "python -m tests.testdata",
                 e.url(), "PAM_BENCH_SHARED_DATA",
                 f"{tmp_path / 'shared' / 'set' / 'a.bin'} has sha256 "
                 f"{hashlib.sha256(b'another file').hexdigest()[:12]}"):
        assert part in o.source


def test_an_unanswering_host_costs_one_timeout_then_local_copies(tmp_path):
    """A host that accepts connections and never answers (a firewall that drops): one attempt, bounded by the
    timeout, and every file comes from the local copy."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        shared = _tree(tmp_path / "shared" / "set", BLOBS).parent
        net = TD.Network(base=f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=0.5)
        lines: list[str] = []
        out = TD.ensure(net, cache=tmp_path / "cache", shared=shared, log=lines.append, entries=_entries())
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()
    # the socket's own timeout or the thread's deadline, whichever fires first (both are 0.5 s)
    assert len(conns) == 1 and re.search(r"no answer within 0\.5 s|timed out", net.down or "")
    assert lines[0].startswith("testdata: network unreachable") and len(lines) == 4
    assert all(o.source == str(shared / "set" / k) for k, o in out.items())


def test_tests_read_real_data_only_through_the_cache():
    """No test builds a path into ../shared/data itself; a file a test names must be pinned."""
    here = Path(__file__).parent
    for f in sorted(here.glob("*.py")):
        if f.name not in ("testdata.py", Path(__file__).name):
            assert not re.search(r'/\s*"shared"', f.read_text()), f.name
    with pytest.raises(KeyError, match="not pinned"):
        data_missing(DATA / "pam_samples" / "dexycb" / "no_such.mp4")
