"""The training pipeline leaves suppressed customers out of the snapshot it trains on,
as a derived snapshot with its own content hash (so lineage names the data used)."""

import json

import pytest

from pipelines.lake import open_snapshot
from pipelines.sample_data import ensure_sample_snapshot
from pipelines.steps import RunContext, step_snapshot
from pipelines.suppression import (
    KEY_FILE_VARIABLE,
    KEY_VARIABLE,
    SuppressionList,
    SuppressionListInvalid,
    customer_key,
    key_id,
    suppression_read,
    suppression_write,
)

KEY = b"k" * 32


@pytest.fixture()
def lake(tmp_path):
    root = tmp_path / "lake"
    snapshot = ensure_sample_snapshot(root=root, seed=0, n_transactions=2_000)
    customer = str(snapshot.load(["transactions"])["transactions"]["customer_id"].iloc[0])
    return root, snapshot, customer


def _run(root, tmp_path, suppression_path=None, kind="segmentation"):
    ctx = RunContext(
        model_kind=kind,
        lake_root=root,
        artifact_root=tmp_path / "artifacts",
        suppression_path=suppression_path,
        suppression_key=KEY,
    )
    step_snapshot(ctx)
    return ctx


def test_snapshot_step_leaves_out_suppressed_customers(lake, tmp_path):
    root, original, customer = lake
    path = suppression_write(
        tmp_path / "suppression.json",
        key=KEY,
        purposes={"training": [customer_key(KEY, customer)]},
        written_at="2026-11-29T00:00:00+00:00",
    )
    assert path.suppressed(customer, "training")
    ctx = _run(root, tmp_path, tmp_path / "suppression.json")
    assert ctx.snapshot.id != original.id
    assert ctx.data_version == ctx.snapshot.id
    for name in ("customers", "transactions"):
        if name in ctx.tables:
            assert customer not in set(ctx.tables[name]["customer_id"].astype(str))
    removed = ctx.snapshot.source["suppressed"]
    assert removed["parent"] == original.id
    before = original.load(["transactions"])["transactions"]
    assert removed["rows_removed"]["transactions"] == int(
        (before["customer_id"].astype(str) == customer).sum()
    )
    # The next run, with the same list, trains on the same derived snapshot.
    assert _run(root, tmp_path, tmp_path / "suppression.json").snapshot.id == ctx.snapshot.id
    assert open_snapshot(root=root, snapshot_id=ctx.snapshot.id).source == ctx.snapshot.source


def test_snapshot_step_without_a_list_uses_the_snapshot(lake, tmp_path):
    root, original, _ = lake
    assert _run(root, tmp_path).snapshot.id == original.id
    assert _run(root, tmp_path, tmp_path / "absent.json").snapshot.id == original.id


def test_suppression_list_of_another_shape_is_refused(tmp_path):
    (tmp_path / "bad.json").write_text('{"format": 9}')
    with pytest.raises(SuppressionListInvalid):
        suppression_read(tmp_path / "bad.json")
    with pytest.raises(SuppressionListInvalid):
        suppression_write(tmp_path / "x.json", key=KEY, purposes={"marketing": []}, written_at="")


def test_suppressed_among_names_the_ids_whose_key_is_listed():
    """The batch check hashes ids exactly as `customer_key` (what the portal lists)."""
    listed = SuppressionList(
        key=KEY, purposes={"training": frozenset({customer_key(KEY, "C7"), customer_key(KEY, 9)})}
    )
    assert listed.suppressed_among(["C1", "C7", "9", "C70"], "training") == {"C7", "9"}
    assert listed.suppressed_among(["C7"], "profiling") == set()


@pytest.mark.parametrize("key", [KEY, b"\x00" * 32, bytes(range(64)), bytes(range(65)), b"k" * 200])
def test_suppressed_among_hashes_as_hmac_for_every_key_length(key):
    """The batch check computes HMAC-SHA256 itself (the key's states once): keys of one
    block, and longer ones (hashed first, RFC 2104), give `customer_key`'s hashes; an
    upper-case or malformed entry is no hash the portal writes and matches nothing."""
    ids = ["C7", "Zoë-ü", "", "C" * 300, "C70"]
    listed = SuppressionList(
        key=key,
        purposes={
            "training": frozenset(
                {customer_key(key, i) for i in ids[:4]}
                | {customer_key(key, "C70").upper(), "not hex"}
            )
        },
    )
    assert listed.suppressed_among(iter(ids), "training") == set(ids[:4])


def _listed(tmp_path, key=KEY):
    return suppression_write(
        tmp_path / "listed.json",
        key=key,
        purposes={"training": [customer_key(key, "C7")]},
        written_at="2026-11-29T00:00:00+00:00",
    )


def test_the_file_names_the_key_by_id_and_a_reader_needs_the_key(tmp_path, monkeypatch):
    """The key is not in the file; a reader gets it passed in, from
    DSAR_SUPPRESSION_KEY or from the file DSAR_SUPPRESSION_KEY_FILE names, and refuses
    the list without it or with another key (never reading it as empty)."""
    _listed(tmp_path)
    path = tmp_path / "listed.json"
    raw = json.loads(path.read_text())
    assert raw["hash"] == {"algorithm": "hmac-sha256", "of": "customer_id", "key_id": key_id(KEY)}
    assert KEY.hex() not in path.read_text()
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    monkeypatch.delenv(KEY_FILE_VARIABLE, raising=False)
    assert suppression_read(path, key=KEY).suppressed("C7", "training")
    with pytest.raises(SuppressionListInvalid, match=KEY_VARIABLE):
        suppression_read(path)
    with pytest.raises(SuppressionListInvalid, match="not the key given"):
        suppression_read(path, key=b"o" * 32)
    monkeypatch.setenv(KEY_VARIABLE, KEY.hex())
    assert suppression_read(path).suppressed("C7", "training")
    monkeypatch.delenv(KEY_VARIABLE)
    (tmp_path / "key").write_text(KEY.hex() + "\n")
    monkeypatch.setenv(KEY_FILE_VARIABLE, str(tmp_path / "key"))
    assert suppression_read(path).suppressed("C7", "training")
    (tmp_path / "key").write_text("abcd")
    with pytest.raises(SuppressionListInvalid, match="at least 32 bytes"):
        suppression_read(path)


def test_an_empty_list_needs_no_key_and_an_old_file_is_read_with_its_own(tmp_path, monkeypatch):
    """Nobody listed: nothing to hash, no key needed. A file written before the key
    was split out (it carries `key`) is still honoured until the portal rewrites it."""
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    monkeypatch.delenv(KEY_FILE_VARIABLE, raising=False)
    suppression_write(tmp_path / "empty.json", key=KEY, purposes={}, written_at="")
    assert suppression_read(tmp_path / "empty.json").keys("training") == frozenset()
    _listed(tmp_path)
    path = tmp_path / "listed.json"
    raw = json.loads(path.read_text())
    raw["hash"] = {"algorithm": "hmac-sha256", "of": "customer_id", "key": KEY.hex()}
    path.write_text(json.dumps(raw))
    assert suppression_read(path).suppressed("C7", "training")


def test_a_run_without_the_key_fails_rather_than_train_on_listed_people(
    lake, tmp_path, monkeypatch
):
    """The snapshot step refuses a list it cannot read: training does not go on as if
    nobody were listed."""
    root, _, customer = lake
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    monkeypatch.delenv(KEY_FILE_VARIABLE, raising=False)
    suppression_write(
        tmp_path / "suppression.json",
        key=KEY,
        purposes={"training": [customer_key(KEY, customer)]},
        written_at="",
    )
    ctx = RunContext(
        model_kind="segmentation",
        lake_root=root,
        artifact_root=tmp_path / "artifacts",
        suppression_path=tmp_path / "suppression.json",
    )
    with pytest.raises(SuppressionListInvalid, match="hashing key"):
        step_snapshot(ctx)
