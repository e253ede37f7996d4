"""The CSV export's file names come from table names, which a DBA may choose freely: a name
holding a slash (`"a/../../b".t`) must not make a zip entry that climbs out of the folder it
is unpacked into, nor one in a folder of its own."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

from syncctl import export
from syncctl.gdpr import SubjectData


def test_a_table_name_with_slashes_stays_one_file_in_the_folder() -> None:
    data = SubjectData("42", 42, None, datetime(2026, 11, 30, tzinfo=UTC), "shop.customer")
    data.tables = {
        "shop.customer": [{"id": 42}],
        '"a/../../b".t': [{"id": 42}],
        '"c\\..\\d".t': [{"id": 42}],
    }

    names = zipfile.ZipFile(io.BytesIO(export.to_csv_zip(data))).namelist()

    assert all("/" not in n and "\\" not in n for n in names), names
    assert len(names) == 4 and "shop.customer.csv" in names
