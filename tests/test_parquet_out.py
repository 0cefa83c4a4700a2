from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from unitok.connectors.parquet_files import StagedWriter


def test_small_blocks_become_few_row_groups_and_files_roll_over(tmp_path):
    blocks = [pa.table({"k": list(range(i * 10, i * 10 + 10)), "v": ["x" * 100] * 10}) for i in range(250)]
    writer = StagedWriter(tmp_path, lambda t: {"rows": t}, rows_per_file=1000)
    counts = writer.write(iter(blocks), task_idx=3)
    assert counts == {"rows": 2500}
    files = sorted((tmp_path / "rows").glob("*.parquet"))
    assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [1000, 1000, 500]
    assert all(pq.ParquetFile(f).metadata.num_row_groups == 1 for f in files)  # not one per 10-row block
    ks = [k for f in files for k in pq.read_table(f)["k"].to_pylist()]
    assert ks == list(range(2500))  # order kept, nothing lost or doubled
