"""core.table: the one text-table / CSV formatter (the CLI's emit and nn.shapes.format_summary use it)."""
from cnnkit.core.table import format_rows


def test_format_rows_table_and_csv():
    rows = [{"name": "ada", "distance": 0.25}, {"name": "bob", "distance": None}]
    assert format_rows(rows, "csv") == "name,distance\nada,0.25\nbob,"
    table = format_rows(rows, "table").splitlines()
    assert table == ["name  distance", "----  --------", "ada   0.25", "bob"]


def test_columns_pick_order_and_missing_cells():
    rows = [{"a": 1, "b": [1, 2], "c": {"k": "v"}}, {"a": 2}]
    assert format_rows(rows, "csv", ["c", "a", "b"]).splitlines() == ['c,a,b', '"{""k"": ""v""}",1,1 2', ',2,']
    assert format_rows([], "table", ["a", "bb"]) == "a  bb\n-  --"  # no rows: the header alone


def test_model_summary_table_and_cli_share_the_total():
    from torch import nn

    from cnnkit.nn.shapes import format_summary, model_summary, summary_table

    rows = model_summary(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)), (1, 1, 6, 6))
    table = summary_table(rows)
    assert table[-1] == {"layer": "total", "params": 20 + 99, "mult_adds": 2 * 16 * 9 + 32 * 3}
    assert summary_table(rows, total=False) == table[:-1]
    assert format_summary(rows).splitlines()[-1].split() == ["total", "119", "384"]
