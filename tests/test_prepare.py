"""`animegan prepare` end to end: the torture folder, determinism, re-runs, interruption."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, assert_user_error, make_rgba_png, run_cli, write_faces
from conftest_torture import DUPLICATE_GROUPS, LINKED_DUPLICATES, build_torture_folder
from PIL import Image

from animegan_cli.data.decode import DecodeOptions
from animegan_cli.data.packed import FORMAT, IMAGES_FILE, MANIFEST_FILE, VERSION, open_dataset
from animegan_cli.data.prepare import PrepareOptions, prepare
from animegan_cli.data.scan import printable
from animegan_cli.errors import UserError


@pytest.fixture(scope="module")
def torture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    root = tmp_path_factory.mktemp("torture") / "src"
    root.mkdir()
    return root, build_torture_folder(root)


def manifest(ds: Path) -> dict:
    return json.loads((ds / MANIFEST_FILE).read_text())


def test_torture_folder_keeps_exactly_the_good_images(torture, tmp_path: Path) -> None:
    src, expected = torture
    result = run_cli("prepare", src, "-o", tmp_path / "ds", "--size", "32", "--workers", "2")
    assert result.code == 0, result
    m = manifest(tmp_path / "ds")
    kept = sorted(entry["path"] for entry in m["images"])
    assert kept == sorted(printable(rel) for rel, reason in expected.items() if reason is None)
    skipped = {entry["path"]: entry["reason"] for entry in m["skipped"]}
    assert skipped == {printable(rel): reason for rel, reason in expected.items()
                       if reason is not None}
    assert m["counts"]["kept"] == len(kept)
    assert sum(m["counts"]["skipped"].values()) == len(skipped)
    for reason in set(skipped.values()):
        assert reason in m["reasons"]  # a human explanation for every reason used
    assert "skipped" in result.stdout and "bomb" in result.stdout
    ds = open_dataset(tmp_path / "ds")
    assert ds.images.shape == (len(kept), 32, 32, 3)
    # ... and the result trains.
    trained = run_cli("train", tmp_path / "ds", "--epochs", "1", *TINY[2:6], "--eval-every",
                      "0", "--batch-size", "8", "--out", tmp_path / "run")
    assert trained.code == 0, trained


def test_dedupe_reports_duplicates(torture, tmp_path: Path) -> None:
    src, _ = torture
    result = run_cli("prepare", src, "-o", tmp_path / "ds", "--size", "32", "--dedupe")
    assert result.code == 0, result
    dupes = [e for e in manifest(tmp_path / "ds")["skipped"] if e["reason"] == "duplicate"]
    # Of each group of identical images the first in sorted order is kept.
    groups = [sorted(g) for g in (*DUPLICATE_GROUPS, LINKED_DUPLICATES)]
    assert sorted(e["path"] for e in dupes) == sorted(g[1] for g in groups)
    assert all("same pixels as" in e["detail"] for e in dupes)


def test_transparency_becomes_the_background(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_rgba_png(src / "emoji.png")
    assert run_cli("prepare", src, "-o", tmp_path / "white", "--size", "32").code == 0
    white = open_dataset(tmp_path / "white").images[0]
    assert white[0, 0].tolist() == [255, 255, 255]  # not the black of a plain convert('RGB')
    assert white[16, 16].tolist() == [255, 0, 0]
    assert run_cli("prepare", src, "-o", tmp_path / "green", "--size", "32", "--background",
                   "#00ff00").code == 0
    assert open_dataset(tmp_path / "green").images[0][0, 0].tolist() == [0, 255, 0]
    assert_user_error(run_cli("prepare", src, "-o", tmp_path / "x", "--background", "blurple"),
                      "blurple")


def test_two_runs_are_byte_identical_whatever_the_workers(tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 48, size=40)
    for name, workers in (("a", "1"), ("b", "2")):
        assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / name, "--size", "32",
                       "--workers", workers).code == 0
    for filename in (IMAGES_FILE, MANIFEST_FILE, "preview.png"):
        assert (tmp_path / "a" / filename).read_bytes() == (tmp_path / "b" / filename).read_bytes()


def test_rerun_with_nothing_changed_does_no_work(tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 10)
    assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32").code == 0
    images = tmp_path / "ds" / IMAGES_FILE
    stamp = images.stat().st_mtime_ns
    again = run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32")
    assert again.code == 0 and "up to date" in again.stdout, again
    assert images.stat().st_mtime_ns == stamp
    # The same command after the folder changed brings the dataset up to date.
    write_faces(tmp_path / "src", 1, start=10)
    updated = run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32")
    assert updated.code == 0 and "replaced the old dataset" in updated.stdout, updated
    assert len(open_dataset(tmp_path / "ds")) == 11


def test_another_version_of_the_tool_prepares_again(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Another version may decode the same files differently: its re-run must not trust ours.
    write_faces(tmp_path / "src", 4)
    options = PrepareOptions(DecodeOptions(size=32))
    assert not prepare(tmp_path / "src", tmp_path / "ds", options).up_to_date
    assert prepare(tmp_path / "src", tmp_path / "ds", options).up_to_date
    monkeypatch.setattr("animegan_cli.data.prepare.__version__", "99.0.0")
    rerun = prepare(tmp_path / "src", tmp_path / "ds", options)
    assert not rerun.up_to_date and rerun.replaced
    manifest = json.loads((tmp_path / "ds" / MANIFEST_FILE).read_text())
    assert manifest["tool_version"] == "99.0.0"


def test_another_dataset_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    src, other, ds = tmp_path / "src", tmp_path / "other", tmp_path / "ds"
    write_faces(src, 10)
    write_faces(other, 4)
    assert run_cli("prepare", src, "-o", ds, "--size", "32").code == 0
    before = (ds / MANIFEST_FILE).read_bytes()
    assert_user_error(run_cli("prepare", src, "-o", ds, "--size", "64"),
                      "size 32 (now 64)", "pass --overwrite")
    assert_user_error(run_cli("prepare", other, "-o", ds, "--size", "32"),
                      f"from {src.resolve()}", "pass --overwrite")
    assert (ds / MANIFEST_FILE).read_bytes() == before
    replaced = run_cli("prepare", other, "-o", ds, "--size", "64", "--overwrite")
    assert replaced.code == 0 and "replaced the old dataset" in replaced.stdout, replaced
    assert (len(open_dataset(ds)), open_dataset(ds).size) == (4, 64)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # none aside
    # A damaged dataset cannot tell where it came from: replacing it needs --overwrite too.
    (ds / MANIFEST_FILE).write_text("{")
    with pytest.raises(UserError, match="damaged.*pass --overwrite"):
        prepare(other, ds, PrepareOptions(DecodeOptions(size=64)))
    assert prepare(other, ds, PrepareOptions(DecodeOptions(size=64)), overwrite=True).replaced


def test_manifest_and_preview(tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 12)
    result = run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32",
                     "--limit", "10", "--crop", "pad", "--filter", "box")
    assert result.code == 0, result
    m = manifest(tmp_path / "ds")
    assert (m["format"], m["version"], m["count"], m["layout"]) == (FORMAT, VERSION, 10, "NHWC")
    assert m["options"]["crop"] == "pad" and m["options"]["filter"] == "box"
    assert all(len(entry["hash"]) == 64 for entry in m["images"])
    with Image.open(tmp_path / "ds" / "preview.png") as im:
        assert im.size == (8 * 34 + 2, 2 * 34 + 2)  # 10 images, 8 per row


def test_output_must_not_clobber_other_things(tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 3)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    for overwrite in ([], ["--overwrite"]):  # --overwrite replaces datasets, nothing else
        assert_user_error(run_cli("prepare", tmp_path / "src", "-o", precious, *overwrite),
                          "not an animegan")
    assert (precious / "thesis.txt").read_text() == "years of work"
    assert_user_error(run_cli("prepare", tmp_path / "src", "-o", tmp_path / "src" / "out"),
                      "inside the source")


def test_interrupted_prepare_leaves_no_dataset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    Image.fromarray(noise).save(src / "0000.png")
    for i in range(1, 3000):  # hard links: thousands of slow-to-decode files, no disk cost
        os.link(src / "0000.png", src / f"{i:04d}.png")
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "animegan_cli", "prepare", str(src),
                             "-o", str(out), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    # Wait until the writer has started its hidden temporary folder, then interrupt.
    while time.time() < deadline and not any(p.name.endswith(".partial")
                                             for p in tmp_path.iterdir()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert "Traceback" not in err


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(("umask", "folder_mode", "file_mode"),
                         [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)],
                         ids=["umask-022", "umask-077"])
def test_a_dataset_has_the_permissions_the_umask_gives(tmp_path: Path, umask: int,
                                                       folder_mode: int, file_mode: int) -> None:
    """Not mkdtemp's 0700: a dataset shared with other users must be readable by them."""
    write_faces(tmp_path / "src", 3)
    previous = os.umask(umask)
    try:
        prepare(tmp_path / "src", tmp_path / "ds", PrepareOptions(DecodeOptions(size=32)))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "ds").stat().st_mode) == folder_mode
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ds").iterdir()}
    assert modes == dict.fromkeys([IMAGES_FILE, MANIFEST_FILE, "preview.png"], file_mode)


def test_an_image_whose_name_is_not_utf8_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_faces(src, 2)
    cafe, broken = b"caf\xe9.png", b"bro\xefken.jpg"  # Latin-1, not UTF-8
    try:
        os.rename(src / "face_001.png", os.path.join(os.fsencode(src), cafe))
        with open(os.path.join(os.fsencode(src), broken), "wb") as f:
            f.write(b"not a JPEG at all")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    result = run_cli("prepare", src, "-o", tmp_path / "ds", "--size", "32")
    assert result.code == 0, result
    m = json.loads((tmp_path / "ds" / MANIFEST_FILE).read_bytes().decode("utf-8"))
    # Every string is real Unicode: no lone surrogates written as "\udce9" escapes.
    json.dumps(m, ensure_ascii=False).encode("utf-8")
    assert m["count"] == len(open_dataset(tmp_path / "ds")) == 2
    kept = {e["path"]: bytes.fromhex(e["path_bytes"]) for e in m["images"] if "path_bytes" in e}
    assert kept == {"caf\\xe9.png": cafe}
    [skip] = m["skipped"]
    assert (skip["path"], bytes.fromhex(skip["path_bytes"]), skip["reason"]) == (
        "bro\\xefken.jpg", broken, "not_image")
    again = run_cli("prepare", src, "-o", tmp_path / "ds", "--size", "32")
    assert again.code == 0 and "up to date" in again.stdout, again


def test_loading_a_large_dataset_is_lazy_and_fast(tmp_path: Path) -> None:
    """60,000 64x64 images (737 MB) open in well under a second without being read."""
    ds = tmp_path / "big"
    ds.mkdir()
    n = 60_000
    with open(ds / IMAGES_FILE, "wb") as f:
        f.truncate(n * 64 * 64 * 3)  # sparse: costs no disk and no time
    (ds / MANIFEST_FILE).write_text(json.dumps({
        "format": FORMAT, "version": VERSION, "count": n, "height": 64, "width": 64,
        "channels": 3, "layout": "NHWC", "dtype": "uint8", "fingerprint": "0" * 64}))
    rss_before = _rss_kib()
    start = time.perf_counter()
    dataset = open_dataset(ds)
    seconds = time.perf_counter() - start
    assert seconds < 1.0
    assert dataset.images.shape == (n, 64, 64, 3)
    assert _rss_kib() - rss_before < 50_000  # not copied into RAM
    assert int(np.asarray(dataset.images[12345]).sum()) == 0


def test_damaged_dataset_is_refused(tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 6)
    assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32").code == 0
    with open(tmp_path / "ds" / IMAGES_FILE, "r+b") as f:
        f.truncate(100)
    assert_user_error(run_cli("train", tmp_path / "ds", *TINY, "--out", tmp_path / "run"),
                      "damaged")


def test_demo_export(tmp_path: Path) -> None:
    result = run_cli("prepare", "--demo", "5", "-o", tmp_path / "demo", "--size", "64")
    assert result.code == 0, result
    files = sorted((tmp_path / "demo").iterdir())
    assert [p.name for p in files] == [f"face_{i:06d}.png" for i in range(5)]
    with Image.open(files[0]) as im:
        assert im.size == (64, 64)


def test_demo_export_replaces_earlier_faces_and_refuses_other_folders(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    assert run_cli("prepare", "--demo", "5", "-o", demo, "--size", "32").code == 0
    assert run_cli("prepare", "--demo", "2", "-o", demo, "--size", "32").code == 0
    assert sorted(p.name for p in demo.iterdir()) == ["face_000000.png", "face_000001.png"]

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"mine")
    assert_user_error(run_cli("prepare", "--demo", "2", "-o", photos), "not a demo face")
    assert [p.name for p in photos.iterdir()] == ["holiday.jpg"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _rss_kib() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    pytest.skip("no /proc on this platform")
