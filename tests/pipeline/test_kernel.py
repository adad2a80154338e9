"""The run kernel's warm-up: which notebook cells count as import cells."""

from __future__ import annotations

from leaklib.pipeline import kernel


def test_an_import_written_over_several_lines_counts_as_an_import_cell():
    source = "from leaklib import (\n    evaluation,\n    gate,\n)\nimport pandas as pd\n"
    assert kernel._imports_only(source) == [
        "from leaklib import evaluation, gate",
        "import pandas as pd",
    ]


def test_a_cell_with_anything_besides_imports_is_not_an_import_cell():
    assert kernel._imports_only("import pandas as pd\ntable = pd.DataFrame()") == []
    assert kernel._imports_only("%matplotlib inline\nimport pandas") == []  # a magic
    assert kernel._imports_only("") == []


def test_the_warm_up_holds_every_notebooks_imports_and_mlflow():
    code = kernel.warm_up_code().splitlines()
    assert "import pandas as pd" in code
    assert any(line.startswith("from leaklib import") and "modelling" in line for line in code)
    assert code[-1] == "import mlflow"  # the notebooks import leaklib.tracking
