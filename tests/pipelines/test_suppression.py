"""The training pipeline leaves suppressed customers out of the snapshot it trains on,
as a derived snapshot with its own content hash (so lineage names the data used)."""

import pytest

from pipelines.lake import open_snapshot
from pipelines.sample_data import ensure_sample_snapshot
from pipelines.steps import RunContext, step_snapshot
from pipelines.suppression import (
    SuppressionList,
    SuppressionListInvalid,
    customer_key,
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
