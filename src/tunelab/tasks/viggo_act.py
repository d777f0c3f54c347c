"""viggo_act: ViGGO dialogue-act classification, a shipped instance of `classify`.

Input is the ViGGO sentence (`ref`); the label is the function name of its meaning
representation (`inform`, `request`, `give_opinion`, ...: 9 acts). Splits are the
official ViGGO train/validation/test CSV files.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.data.readers import DataError, Example, field_str, read_records
from tunelab.tasks.base import Splits
from tunelab.tasks.classify import Classify


def read(path, errors: list[DataError] | None = None) -> list[Example]:
    out = []
    for line, rec in read_records(path, errors):
        where = f"{path}:{line}"
        try:
            text, mr = field_str(rec, "ref", where), field_str(rec, "mr", where)
            if "(" not in mr:
                raise DataError(f"{where}: mr: no dialogue act, expected act(attribute[value], ...)")
        except DataError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        out.append(Example(text, mr.split("(", 1)[0].strip(), id=f"{path.name}:{line}", meta={"line": line}))
    return out


@dataclass
class ViggoAct(Classify):
    name: str = "viggo_act"
    folder: str = "viggo"

    def read_file(self, path, errors=None) -> list[Example]:
        return read(path, errors)

    def raw_splits(self) -> Splits:
        root = self.root()
        return Splits(read(root / "train.csv"), read(root / "validation.csv"),
                      read(root / "test.csv"), f"files: {root}/{{train,validation,test}}.csv")

    def describe(self) -> str:
        return "ViGGO sentence -> dialogue act (inform, request, ...); accuracy, macro-F1"
