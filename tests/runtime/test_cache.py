"""The LM response cache: keys, the memory LRU, the disk layer, corruption, processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pydantic
import pytest

from dsx.runtime import cache as cache_mod
from dsx.runtime.cache import Cache, configure_cache, default_cache_dir, get_cache, request_key

MSGS = [{"role": "user", "content": "What is 2+2?"}]
ENTRY = {"outputs": ["4"], "usage": {"total_tokens": 3}, "cost": 0.5, "model": "openai/m"}


def key(**params: object) -> str:
    return request_key(model="openai/m", messages=MSGS, params=dict(params))


@pytest.fixture(autouse=True)
def _warn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The "once per process" warnings must fire in each test that looks for them.
    monkeypatch.setattr(cache_mod, "_warned_corrupt", False)
    monkeypatch.setattr(cache_mod, "_warned_disk", False)
    monkeypatch.setattr(cache_mod, "_warned_lock", False)


# -- keys -------------------------------------------------------------------------------


def test_key_is_stable_sha256_and_ignores_param_order() -> None:
    k = key(temperature=0.5, max_tokens=10)
    assert len(k) == 64 and int(k, 16) >= 0
    assert k == key(max_tokens=10, temperature=0.5)
    assert k != key(temperature=0.7, max_tokens=10)
    assert k != request_key(
        model="openai/other", messages=MSGS, params={"temperature": 0.5, "max_tokens": 10}
    )
    assert key() != request_key(model="openai/m", messages=MSGS, params={}, model_type="text")


def test_key_leaves_out_secrets_endpoints_and_transport_settings() -> None:
    plain = key(temperature=0.0)
    noisy = key(
        temperature=0.0,
        api_key="sk-secret",
        api_base="http://10.0.0.1/v1",
        base_url="http://x",
        headers={"Authorization": "Bearer sk-secret"},
        timeout=3,
        num_retries=9,
        stream=True,
        cache=True,
    )
    assert plain == noisy
    assert key(temperature=None) == key()


def test_rollout_id_splits_keys_and_none_means_absent() -> None:
    base = request_key(model="m", messages=MSGS, params={})
    one = request_key(model="m", messages=MSGS, params={}, rollout_id=1)
    two = request_key(model="m", messages=MSGS, params={}, rollout_id=2)
    assert len({base, one, two}) == 3
    assert request_key(model="m", messages=MSGS, params={}, rollout_id=None) == base
    # rollout_id passed among params is ignored there (it is given separately).
    assert request_key(model="m", messages=MSGS, params={"rollout_id": 5}) == base


def test_key_of_pydantic_response_format_is_its_schema() -> None:
    class Answer(pydantic.BaseModel):
        answer: str

    class Other(pydantic.BaseModel):
        answer: int

    a1 = key(response_format=Answer)
    assert a1 == key(response_format=Answer)
    assert a1 != key(response_format=Other)


# -- memory layer -----------------------------------------------------------------------


def test_memory_lru_is_bounded_and_refreshes_on_hit(tmp_path: Path) -> None:
    cache = Cache(enable_disk=False, memory_max_entries=3)
    for i in range(3):
        cache.put(f"k{i}", {**ENTRY, "outputs": [str(i)]})
    assert cache.get("k0") is not None  # k0 is now the most recent
    cache.put("k3", ENTRY)
    assert cache.get("k1") is None  # the least recently used went
    assert [cache.get(k) is not None for k in ("k0", "k2", "k3")] == [True, True, True]
    assert len(cache) == 3


def test_memory_only_cache_writes_nothing(tmp_path: Path) -> None:
    cache = Cache(enable_disk=False, disk_dir=tmp_path / "never")
    cache.put("k", ENTRY)
    assert cache.get("k") == ENTRY
    assert cache.disk is None
    assert not (tmp_path / "never").exists()


def test_threads_share_one_cache_safely(tmp_path: Path) -> None:
    cache = Cache(disk_dir=tmp_path, memory_max_entries=50)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                cache.put(f"{t}-{i}", {**ENTRY, "outputs": [f"{t}-{i}"]})
                got = cache.get(f"{t}-{i}")
                assert got is not None and got["outputs"] == [f"{t}-{i}"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(cache) == 50  # bounded although 320 were written
    assert Cache(disk_dir=tmp_path).get("0-0") is not None  # evicted from memory, on disk


# -- disk layer -------------------------------------------------------------------------


def test_disk_layer_persists_across_cache_objects_and_fills_memory(tmp_path: Path) -> None:
    Cache(disk_dir=tmp_path).put("k", ENTRY)
    fresh = Cache(disk_dir=tmp_path)
    assert len(fresh) == 0
    assert fresh.get("k") == ENTRY
    assert len(fresh) == 1  # promoted into memory
    assert Cache(disk_dir=tmp_path, enable_disk=False).get("k") is None


def test_entries_are_stored_as_checksummed_json_text(tmp_path: Path) -> None:
    cache = Cache(disk_dir=tmp_path)
    cache.put("k", ENTRY)
    assert cache.disk is not None
    raw = cache.disk.get("k")
    assert isinstance(raw, str)
    digest, _, payload = raw.partition("\n")
    assert len(digest) == 64 and json.loads(payload) == ENTRY


@pytest.mark.parametrize(
    "garbage",
    ["{not json", b"\x00\xffbinary", json.dumps({"outputs": "not a list"}), "[1, 2]"],
    ids=["bad-json", "bytes", "wrong-shape", "not-a-dict"],
)
def test_corrupt_entry_is_a_miss_warned_once_and_removed(tmp_path: Path, garbage: object) -> None:
    cache = Cache(disk_dir=tmp_path)
    assert cache.disk is not None
    cache.disk.set("bad1", garbage)
    cache.disk.set("bad2", garbage)
    with pytest.warns(RuntimeWarning, match="unreadable LM cache entry") as caught:
        assert cache.get("bad1") is None
    assert len(caught) == 1
    assert "bad1" not in cache.disk  # removed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second corrupt entry stays quiet
        assert cache.get("bad2") is None
    cache.put("bad1", ENTRY)  # and the slot is usable again
    assert Cache(disk_dir=tmp_path).get("bad1") == ENTRY


def test_pickled_values_are_refused_not_unpickled(tmp_path: Path) -> None:
    import diskcache

    other = diskcache.Cache(str(tmp_path))  # someone else's writer: pickles dicts
    other.set("k", {"outputs": ["from a pickle"], "usage": {}, "cost": None, "model": "m"})
    other.close()
    with pytest.warns(RuntimeWarning, match="pickled value"):
        assert Cache(disk_dir=tmp_path).get("k") is None


def test_unusable_disk_dir_falls_back_to_memory_with_one_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = Cache(disk_dir=blocker / "cache")
    with pytest.warns(RuntimeWarning, match="cannot be opened"):
        cache.put("k", ENTRY)
    assert cache.get("k") == ENTRY
    assert cache.disk is None


def test_configure_cache_replaces_the_process_cache(tmp_path: Path) -> None:
    before = get_cache()
    try:
        new = configure_cache(disk_dir=tmp_path, memory_max_entries=7, enable_memory=False)
        assert get_cache() is new and new is not before
        assert new.memory_max_entries == 7 and new.disk_dir == tmp_path
        new.put("k", ENTRY)
        assert len(new) == 0 and new.get("k") == ENTRY  # served by disk only
    finally:
        configure_cache()


def test_default_dir_comes_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DSX_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert Cache().disk_dir == tmp_path / "c"
    monkeypatch.delenv("DSX_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "dsx"


def test_test_suite_cache_dir_is_a_temp_dir() -> None:
    assert os.environ["DSX_CACHE_DIR"] != str(Path.home() / ".cache" / "dsx")
    assert get_cache().disk_dir != Path.home() / ".cache" / "dsx"


# -- processes --------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from dsx.runtime.cache import Cache
    name, directory, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = Cache(disk_dir=directory, enable_memory=False)
    for i in range(40):
        cache.put(f"{name}-{i}", {"outputs": [f"{name}-{i}"], "usage": {}, "cost": None, "model": "m"})
        cache.put("shared", {"outputs": [name], "usage": {}, "cost": None, "model": "m"})
    # read every worker's entries once they are all written
    deadline = time.time() + 20
    missing = None
    while time.time() < deadline:
        missing = [(w, i) for w in range(total) for i in range(40)
                   if (got := cache.get(f"w{w}-{i}")) is None or got["outputs"] != [f"w{w}-{i}"]]
        if not missing:
            break
        time.sleep(0.05)
    print("missing", len(missing))
    sys.exit(1 if missing else 0)
    """
)


def test_processes_share_one_disk_cache(tmp_path: Path) -> None:
    total = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, f"w{w}", str(tmp_path), str(total)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(total)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, f"{out}\n{err}"
        assert "missing 0" in out
    shared = Cache(disk_dir=tmp_path).get("shared")
    assert shared is not None and shared["outputs"][0] in {"w0", "w1", "w2"}


def test_import_dsx_and_configure_cache_do_not_import_diskcache(tmp_path: Path) -> None:
    probe = (
        "import sys, dsx\n"
        "from dsx.runtime.cache import configure_cache\n"
        f"configure_cache(disk_dir={str(tmp_path)!r})\n"
        "print('diskcache' in sys.modules, 'litellm' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
